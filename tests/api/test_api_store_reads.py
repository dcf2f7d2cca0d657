"""What some routes read from the store, seen in the SQL it runs: the token they name, not every token; blueprint
summaries a page at a time, not every plan; one read for an execution, known or not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from tempano.api.auth import issue_token
from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio(loop_scope="session")


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine runs meanwhile (the API serves from this process)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def every_row_of(table: str, seen: list[str]) -> list[str]:
    """The statements that read the whole table."""
    return [s for s in seen if s.startswith("SELECT") and f"FROM {table}" in s and "WHERE" not in s]


async def test_creating_and_revoking_a_token_reads_that_token_only(api: Api) -> None:
    store = api.tempano.store
    for n in range(5):
        issue_token(store, f"other-{n}", "viewer")

    with statements(store.engine) as seen:
        r = await api.admin.post("/api/v1/tokens", json={"name": "ci", "role": "operator"})
    assert r.status_code == 201, r.text
    created = r.json()
    listed = {t["id"]: t for t in (await api.admin.get("/api/v1/tokens")).json()}
    assert created == {**listed[created["id"]], "token": created["token"]}
    assert created["name"] == "ci" and created["role"] == "operator" and not created["revoked"]
    assert every_row_of("api_tokens", seen) == []
    assert [s for s in seen if s.startswith("SELECT") and "api_tokens.id =" in s] == []  # not read back

    with statements(store.engine) as seen:
        r = await api.admin.delete(f"/api/v1/tokens/{created['id']}")
    assert r.status_code == 204, r.text
    assert every_row_of("api_tokens", seen) == []
    assert (await api.admin.delete("/api/v1/tokens/nope")).status_code == 404


async def test_listing_blueprints_reads_a_page_of_summaries_without_plans(api: Api) -> None:
    store = api.tempano.store
    for name in ("b-one", "b-two", "b-three"):
        store.put_blueprint(name, {"nodes": {}, "padding": "x" * 10_000}, f"hash-{name}", description=f"about {name}")

    with statements(store.engine) as seen:
        page = (await api.viewer.get("/api/v1/blueprints", params={"offset": 1, "limit": 1})).json()
    assert page["total"] == 3 and page["offset"] == 1 and page["limit"] == 1
    assert [(b["id"], b["description"], b["plan_hash"]) for b in page["items"]] == [
        ("b-three", "about b-three", "hash-b-three")
    ]
    reads = [s for s in seen if "FROM blueprints" in s]
    assert reads and not [s for s in reads if re.search(r"\bblueprints\.\"?plan\b", s)], reads
    assert all("LIMIT" in s for s in reads if "count(" not in s), reads


async def test_an_unknown_execution_costs_one_read(api: Api) -> None:
    store = api.tempano.store
    # A deployment id no other test uses: the Temporal server is shared by the whole session, and another test's
    # "d1" has a deployment workflow whose worker is gone, which the API would wait on (503) instead of finding none.
    store.put_blueprint("bp", {"nodes": {}}, "hash")
    store.create_deployment("reads-d1", "bp", {"nodes": {}}, {}, [])
    store.create_execution("reads-d1:1", "reads-d1", 1, "install", {}, "dep:reads-d1:exec:1:install")
    assert (await api.viewer.get("/api/v1/whoami")).status_code == 200  # the token is known from here on

    def reads(seen: list[str]) -> list[str]:
        return [s for s in seen if "api_tokens" not in s]

    with statements(store.engine) as seen:
        r = await api.viewer.get("/api/v1/executions/ghost:1")
    assert r.status_code == 404 and r.json()["detail"] == "no execution 'ghost:1'"
    assert len(reads(seen)) == 1, seen
    with statements(store.engine) as seen:
        r = await api.viewer.get("/api/v1/executions/reads-d1:1")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert len(reads(seen)) == 1, seen
    # Its deployment known, the execution not: the deployment's workflow is asked, as before.
    r = await api.viewer.get("/api/v1/executions/reads-d1:2")
    assert r.status_code == 404 and r.json()["detail"] == "no execution 'reads-d1:2'"
