"""Bearer tokens with roles: viewer (read), operator (deployments and executions), admin (blueprints, secrets,
tokens). Tokens are random strings shown once; the store keeps only their SHA-256.

A fresh store gets a bootstrap admin token written to ``<data dir>/admin.token`` (mode 0600); the CLI reads it
from there (or from ``TEMPANO_TOKEN``). Token values never reach logs: the API logs no headers, and only hashes
are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tempano.api.settings import TOKEN_FILE
from tempano.store import Conflict, Store, TokenRecord

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
TOKEN_PREFIX = "tpn_"
CACHE_SECONDS = 5.0


class AuthError(Exception):
    """401 (no or unknown token) or 403 (the token's role is too low)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name and role (``anonymous`` admin when auth is off)."""

    token_id: str
    name: str
    role: Role


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (token id, token value)."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def issue_token(store: Store, name: str, role: Role) -> tuple[TokenRecord, str]:
    """Stores a new token's hash; returns its record and its value. The value is not kept anywhere."""
    token_id, value = new_token()
    return store.add_token(token_id, name, role, hash_token(value)), value


def register_token(store: Store, value: str, name: str, role: Role) -> None:
    """Registers a token chosen by the operator (TEMPANO_ADMIN_TOKEN) unless it is known already."""
    if len(value) < 24:
        raise ValueError("TEMPANO_ADMIN_TOKEN must be at least 24 characters (use a random string)")
    if store.token_by_hash(hash_token(value)) is None:
        with contextlib.suppress(Conflict):  # another API process registered it just now
            store.add_token(secrets.token_hex(6), name, role, hash_token(value))


def bootstrap(store: Store, data_dir: Path, configured: str | None) -> Path | None:
    """Makes sure an admin can get in: the configured admin token, or a generated one written to a 0600 file
    when the store has no admin token. Returns the file written, if any."""
    if configured:
        register_token(store, configured, "configured-admin", "admin")
        return None
    if store.count_active_tokens("admin"):
        return None
    path = data_dir / TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    _, value = issue_token(store, "bootstrap-admin", "admin")
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    print(f"tempano: bootstrap admin token written to {path} (mode 0600)", file=sys.stderr)
    return path


class TokenVerifier:
    """Looks tokens up by hash, with a short cache (revocations made elsewhere apply within a few seconds)."""

    def __init__(self, store: Store, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(known, principal) from the cache alone, without touching the store."""
        with self._lock:
            hit = self._cache.get(hash_token(token))
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
        return False, None

    def verify(self, token: str) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        record = self.store.token_by_hash(digest)
        principal = None
        if record is not None and not record.revoked and record.role in RANK:
            principal = Principal(record.id, record.name, record.role)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal


bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer tpn_...`")


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.tokens
    return verifier


def require(role: Role) -> Any:
    """A dependency admitting callers whose role is at least ``role``."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        verifier = _verifier(request)
        if not verifier.enabled:
            return Principal("anonymous", "anonymous", "admin")
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise AuthError(401, "this endpoint needs a bearer token (Authorization: Bearer <token>)")
        # Async, with the store read in a thread only on a cache miss: one thread hop less per request.
        known, principal = verifier.cached(credentials.credentials)
        if not known:
            principal = await run_in_threadpool(verifier.verify, credentials.credentials)
        if principal is None:
            raise AuthError(401, "the bearer token is unknown or revoked")
        if RANK[principal.role] < RANK[role]:
            raise AuthError(403, f"this needs the {role} role; token {principal.name!r} has the {principal.role} role")
        request.state.principal = principal
        return principal

    return Depends(check)


Viewer = Annotated[Principal, require("viewer")]
Operator = Annotated[Principal, require("operator")]
Admin = Annotated[Principal, require("admin")]
