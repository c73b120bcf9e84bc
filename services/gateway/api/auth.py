"""Workspaces (bootstrap) and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from services.gateway.api.deps import AdminDep, ReadDep, SessionDep, StateDep
from services.gateway.schemas import (
    ERRORS,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    Me,
    WorkspaceCreate,
    WorkspaceCreated,
)
from services.gateway.service import auth as service

router = APIRouter(prefix="/v1", tags=["auth"], responses=ERRORS)


@router.post(
    "/workspaces",
    response_model=WorkspaceCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a workspace and its first admin key (needs the bootstrap token)",
)
async def create_workspace(
    body: WorkspaceCreate,
    session: SessionDep,
    state: StateDep,
    x_bootstrap_token: Annotated[str | None, Header()] = None,
) -> dict:
    return await service.create_workspace(
        session, state.settings, x_bootstrap_token, body.name, body.key_name
    )


@router.get("/me", response_model=Me, summary="The caller's workspace and scopes")
async def me(principal: ReadDep) -> dict:
    return {
        "workspace_id": principal.workspace_id,
        "key_id": principal.key_id,
        "scopes": sorted(principal.scopes),
    }


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (the key is in the response, once)",
)
async def create_key(body: ApiKeyCreate, session: SessionDep, state: StateDep, principal: AdminDep) -> dict:
    return await service.create_key(session, state.settings, principal, body.name, list(body.scopes))


@router.get("/api-keys", response_model=ApiKeyList, summary="List the workspace's API keys (no secrets)")
async def list_keys(session: SessionDep, principal: AdminDep) -> dict:
    return {"keys": await service.list_keys(session, principal)}


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
async def revoke_key(key_id: int, session: SessionDep, principal: AdminDep) -> dict:
    return await service.revoke_key(session, principal, key_id)
