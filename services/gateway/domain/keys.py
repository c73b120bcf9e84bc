"""API keys and scopes: generation, hashing, verification, the caller."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from shared.db.models.enums import ApiScope

KEY_PREFIX = "bsk"
SCOPE_RANK = {ApiScope.read.value: 1, ApiScope.write.value: 2, ApiScope.admin.value: 3}


@dataclass(frozen=True)
class NewKey:
    prefix: str
    secret: str

    @property
    def plaintext(self) -> str:
        return f"{KEY_PREFIX}_{self.prefix}_{self.secret}"


def generate_key() -> NewKey:
    """A fresh key: 48 bits of public prefix (the lookup id) and 256 bits of secret."""
    return NewKey(prefix=secrets.token_hex(6), secret=secrets.token_urlsafe(32))


def parse_key(raw: str) -> tuple[str, str] | None:
    """``bsk_<prefix>_<secret>`` -> (prefix, secret), or None when the shape is wrong."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def hash_secret(secret: str, pepper: str) -> str:
    """HMAC-SHA256 of the key's secret with the server secret as pepper.

    Keys carry 256 random bits, so a slow password hash (argon2/scrypt) adds no brute-force resistance
    but would cost tens of milliseconds on every request; the pepper means a leaked table alone cannot
    even verify a guess.
    """
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def verify_secret(secret: str, pepper: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret, pepper), expected_hash)


def effective_rank(scopes: frozenset[str] | list[str]) -> int:
    return max((SCOPE_RANK.get(s, 0) for s in scopes), default=0)


def has_scope(scopes: frozenset[str] | list[str], needed: str) -> bool:
    """Scopes nest: admin includes write, write includes read."""
    return effective_rank(scopes) >= SCOPE_RANK[needed]


@dataclass(frozen=True)
class Principal:
    """The caller of a request: its workspace and its key's scopes."""

    workspace_id: int
    key_id: int
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return has_scope(self.scopes, scope)


def implied_scopes(scopes: frozenset[str] | list[str]) -> frozenset[str]:
    rank = effective_rank(scopes)
    return frozenset(s for s, r in SCOPE_RANK.items() if r <= rank)
