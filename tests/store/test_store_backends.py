"""The runtime store on both backends: SQLite (the default) and a real PostgreSQL server (a throwaway cluster the
``postgres`` fixture starts from Debian's packages). Every write an activity may repeat must stay idempotent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from tempano.store import Conflict, NewEvent, NewInstance, NotFound, Store

PLAN = {"nodes": {"web": {}}, "note": "plan documents are JSON: ünïcode, nesting", "list": [1, {"a": None}]}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    store = Store(url, secret_cipher=Fernet(Fernet.generate_key()))
    store.create_schema()
    yield store
    store.close()


def _deployment(store: Store, deployment_id: str = "d1", count: int = 3) -> None:
    store.put_blueprint("bp", PLAN, "hash")
    store.create_deployment(
        deployment_id,
        "bp",
        PLAN,
        {"x": 1},
        [NewInstance(id=f"web_{i}", node="web", index=i) for i in range(1, count + 1)],
        labels={"team": "nfv"},
    )


def test_dialect_is_the_one_asked(backend: Store) -> None:
    with backend.engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    assert backend.engine.dialect.name in {"sqlite", "postgresql"}


def test_blueprints_and_deployments(backend: Store) -> None:
    _deployment(backend)
    assert backend.get_blueprint("bp").plan == PLAN
    with pytest.raises(Conflict):
        backend.put_blueprint("bp", PLAN, "hash")
    deployment = backend.get_deployment("d1")
    assert (deployment.plan, deployment.inputs, deployment.labels, deployment.status) == (
        PLAN,
        {"x": 1},
        {"team": "nfv"},
        "created",
    )
    with pytest.raises(Conflict):
        backend.create_deployment("d1", "bp", PLAN, {}, [])
    with pytest.raises(Conflict, match="used by deployment"):
        backend.delete_blueprint("bp")
    backend.set_deployment_status("d1", "installed")
    assert [d.id for d in backend.list_deployments(status="installed")] == ["d1"]
    assert backend.list_deployments(blueprint_id="other") == []
    with pytest.raises(NotFound):
        backend.get_deployment("nope")


def test_delete_deployment_removes_everything_about_it(backend: Store) -> None:
    _deployment(backend)
    backend.create_execution("d1:1", "d1", 1, "install", {}, "dep:d1:exec:1:install")
    backend.record_resource("d1", "web_1", plugin="p", kind="k", resource_id="r1", idempotency_key="d1.web_1.create")
    backend.add_event("e1", "d1", "hello", execution_id="d1:1")
    backend.delete_deployment("d1")
    with pytest.raises(NotFound):
        backend.get_deployment("d1")
    assert backend.node_instances("d1") == []
    assert backend.resources("d1") == []
    assert backend.events("d1") == []
    assert backend.list_executions("d1") == []
    backend.delete_blueprint("bp")
    with pytest.raises(NotFound):
        backend.delete_deployment("d1")


def test_executions_are_recorded_once(backend: Store) -> None:
    _deployment(backend)
    first = backend.create_execution("d1:1", "d1", 1, "install", {"a": 1}, "wf")
    again = backend.create_execution("d1:1", "d1", 1, "install", {"a": 2}, "wf")  # a retried activity
    assert again == first and again.parameters == {"a": 1}
    backend.set_execution_status("d1:1", "running")
    assert backend.get_execution("d1:1").ended_at is None
    backend.set_execution_status("d1:1", "failed", error="boom")
    record = backend.get_execution("d1:1")
    assert (record.status, record.error) == ("failed", "boom") and record.ended_at is not None
    assert [e.seq for e in backend.list_executions("d1")] == [1]


def test_every_time_read_back_is_aware_utc(backend: Store) -> None:
    """SQLite keeps no time zone and PostgreSQL answers in the session's: the records hand out UTC either way."""
    if backend.engine.dialect.name == "postgresql":
        with backend.engine.begin() as conn:
            conn.execute(text(f"ALTER DATABASE \"{backend.engine.url.database}\" SET timezone TO 'Asia/Kolkata'"))
        backend.engine.dispose()  # new connections take the database's time zone
        with backend.engine.connect() as conn:
            assert conn.execute(text("SHOW timezone")).scalar() == "Asia/Kolkata"
    before = datetime.now(UTC)
    _deployment(backend)
    backend.create_execution("d1:1", "d1", 1, "install", {}, "wf")
    backend.set_execution_status("d1:1", "succeeded")
    backend.record_resource("d1", "web_1", plugin="p", kind="k", resource_id="r1", idempotency_key="d1.web_1.create")
    backend.add_event("e1", "d1", "hello", execution_id="d1:1")
    backend.add_token("t1", "ci", "viewer", "hash")
    after = datetime.now(UTC)

    records = [
        backend.get_blueprint("bp"),
        *backend.blueprint_page()[0],
        backend.get_deployment("d1"),
        *backend.deployment_page()[0],
        backend.get_execution("d1:1"),
        *backend.execution_page()[0],
        *backend.resources("d1"),
        *backend.events("d1"),
        backend.get_token("t1"),
    ]
    times = [(type(r).__name__, name, value) for r in records for name, value in r if isinstance(value, datetime)]
    assert {(kind, name) for kind, name, _ in times} == {
        ("BlueprintRecord", "created_at"),
        ("BlueprintSummary", "created_at"),
        ("DeploymentRecord", "created_at"),
        ("DeploymentRecord", "updated_at"),
        ("DeploymentSummary", "created_at"),
        ("DeploymentSummary", "updated_at"),
        ("ExecutionRecord", "created_at"),
        ("ExecutionRecord", "ended_at"),
        ("ResourceRecord", "created_at"),
        ("EventRecord", "ts"),
        ("TokenRecord", "created_at"),
    }
    for kind, name, value in times:
        assert value.tzinfo is UTC and before <= value <= after, (kind, name, value)


