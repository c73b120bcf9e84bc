"""Service-to-service trust: the gateway authenticates API keys, then forwards the caller's workspace.

Internal services (ingest, search) accept a request only with the shared ``X-Internal-Token``
(``BLINDSPOT_INTERNAL_TOKEN``) and read the workspace from ``X-Blindspot-Workspace`` (and the key's
scopes from ``X-Blindspot-Scopes``, comma separated). They are never exposed publicly.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, Header

from shared.errors import BadRequest, Forbidden, Unauthorized
from shared.settings import get_settings

TOKEN_HEADER = "X-Internal-Token"
WORKSPACE_HEADER = "X-Blindspot-Workspace"
SCOPES_HEADER = "X-Blindspot-Scopes"


@dataclass(frozen=True)
class Caller:
    workspace_id: int
    scopes: frozenset[str]


def internal_headers(workspace_id: int, scopes: frozenset[str] | set[str] | None = None) -> dict[str, str]:
    """Headers a trusted caller (the gateway, a worker, a test) sends to an internal service."""
    return {
        TOKEN_HEADER: get_settings().internal_token.get_secret_value(),
        WORKSPACE_HEADER: str(workspace_id),
        SCOPES_HEADER: ",".join(sorted(scopes or {"read", "write"})),
    }


def internal_caller(
    x_internal_token: str | None = Header(default=None, alias=TOKEN_HEADER),
    x_blindspot_workspace: str | None = Header(default=None, alias=WORKSPACE_HEADER),
    x_blindspot_scopes: str | None = Header(default=None, alias=SCOPES_HEADER),
) -> Caller:
    """FastAPI dependency for internal services: verify the token, return the caller's workspace."""
    expected = get_settings().internal_token.get_secret_value()
    if not x_internal_token or not hmac.compare_digest(x_internal_token, expected):
        raise Unauthorized("missing or invalid internal token")
    if not x_blindspot_workspace or not x_blindspot_workspace.isdigit():
        raise BadRequest(f"{WORKSPACE_HEADER} header must be a workspace id")
    scopes = frozenset(s for s in (x_blindspot_scopes or "read").split(",") if s)
    return Caller(workspace_id=int(x_blindspot_workspace), scopes=scopes)


def internal_writer(caller: Caller = Depends(internal_caller)) -> Caller:
    """FastAPI dependency for internal write routes: the forwarded key must have 'write' (or 'admin')."""
    if "write" not in caller.scopes and "admin" not in caller.scopes:
        raise Forbidden("this API key lacks the 'write' scope")
    return caller
