"""Bearer tokens and roles: each role can do exactly what it should; tokens and secrets are kept hashed or
encrypted and never shown or logged."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import httpx
import pytest

from tempano.api.auth import TOKEN_FILE, TokenVerifier, bootstrap
from tempano.store import Store
from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROLES = ("anonymous", "viewer", "operator", "admin")
LEVEL = {role: i for i, role in enumerate(ROLES)}
YAML = {"Content-Type": "application/yaml"}
TINY = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates: {}\n"

# (method, path, request keyword arguments, the least role allowed)
TABLE: list[tuple[str, str, dict[str, object], str]] = [
    ("GET", "/api/v1/blueprints", {}, "viewer"),
    ("GET", "/api/v1/blueprints/nope", {}, "viewer"),
    ("GET", "/api/v1/deployments", {}, "viewer"),
    ("GET", "/api/v1/deployments/nope", {}, "viewer"),
    ("GET", "/api/v1/deployments/nope/outputs", {}, "viewer"),
    ("GET", "/api/v1/deployments/nope/graph", {}, "viewer"),
    ("GET", "/api/v1/deployments/nope/node-instances", {}, "viewer"),
    ("GET", "/api/v1/deployments/nope/node-instances/x_1", {}, "viewer"),
    ("GET", "/api/v1/deployments/nope/events", {}, "viewer"),
    ("GET", "/api/v1/executions", {}, "viewer"),
    ("GET", "/api/v1/executions/nope:1", {}, "viewer"),
    ("GET", "/api/v1/executions/nope:1/events", {}, "viewer"),
    ("GET", "/api/v1/executions/nope:1/events/stream", {}, "viewer"),
    ("GET", "/api/v1/executions/nope:1/progress", {}, "viewer"),
    ("GET", "/api/v1/workflows", {}, "viewer"),
    ("GET", "/api/v1/whoami", {}, "viewer"),
    ("GET", "/metrics", {}, "viewer"),
    ("POST", "/api/v1/blueprints/validate", {"content": TINY, "headers": YAML}, "operator"),
    ("PUT", "/api/v1/deployments/nope", {"json": {"blueprint_id": "nope"}}, "operator"),
    ("DELETE", "/api/v1/deployments/nope", {}, "operator"),
    ("POST", "/api/v1/executions", {"json": {"deployment_id": "nope", "workflow": "install"}}, "operator"),
    ("POST", "/api/v1/executions/nope:1/cancel", {}, "operator"),
    ("POST", "/api/v1/executions/nope:1/resume", {}, "operator"),
    ("POST", "/api/v1/executions/nope:1/rollback", {}, "operator"),
    ("POST", "/api/v1/executions/nope:1/terminate", {}, "admin"),
    ("PUT", "/api/v1/blueprints/authz", {"content": TINY, "headers": YAML}, "admin"),
    ("DELETE", "/api/v1/blueprints/authz", {}, "admin"),
    ("PUT", "/api/v1/secrets/authz", {"json": {"value": "v"}}, "admin"),
    ("GET", "/api/v1/secrets", {}, "admin"),
    ("DELETE", "/api/v1/secrets/authz", {}, "admin"),
    ("POST", "/api/v1/tokens", {"json": {"name": "t", "role": "viewer"}}, "admin"),
    ("GET", "/api/v1/tokens", {}, "admin"),
    ("DELETE", "/api/v1/tokens/nope", {}, "admin"),
    ("GET", "/healthz", {}, "anonymous"),
    ("GET", "/readyz", {}, "anonymous"),
    ("GET", "/openapi.json", {}, "anonymous"),
]


async def test_each_role_can_do_exactly_what_it_should(api: Api) -> None:
    failures: list[str] = []
    for method, path, kwargs, least in TABLE:
        for role in ROLES:
            r = await api.clients[role].request(method, path, **kwargs)  # type: ignore[arg-type]
            allowed = LEVEL[role] >= LEVEL[least]
            if allowed and r.status_code in {401, 403}:
                failures.append(f"{role} refused {r.status_code} on {method} {path}: {r.text}")
            if allowed and r.status_code >= 500:
                failures.append(f"{role} got {r.status_code} on {method} {path}: {r.text}")
            if not allowed:
                expected = 401 if role == "anonymous" else 403
                if r.status_code != expected or not r.headers["content-type"].startswith("application/problem+json"):
                    failures.append(f"{role} got {r.status_code} (wanted {expected}) on {method} {path}")
                if expected == 401 and r.headers.get("www-authenticate") != "Bearer":
                    failures.append(f"401 without WWW-Authenticate on {method} {path}")
    assert not failures, "\n".join(failures)
    # Every route of the app is in the table (a new endpoint must say who may call it).
    schema = (await api.anonymous.get("/openapi.json")).json()
    templated = {
        (method.upper(), p)
        for p, ops in schema["paths"].items()
        for method in ops
        if method in {"get", "put", "post", "delete"}
    }
    covered = {(m, _template(p, schema["paths"])) for m, p, _, _ in TABLE}
    assert templated <= covered | {("GET", "/openapi.json")}, templated - covered


def _template(path: str, paths: dict[str, object]) -> str:
    if path in paths:
        return path
    parts = path.split("/")
    for candidate in paths:
        cparts = candidate.split("/")
        if len(cparts) == len(parts) and all(c == p or c.startswith("{") for c, p in zip(cparts, parts, strict=True)):
            return candidate
    return path


async def test_unknown_and_revoked_tokens_are_refused(api: Api) -> None:
    bogus = httpx.AsyncClient(base_url=api.url, headers={"Authorization": "Bearer tpn_nope_nope"})
    async with bogus:
        r = await bogus.get("/api/v1/deployments")
    assert r.status_code == 401 and "unknown or revoked" in r.json()["detail"]
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": "Basic abc"}) as basic:
        assert (await basic.get("/api/v1/deployments")).status_code == 401

    created = (await api.admin.post("/api/v1/tokens", json={"name": "short-lived", "role": "operator"})).json()
    assert created["token"].startswith("tpn_") and created["role"] == "operator"
    listed = (await api.admin.get("/api/v1/tokens")).json()
    assert "token" not in listed[0] and created["id"] in {t["id"] for t in listed}
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {created['token']}"}) as c:
        assert (await c.get("/api/v1/whoami")).json()["role"] == "operator"
        assert (await api.admin.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
        assert (await c.get("/api/v1/whoami")).status_code == 401
    me = (await api.admin.get("/api/v1/whoami")).json()["token_id"]
    r = await api.admin.delete(f"/api/v1/tokens/{me}")
    assert r.status_code == 409 and "itself" in r.json()["detail"]
    assert_bad_role = await api.admin.post("/api/v1/tokens", json={"name": "x", "role": "root"})
    assert assert_bad_role.status_code == 422


async def test_tokens_and_secrets_are_stored_hashed_or_encrypted_and_never_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    value = "sw0rdf1sh-secret-value"
    assert (await api.admin.put("/api/v1/secrets/db_password", json={"value": value})).status_code == 204
    assert (await api.admin.get("/api/v1/secrets")).json() == {"names": ["db_password"]}
    assert api.tempano.store.get_secret("db_password") == value  # what activities resolve
    new = (await api.admin.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})).json()["token"]
    # A refused request with the secret in its body does not echo it.
    r = await api.admin.put("/api/v1/secrets/db_password", json={"value": value, "extra": 1})
    assert r.status_code == 422 and value not in r.text

    db = Path(api.tempano.store.url.split("///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    for plain in (value, new, api.tokens["admin"], api.tokens["viewer"]):
        assert plain.encode() not in raw
    for plain in (value, new, *api.tokens.values()):
        assert plain not in caplog.text
    assert (await api.admin.delete("/api/v1/secrets/db_password")).status_code == 204


async def test_bootstrap_writes_an_admin_token_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.create_schema()
    path = bootstrap(store, tmp_path / "data", None)
    assert path == tmp_path / "data" / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    principal = TokenVerifier(store).verify(token)
    assert principal is not None and principal.role == "admin"
    assert bootstrap(store, tmp_path / "data", None) is None  # an admin exists: nothing new
    assert path.read_text().strip() == token
    store.close()