def test_node_instances_states_removal_and_merges(backend: Store) -> None:
    _deployment(backend)
    backend.add_node_instances("d1", [NewInstance(id="web_3", node="web", index=3)])  # exists: ignored
    backend.add_node_instances("d1", [NewInstance(id="web_4", node="web", index=4, group_instance="g1")])
    assert [i.id for i in backend.node_instances("d1")] == ["web_1", "web_2", "web_3", "web_4"]
    assert backend.max_instance_index("d1", "web") == 4
    backend.set_states("d1", ["web_1", "web_2"], "started")
    backend.mark_removed("d1", ["web_4"])
    assert [i.id for i in backend.node_instances("d1")] == ["web_1", "web_2", "web_3"]
    assert backend.node_instance("d1", "web_4").removed
    assert len(backend.node_instances("d1", include_removed=True)) == 4
    assert [i.id for i in backend.node_instances("d1", ids=["web_2", "web_9"])] == ["web_2"]

    backend.merge_attributes("d1", "web_1", {"ip": "10.0.0.1", "nested": {"k": [1, 2]}})
    backend.merge_attributes("d1", "web_1", {"port": 80}, outputs=("Standard.create", {"id": "x"}), state="created")
    backend.merge_attributes("d1", "web_1", {"port": 80}, outputs=("Standard.create", {"id": "x"}), state="created")
    web_1 = backend.node_instance("d1", "web_1")
    assert web_1.attributes == {"ip": "10.0.0.1", "nested": {"k": [1, 2]}, "port": 80}
    assert web_1.outputs == {"Standard.create": {"id": "x"}}
    assert web_1.state == "created"
    with pytest.raises(NotFound):
        backend.merge_attributes("d1", "web_9", {"a": 1})


def test_a_failed_deployment_with_nothing_installed_reads_created_again(backend: Store) -> None:
    _deployment(backend)  # web_1..web_3, uninitialized
    backend.set_deployment_status("d1", "failed")
    backend.set_states("d1", ["web_1"], "started")
    backend.created_again_if_nothing_installed("d1")
    assert backend.get_deployment("d1").status == "failed"  # web_1 is still installed
    backend.set_states("d1", ["web_1"], "uninitialized")
    backend.set_states("d1", ["web_2"], "deleted")
    backend.created_again_if_nothing_installed("d1")
    assert backend.get_deployment("d1").status == "created"
    backend.set_deployment_status("d1", "installed")  # only a failed or cancelled status changes
    backend.created_again_if_nothing_installed("d1")
    assert backend.get_deployment("d1").status == "installed"


def test_a_deleted_instance_keeps_no_attributes(backend: Store) -> None:
    """Whichever write makes an instance "deleted" (a step's final state, a delete operation's end, scale-in's
    removal), its attributes and outputs go with it: a reinstall starts afresh. Other states keep them."""
    _deployment(backend)
    backend.add_node_instances("d1", [NewInstance(id="web_4", node="web", index=4)])
    runtime = {"ip": "10.0.0.1", "server_id": "s-1"}
    for instance_id in ("web_1", "web_2", "web_3", "web_4"):
        backend.merge_attributes("d1", instance_id, runtime, outputs=("Standard.create", {"id": "x"}), state="started")
    backend.set_states("d1", ["web_1", "web_2"], "stopped")
    assert backend.node_instance("d1", "web_1").attributes == runtime

    backend.set_states("d1", ["web_1", "web_2"], "deleted")
    backend.merge_attributes("d1", "web_3", {"deleted_at": "now"}, outputs=("Standard.delete", {}), state="deleted")
    backend.mark_removed("d1", ["web_4"])
    for instance in backend.node_instances("d1", include_removed=True):
        assert (instance.state, instance.attributes, instance.outputs) == ("deleted", {}, {}), instance.id

    # installed again: only what the new operations write
    backend.merge_attributes("d1", "web_1", {"ip": "10.0.0.9"}, state="created")
    assert backend.node_instance("d1", "web_1").attributes == {"ip": "10.0.0.9"}


def test_concurrent_attribute_merges_lose_nothing(backend: Store) -> None:
    """Relationship operations write to a shared target while it runs its own: no write may be lost."""
    _deployment(backend)
    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait()
            for round in range(5):
                backend.merge_attributes("d1", "web_1", {f"a{n}_{round}": n})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    attributes = backend.node_instance("d1", "web_1").attributes
    assert len(attributes) == 60, sorted(set(f"a{n}_{r}" for n in range(12) for r in range(5)) - set(attributes))


def test_ledger_entries_are_unique_and_forgotten(backend: Store) -> None:
    _deployment(backend)
    for _ in range(2):  # a retried create records the same resource again
        backend.record_resource(
            "d1",
            "web_1",
            plugin="lab",
            kind="server",
            resource_id="srv-1",
            idempotency_key="d1.web_1.Standard.create",
            execution_id="d1:1",
            data={"name": "web-1"},
        )
    backend.record_resource("d1", "web_2", plugin="lab", kind="server", resource_id="srv-2", idempotency_key="k2")
    entries = backend.resources("d1")
    assert [(r.node_instance_id, r.resource_id) for r in entries] == [("web_1", "srv-1"), ("web_2", "srv-2")]
    assert entries[0].data == {"name": "web-1"} and entries[0].idempotency_key == "d1.web_1.Standard.create"
    assert [r.resource_id for r in backend.resources("d1", execution_id="d1:1")] == ["srv-1"]
    assert [r.resource_id for r in backend.resources("d1", "web_2")] == ["srv-2"]
    backend.forget_resource("d1", "web_1", "server", "srv-1")
    backend.forget_resource("d1", "web_1", "server", "srv-1")
    assert [r.resource_id for r in backend.resources("d1")] == ["srv-2"]


def test_events_are_added_once_per_key_even_concurrently(backend: Store) -> None:
    _deployment(backend)
    barrier = threading.Barrier(8)

    def add() -> None:
        barrier.wait()
        backend.add_event(
            "d1:1:web_1:create:1:operation_succeeded",
            "d1",
            "web_1 create succeeded",
            type="operation_succeeded",
            execution_id="d1:1",
            node_instance_id="web_1",
            operation="Standard.create",
            attempt=1,
            duration_s=0.5,
            data={"task": "Standard.create"},
        )

    threads = [threading.Thread(target=add) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backend.add_event("other", "d1", "a log line", execution_id="d1:2")
    events = backend.events("d1")
    assert [e.message for e in events] == ["web_1 create succeeded", "a log line"]
    assert events[0].duration_s == 0.5 and events[0].attempt == 1 and events[0].operation == "Standard.create"
    assert [e.message for e in backend.events("d1", after_id=events[0].id)] == ["a log line"]
    assert [e.message for e in backend.events(execution_id="d1:2")] == ["a log line"]
    assert [e.id for e in backend.events("d1", types=["operation_succeeded"])] == [events[0].id]
    assert backend.succeeded_operations("d1:1") == {("web_1", "Standard.create")}


def test_running_operations_are_the_starts_not_yet_ended(backend: Store) -> None:
    _deployment(backend, count=5)
    steps = [
        # (instance, task key, event type, attempt): in the order they happened
        ("web_1", "Standard.create", "operation_started", 1),
        ("web_1", "Standard.create", "operation_succeeded", 1),
        ("web_1", "Standard.configure", "operation_started", 1),  # running
        ("web_2", "Standard.create", "operation_started", 1),
        ("web_2", "Standard.create", "operation_failed", 1),
        ("web_2", "Standard.create", "operation_started", 2),  # running: its retry
        ("web_3", "Standard.start", "operation_started", 1),
        ("web_3", "Standard.start", "operation_succeeded", 1),
        ("web_3", "Standard.start@2", "operation_started", 1),  # running: the same operation again
        ("web_4", "Configure.add_target->web_1", "operation_started", 1),
        ("web_4", "Configure.add_target->web_1", "operation_succeeded", 1),
        ("web_4", "Configure.add_target->web_2", "operation_started", 1),  # running: another target
        ("web_5", "Standard.stop", "operation_started", 1),
        ("web_5", "Standard.stop", "operation_cancelled", 1),
    ]
    events = [
        NewEvent(
            key=f"{n}:{typ}",
            deployment_id="d1",
            message=f"{instance} {task} {typ}",
            type=typ,
            execution_id="d1:1",
            node_instance_id=instance,
            operation=task.split("@")[0].split("->")[0],
            attempt=attempt,
            data={"task": task},
        )
        for n, (instance, task, typ, attempt) in enumerate(steps)
    ]
    backend.add_events(events)
    backend.add_event(  # another execution's start is not this one's
        "other",
        "d1",
        "elsewhere",
        type="operation_started",
        execution_id="d1:2",
        node_instance_id="web_5",
        operation="Standard.stop",
        attempt=1,
        data={"task": "Standard.stop"},
    )
    running = backend.running_operations("d1:1")
    assert [(e.node_instance_id, e.data["task"], e.attempt) for e in running] == [
        ("web_1", "Standard.configure", 1),
        ("web_2", "Standard.create", 2),
        ("web_3", "Standard.start@2", 1),
        ("web_4", "Configure.add_target->web_2", 1),
    ]
    assert backend.running_operations("d1:9") == []


def test_secrets_are_encrypted_at_rest(backend: Store) -> None:
    backend.put_secret("token", "s3cret")
    backend.put_secret("token", "s3cret-2")
    backend.put_secret("other", "x")
    assert backend.get_secret("token") == "s3cret-2"
    assert backend.list_secrets() == ["other", "token"]
    with backend.engine.connect() as conn:
        raw = conn.execute(text("select value from secrets where name = 'token'")).scalar()
    assert isinstance(raw, str) and "s3cret" not in raw
    backend.delete_secret("token")
    with pytest.raises(NotFound):
        backend.get_secret("token")
    with pytest.raises(NotFound):
        backend.delete_secret("token")


def test_concurrent_writes_commit_together_and_a_failing_one_fails_alone(backend: Store) -> None:
    """Dozens of activity threads writing at once (on SQLite they are committed together): every write lands,
    exactly once, and a write that fails (an instance that does not exist) fails alone, with its own error."""
    _deployment(backend, count=40)
    start = threading.Barrier(41)
    errors: dict[str, BaseException] = {}

    def write(i: int) -> None:
        instance = f"web_{i}" if i else "web_missing"
        start.wait()
        try:
            for round in range(5):
                backend.merge_attributes(
                    "d1",
                    instance,
                    {f"round_{round}": i},
                    events=[NewEvent(key=f"k{i}:{round}", deployment_id="d1", message=f"{instance} round {round}")],
                )
        except NotFound as e:
            errors[instance] = e

    threads = [threading.Thread(target=write, args=(i,)) for i in range(41)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert list(errors) == ["web_missing"] and "web_missing" in str(errors["web_missing"])
    instances = {i.id: i for i in backend.node_instances("d1")}
    for i in range(1, 41):
        assert instances[f"web_{i}"].attributes == {f"round_{r}": i for r in range(5)}
    messages = [e.message for e in backend.events("d1", limit=10_000)]
    assert len(messages) == 200 and len(set(messages)) == 200
