"""The Store: every read and write of tempano's runtime state, SQLite by default, PostgreSQL by URL.

Writes that an activity may repeat on retry are idempotent: events carry a deterministic key, ledger entries are
unique per (instance, kind, resource id), node instances are inserted once, attribute writes are merges.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, bindparam, case, create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError, IntegrityError

from tempano.store import schema as s
from tempano.store._api import ApiQueries
from tempano.store.records import (
    BlueprintRecord,
    DeploymentRecord,
    EventRecord,
    ExecutionRecord,
    NewEvent,
    NewInstance,
    NodeInstanceRecord,
    ResourceRecord,
)


class StoreError(Exception):
    """Base of the store's errors."""


class NotFound(StoreError, LookupError):
    """No such blueprint, deployment, execution, node instance or secret."""


class Conflict(StoreError):
    """The object exists already, or its state forbids the change."""


def _now() -> datetime:
    return datetime.now(UTC)


T = TypeVar("T")

# The statements every operation runs, built once with bound parameters: building a statement and its cache key for
# each call was a third of the store's CPU in an install (the SQL itself a twentieth).
_NI = s.node_instances
_THIS_INSTANCE = (_NI.c.deployment_id == bindparam("deployment"), _NI.c.id == bindparam("instance"))
_ONE_INSTANCE = select(_NI).where(*_THIS_INSTANCE)
_THESE_INSTANCES = (
    _NI.c.deployment_id == bindparam("deployment"),
    _NI.c.id.in_(bindparam("instances", expanding=True)),
)
_SET_STATES = update(_NI).where(*_THESE_INSTANCES).values(state=bindparam("new_state"), version=_NI.c.version + 1)
_SET_STATES_DELETED = (
    update(_NI).where(*_THESE_INSTANCES).values(state="deleted", attributes={}, outputs={}, version=_NI.c.version + 1)
)
"""An instance that reaches "deleted" keeps no runtime attributes or outputs: what they described is gone, and a
reinstall (heal, reinstall, scale) must start afresh, not from a deleted server's id or address."""
_LOCK_AND_READ_RUNTIME = (
    update(_NI).where(*_THIS_INSTANCE).values(version=_NI.c.version + 1).returning(_NI.c.attributes, _NI.c.outputs)
)
_WRITE_RUNTIME = (
    update(_NI)
    .where(*_THIS_INSTANCE)
    .values(
        attributes=bindparam("new_attributes", type_=_NI.c.attributes.type),
        outputs=bindparam("new_outputs", type_=_NI.c.outputs.type),
    )
)
_WRITE_RUNTIME_STATE = _WRITE_RUNTIME.values(state=bindparam("new_state"))
_ALL = select(_NI).where(_NI.c.deployment_id == bindparam("deployment"))
_OF_NODE = _ALL.where(_NI.c.node == bindparam("node")).order_by(_NI.c.node, _NI.c.idx)
_WITH_IDS = _ALL.where(_NI.c.id.in_(bindparam("instances", expanding=True))).order_by(_NI.c.node, _NI.c.idx)
_LIVE_OF_NODE = _OF_NODE.where(_NI.c.removed.is_(False))
_LIVE_WITH_IDS = _WITH_IDS.where(_NI.c.removed.is_(False))


class _Write(Generic[T]):
    """One caller's write, waiting in a group commit."""

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self.fn = fn
        self.finished = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


SQLITE_POOL = 96
"""Connections kept open to a SQLite store: at least the worker's threads (64 for operations, 16 for store
activities) and the API's."""


class _GroupCommit:
    """SQLite has one writer. When dozens of activity threads write at once (a step of 25 operations starting or
    ending together), committing each write alone queues them behind each other, and each holder of the write
    lock also waits for the GIL between its SQLite calls. Instead, a writer that finds the queue busy leaves its
    write there, and whoever commits next (the leader) runs every queued write in one transaction. A write that
    fails makes the leader run the batch's writes one by one, so only that one fails, with its own error."""

    def __init__(self, engine: Engine, lock: threading.RLock) -> None:
        self._engine = engine
        self._lock = lock
        self._cond = threading.Condition()
        self._queue: list[_Write[Any]] = []
        self._leading = False

    def run(self, fn: Callable[[Connection], T]) -> T:
        write = _Write(fn)
        with self._cond:
            self._queue.append(write)
            while self._leading and not write.finished:
                self._cond.wait()
            lead = not write.finished
            if lead:
                self._leading = True
                batch, self._queue = self._queue, []
        if lead:
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    for w in batch:
                        if not w.finished:  # an interrupt in the leader: nobody may wait forever
                            w.error = w.error or StoreError("the write was interrupted before it committed")
                            w.finished = True
                    self._leading = False
                    self._cond.notify_all()
        return write.outcome()

    def _commit(self, batch: list[_Write[Any]]) -> None:
        with self._lock:
            try:
                with self._engine.begin() as conn:
                    values = [w.fn(conn) for w in batch]
            except Exception as e:
                if len(batch) == 1:
                    batch[0].error = e
                else:
                    for w in batch:
                        try:
                            with self._engine.begin() as conn:
                                w.value = w.fn(conn)
                        except Exception as alone:
                            w.error = alone
                for w in batch:
                    w.finished = True
                return
            for w, value in zip(batch, values, strict=True):
                w.value = value
                w.finished = True


class Store(ApiQueries):
    """tempano's runtime store. Thread-safe; one instance per process is enough."""

    def __init__(self, url: str, *, secret_cipher: Any | None = None) -> None:
        self.url = url
        self._cipher = secret_cipher
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Every thread of a worker may read at once (dozens of operations starting together): a connection pool
            # smaller than that closed the connections beyond it at each return, and opened them again (with
            # their pragmas) at the next read. SQLite connections are cheap to keep.
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=SQLITE_POOL, max_overflow=32
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)
        self._schema_lock = threading.Lock()
        # SQLite has one writer at a time, and a writer that finds the database locked sleeps in growing steps
        # (its busy handler) instead of being woken when the lock is free: with dozens of activity threads writing,
        # those sleeps dominated an install. Our own writers queue on a lock instead; other processes (the API)
        # still meet the busy timeout.
        self._writer: threading.RLock | None = threading.RLock() if url.startswith("sqlite") else None
        self._group = _GroupCommit(self.engine, self._writer) if self._writer is not None else None
        self._insert_event = self._insert_ignore(s.events)
        self._schema_ready = False

    def create_schema(self) -> None:
        with self._schema_lock:
            if not self._schema_ready:
                try:
                    s.metadata.create_all(self.engine)
                except DBAPIError:
                    # another process (API and worker starting together) created the tables between our check and
                    # our CREATE: once more, and the check now sees them
                    s.metadata.create_all(self.engine)
                self._schema_ready = True

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- helpers

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A write transaction (serialized within this process on SQLite)."""
        if self._writer is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._writer, self.engine.begin() as conn:
            yield conn

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Runs ``fn`` in a write transaction: on SQLite, committed together with concurrent writes of this
        process (see :class:`_GroupCommit`), so ``fn`` must do nothing but its statements."""
        if self._group is None:
            with self.engine.begin() as conn:
                return fn(conn)
        return self._group.run(fn)

    def _insert_ignore(self, table: Any) -> Any:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if self.engine.dialect.name == "sqlite":
            # INSERT OR IGNORE, not sqlite.insert().on_conflict_do_nothing(): SQLAlchemy cannot cache the compiled
            # form of the latter, and recompiling it for every event was a tenth of the worker's CPU in an install.
            # (OR IGNORE also skips rows breaking NOT NULL or CHECK; our rows come from validated records.)
            return insert(table).prefix_with("OR IGNORE", dialect="sqlite")
        return insert(table)

    def _one(self, conn: Connection, stmt: Any, what: str) -> Row[Any]:
        row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(what)
        return row

    # ---------------------------------------------------------------- blueprints

    def put_blueprint(
        self,
        blueprint_id: str,
        plan: Mapping[str, Any],
        plan_hash: str,
        *,
        description: str = "",
        source_dir: str | None = None,
        main_file: str | None = None,
    ) -> BlueprintRecord:
        with self._begin() as conn:
            try:
                conn.execute(
                    insert(s.blueprints).values(
                        id=blueprint_id,
                        description=description,
                        plan=dict(plan),
                        plan_hash=plan_hash,
                        source_dir=source_dir,
                        main_file=main_file,
                        created_at=_now(),
                    )
                )
            except IntegrityError:
                raise Conflict(
                    f"a blueprint named {blueprint_id!r} exists already; delete it or pick another id"
                ) from None
        return self.get_blueprint(blueprint_id)

    def get_blueprint(self, blueprint_id: str) -> BlueprintRecord:
        with self.engine.connect() as conn:
            row = self._one(
                conn, select(s.blueprints).where(s.blueprints.c.id == blueprint_id), f"no blueprint {blueprint_id!r}"
            )
        return BlueprintRecord(**row._mapping)

    def delete_blueprint(self, blueprint_id: str) -> None:
        with self._begin() as conn:
            users = (
                conn.execute(select(s.deployments.c.id).where(s.deployments.c.blueprint_id == blueprint_id))
                .scalars()
                .all()
            )
            if users:
                raise Conflict(
                    f"blueprint {blueprint_id!r} is used by deployment(s) {', '.join(sorted(users))}; delete them first"
                )
            if conn.execute(delete(s.blueprints).where(s.blueprints.c.id == blueprint_id)).rowcount == 0:
                raise NotFound(f"no blueprint {blueprint_id!r}")

    # ---------------------------------------------------------------- deployments

    def create_deployment(
        self,
        deployment_id: str,
        blueprint_id: str,
        plan: Mapping[str, Any],
        inputs: Mapping[str, Any],
        instances: Sequence[NewInstance],
        *,
        labels: Mapping[str, str] | None = None,
    ) -> DeploymentRecord:
        now = _now()
        with self._begin() as conn:
            try:
                conn.execute(
                    insert(s.deployments).values(
                        id=deployment_id,
                        blueprint_id=blueprint_id,
                        plan=dict(plan),
                        inputs=dict(inputs),
                        labels=dict(labels or {}),
                        status="created",
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError:
                raise Conflict(f"a deployment named {deployment_id!r} exists already") from None
            self._insert_instances(conn, deployment_id, instances)
        return self.get_deployment(deployment_id)

    def get_deployment(self, deployment_id: str) -> DeploymentRecord:
        with self.engine.connect() as conn:
            row = self._one(
                conn,
                select(s.deployments).where(s.deployments.c.id == deployment_id),
                f"no deployment {deployment_id!r}",
            )
        return DeploymentRecord(**row._mapping)

    def list_deployments(
        self, *, blueprint_id: str | None = None, status: str | None = None, offset: int = 0, limit: int = 1000
    ) -> list[DeploymentRecord]:
        stmt = select(s.deployments).order_by(s.deployments.c.id).offset(offset).limit(limit)
        if blueprint_id:
            stmt = stmt.where(s.deployments.c.blueprint_id == blueprint_id)
        if status:
            stmt = stmt.where(s.deployments.c.status == status)
        with self.engine.connect() as conn:
            return [DeploymentRecord(**r._mapping) for r in conn.execute(stmt).all()]

    def set_deployment_status(self, deployment_id: str, status: str) -> None:
        with self._begin() as conn:
            conn.execute(
                update(s.deployments)
                .where(s.deployments.c.id == deployment_id)
                .values(status=status, updated_at=_now())
            )

    def created_again_if_nothing_installed(self, deployment_id: str) -> None:
        """A failed or cancelled deployment none of whose instances is beyond ``uninitialized`` (a rollback removed
        what its install, uninstall or reinstall made) reads ``created`` again: install it anew. Any other status
        (a rolled back scale-out or heal leaves an installed deployment) stays. One statement: the instances it
        looks at cannot change between its look and its write."""
        installed = select(_NI.c.id).where(
            _NI.c.deployment_id == deployment_id, _NI.c.state.not_in(("uninitialized", "deleted"))
        )
        with self._begin() as conn:
            conn.execute(
                update(s.deployments)
                .where(
                    s.deployments.c.id == deployment_id,
                    s.deployments.c.status.in_(("failed", "cancelled")),
                    ~installed.exists(),
                )
                .values(status="created", updated_at=_now())
            )

    def delete_deployment(self, deployment_id: str) -> None:
        """Deletes the deployment and everything recorded about it (the caller checks it is uninstalled)."""
        with self._begin() as conn:
            for table in (s.node_instances, s.ledger, s.events, s.executions):
                conn.execute(delete(table).where(table.c.deployment_id == deployment_id))
            if conn.execute(delete(s.deployments).where(s.deployments.c.id == deployment_id)).rowcount == 0:
                raise NotFound(f"no deployment {deployment_id!r}")

    # ---------------------------------------------------------------- executions

    def create_execution(
        self,
        execution_id: str,
        deployment_id: str,
        seq: int,
        workflow: str,
        parameters: Mapping[str, Any],
        workflow_id: str,
        *,
        ended: tuple[str, str] | None = None,
    ) -> ExecutionRecord:
        """Records an execution as it starts (``pending``), or one that ended without running (``ended``: its
        status and error, e.g. cancelled while queued), in one write."""
        now = _now()
        status, error = ended if ended is not None else ("pending", None)
        with self._begin() as conn:
            conn.execute(
                self._insert_ignore(s.executions).values(
                    id=execution_id,
                    deployment_id=deployment_id,
                    seq=seq,
                    workflow=workflow,
                    parameters=dict(parameters),
                    status=status,
                    error=error,
                    workflow_id=workflow_id,
                    created_at=now,
                    ended_at=now if ended is not None else None,
                )
            )
        return self.get_execution(execution_id)

    def set_execution_status(self, execution_id: str, status: str, *, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "error": error}
        if status not in {"pending", "running"}:
            values["ended_at"] = _now()
        with self._begin() as conn:
            conn.execute(update(s.executions).where(s.executions.c.id == execution_id).values(**values))

    def get_execution(self, execution_id: str) -> ExecutionRecord:
        with self.engine.connect() as conn:
            row = self._one(
                conn, select(s.executions).where(s.executions.c.id == execution_id), f"no execution {execution_id!r}"
            )
        return ExecutionRecord(**row._mapping)

    def list_executions(self, deployment_id: str | None = None) -> list[ExecutionRecord]:
        stmt = select(s.executions).order_by(s.executions.c.deployment_id, s.executions.c.seq)
        if deployment_id:
            stmt = stmt.where(s.executions.c.deployment_id == deployment_id)
        with self.engine.connect() as conn:
            return [ExecutionRecord(**r._mapping) for r in conn.execute(stmt).all()]

    # ---------------------------------------------------------------- node instances

    def _insert_instances(self, conn: Connection, deployment_id: str, instances: Sequence[NewInstance]) -> None:
        if not instances:
            return
        conn.execute(
            self._insert_ignore(s.node_instances),
            [
                {
                    "deployment_id": deployment_id,
                    "id": i.id,
                    "node": i.node,
                    "idx": i.index,
                    "host_id": i.host_id,
                    "group_instance": i.group_instance,
                    "state": "uninitialized",
                    "attributes": {},
                    "outputs": {},
                    "removed": False,
                    "version": 1,
                }
                for i in instances
            ],
        )

    def add_node_instances(self, deployment_id: str, instances: Sequence[NewInstance]) -> None:
        with self._begin() as conn:
            self._insert_instances(conn, deployment_id, instances)

    def node_instances(
        self,
        deployment_id: str,
        *,
        ids: Iterable[str] | None = None,
        node: str | None = None,
        include_removed: bool = False,
    ) -> list[NodeInstanceRecord]:
        if (ids is None) != (node is None):  # the frequent reads: prebuilt statements
            stmt_, params = (
                (_LIVE_OF_NODE if not include_removed else _OF_NODE, {"node": node})
                if node is not None
                else (_LIVE_WITH_IDS if not include_removed else _WITH_IDS, {"instances": list(ids or ())})
            )
            with self.engine.connect() as conn:
                return [_instance(r) for r in conn.execute(stmt_, {"deployment": deployment_id, **params}).all()]
        stmt = select(s.node_instances).where(s.node_instances.c.deployment_id == deployment_id)
        if ids is not None:
            stmt = stmt.where(s.node_instances.c.id.in_(list(ids)))
        if node is not None:
            stmt = stmt.where(s.node_instances.c.node == node)
        if not include_removed:
            stmt = stmt.where(s.node_instances.c.removed.is_(False))
        stmt = stmt.order_by(s.node_instances.c.node, s.node_instances.c.idx)
        with self.engine.connect() as conn:
            return [_instance(r) for r in conn.execute(stmt).all()]

    def node_instance(self, deployment_id: str, instance_id: str) -> NodeInstanceRecord:
        with self.engine.connect() as conn:
            row = conn.execute(_ONE_INSTANCE, {"deployment": deployment_id, "instance": instance_id}).first()
        if row is None:
            raise NotFound(f"deployment {deployment_id!r} has no node instance {instance_id!r}")
        return _instance(row)

    def max_instance_index(self, deployment_id: str, node: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.max(s.node_instances.c.idx)).where(
                    s.node_instances.c.deployment_id == deployment_id, s.node_instances.c.node == node
                )
            ).scalar()
        return int(value or 0)

    def set_states(
        self, deployment_id: str, instance_ids: Sequence[str], state: str, *, events: Sequence[NewEvent] = ()
    ) -> None:
        """Sets the instances' state, and adds the events in the same transaction."""
        with self.together() as writes:
            writes.set_states(deployment_id, instance_ids, state, events=events)

    @contextmanager
    def together(self) -> Iterator[Writes]:
        """Collects state changes, attribute merges and events, and commits them in one transaction when the block
        ends (nothing is written if it raises): a chain of operations writes one operation's end and the next
        one's start at once."""
        writes = Writes(self)
        yield writes
        if writes.pending:
            self._write(writes.run)

    def mark_removed(self, deployment_id: str, instance_ids: Sequence[str]) -> None:
        with self._begin() as conn:
            conn.execute(
                _SET_STATES_DELETED.values(removed=True), {"deployment": deployment_id, "instances": list(instance_ids)}
            )

    def merge_attributes(
        self,
        deployment_id: str,
        instance_id: str,
        writes: Mapping[str, Any],
        *,
        outputs: tuple[str, Mapping[str, Any]] | None = None,
        state: str | None = None,
        events: Sequence[NewEvent] = (),
    ) -> None:
        """Merges attribute writes (and an operation's outputs) into the instance, and adds the events in the same
        transaction; idempotent."""
        with self.together() as together:
            together.merge_attributes(deployment_id, instance_id, writes, outputs=outputs, state=state, events=events)

    # ---------------------------------------------------------------- ledger

    def record_resource(
        self,
        deployment_id: str,
        node_instance_id: str,
        *,
        plugin: str,
        kind: str,
        resource_id: str,
        idempotency_key: str,
        execution_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        external: bool = False,
    ) -> None:
        self._write(
            lambda conn: conn.execute(
                self._insert_ignore(s.ledger).values(
                    deployment_id=deployment_id,
                    node_instance_id=node_instance_id,
                    execution_id=execution_id,
                    plugin=plugin,
                    kind=kind,
                    resource_id=resource_id,
                    idempotency_key=idempotency_key,
                    data=dict(data or {}),
                    external=external,
                    created_at=_now(),
                )
            )
        )

    def forget_resource(self, deployment_id: str, node_instance_id: str, kind: str, resource_id: str) -> None:
        with self._begin() as conn:
            conn.execute(
                delete(s.ledger).where(
                    s.ledger.c.deployment_id == deployment_id,
                    s.ledger.c.node_instance_id == node_instance_id,
                    s.ledger.c.kind == kind,
                    s.ledger.c.resource_id == resource_id,
                )
            )

    def resources(
        self, deployment_id: str, node_instance_id: str | None = None, *, execution_id: str | None = None
    ) -> list[ResourceRecord]:
        stmt = select(s.ledger).where(s.ledger.c.deployment_id == deployment_id).order_by(s.ledger.c.id)
        if node_instance_id is not None:
            stmt = stmt.where(s.ledger.c.node_instance_id == node_instance_id)
        if execution_id is not None:
            stmt = stmt.where(s.ledger.c.execution_id == execution_id)
        with self.engine.connect() as conn:
            return [ResourceRecord(**r._mapping) for r in conn.execute(stmt).all()]

    # ---------------------------------------------------------------- events

    def add_event(
        self,
        key: str,
        deployment_id: str,
        message: str,
        *,
        type: str = "log",
        level: str = "info",
        execution_id: str | None = None,
        node_instance_id: str | None = None,
        operation: str | None = None,
        attempt: int | None = None,
        duration_s: float | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Adds an event once: a second call with the same key (a retried activity) is ignored."""
        self.add_events(
            [
                NewEvent(
                    key=key,
                    deployment_id=deployment_id,
                    message=message,
                    type=type,
                    level=level,
                    execution_id=execution_id,
                    node_instance_id=node_instance_id,
                    operation=operation,
                    attempt=attempt,
                    duration_s=duration_s,
                    data=dict(data or {}),
                )
            ]
        )

    def add_events(self, events: Sequence[NewEvent]) -> None:
        """Adds events in one transaction, each once (see :meth:`add_event`)."""
        with self.together() as writes:
            writes.add_events(events)

    def _insert_events(self, conn: Connection, events: Sequence[NewEvent]) -> None:
        if events:
            now = _now()
            conn.execute(self._insert_event, [{**e.model_dump(), "data": dict(e.data), "ts": now} for e in events])

    def events(
        self,
        deployment_id: str | None = None,
        *,
        execution_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
        types: Sequence[str] | None = None,
    ) -> list[EventRecord]:
        stmt = select(s.events).where(s.events.c.id > after_id).order_by(s.events.c.id).limit(limit)
        if deployment_id is not None:
            stmt = stmt.where(s.events.c.deployment_id == deployment_id)
        if execution_id is not None:
            stmt = stmt.where(s.events.c.execution_id == execution_id)
        if types:
            stmt = stmt.where(s.events.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            return [EventRecord(**r._mapping) for r in conn.execute(stmt).all()]

    def succeeded_operations(
        self, execution_id: str, instance_ids: Sequence[str] | None = None
    ) -> set[tuple[str, str]]:
        """(node instance, operation key) pairs that succeeded in an execution (on these instances): what resume
        skips."""
        stmt = select(s.events.c.node_instance_id, s.events.c.data).where(
            s.events.c.execution_id == execution_id, s.events.c.type == "operation_succeeded"
        )
        if instance_ids is not None:
            stmt = stmt.where(s.events.c.node_instance_id.in_(list(instance_ids)))
        with self.engine.connect() as conn:
            return {(r.node_instance_id, str((r.data or {}).get("task"))) for r in conn.execute(stmt).all()}

    def running_operations(self, execution_id: str) -> list[EventRecord]:
        """The ``operation_started`` events of an execution not followed (yet) by their operation's end: what it
        runs now, operation by operation, also inside an activity that runs several in a row. Worked out by the
        database (per instance and task key, the last start and the last end), not by reading every event: an
        execution of 10,000 instances has 60,000 of them."""
        e = s.events
        ends = ("operation_succeeded", "operation_failed", "operation_cancelled")
        last = (
            select(
                func.max(case((e.c.type == "operation_started", e.c.id))).label("start"),
                func.max(case((e.c.type.in_(ends), e.c.id))).label("end"),
            )
            .where(e.c.execution_id == execution_id, e.c.type.in_(("operation_started", *ends)))
            .group_by(e.c.node_instance_id, e.c.data["task"].as_string())
            .subquery()
        )
        running = select(last.c.start).where(
            last.c.start.is_not(None), or_(last.c.end.is_(None), last.c.start > last.c.end)
        )
        stmt = select(e).where(e.c.id.in_(running)).order_by(e.c.id)
        with self.engine.connect() as conn:
            return [EventRecord(**row._mapping) for row in conn.execute(stmt).all()]

    def operation_history(self, execution_id: str, instance_id: str) -> tuple[set[str], dict[str, int]]:
        """An instance's operations in an execution: the keys that succeeded, and per key the attempts started
        (what a retried chain of operations skips, and each operation's next attempt number)."""
        stmt = select(s.events.c.type, s.events.c.data, s.events.c.attempt).where(
            s.events.c.execution_id == execution_id,
            s.events.c.node_instance_id == instance_id,
            s.events.c.type.in_(("operation_started", "operation_succeeded")),
        )
        succeeded: set[str] = set()
        attempts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(stmt).all():
                key = str((row.data or {}).get("task"))
                if row.type == "operation_succeeded":
                    succeeded.add(key)
                else:
                    attempts[key] = max(attempts.get(key, 0), row.attempt or 0)
        return succeeded, attempts

    # ---------------------------------------------------------------- secrets

    def put_secret(self, name: str, value: str) -> None:
        if self._cipher is None:
            raise StoreError("no secret key is configured (TEMPANO_SECRET_KEY); secrets cannot be stored")
        token = self._cipher.encrypt(value.encode()).decode()
        now = _now()
        with self._begin() as conn:
            updated = conn.execute(
                update(s.secrets).where(s.secrets.c.name == name).values(value=token, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(insert(s.secrets).values(name=name, value=token, created_at=now, updated_at=now))

    def get_secret(self, name: str) -> str:
        if self._cipher is None:
            raise StoreError("no secret key is configured (TEMPANO_SECRET_KEY); secrets cannot be read")
        with self.engine.connect() as conn:
            row = self._one(conn, select(s.secrets.c.value).where(s.secrets.c.name == name), f"no secret {name!r}")
        return str(self._cipher.decrypt(row.value.encode()).decode())

    def list_secrets(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(s.secrets.c.name).order_by(s.secrets.c.name)).scalars().all())

    def delete_secret(self, name: str) -> None:
        with self._begin() as conn:
            if conn.execute(delete(s.secrets).where(s.secrets.c.name == name)).rowcount == 0:
                raise NotFound(f"no secret {name!r}")


@dataclass
class _Merge:
    deployment_id: str
    instance_id: str
    writes: Mapping[str, Any]
    outputs: tuple[str, Mapping[str, Any]] | None
    state: str | None

    def run(self, conn: Connection) -> None:
        this = {"deployment": self.deployment_id, "instance": self.instance_id}
        # Lock the row as it is read (an UPDATE takes PostgreSQL's row lock and SQLite's write lock, where
        # SELECT ... FOR UPDATE does not exist): concurrent merges into one instance (relationship operations
        # writing to a shared target) would otherwise lose each other's writes.
        row = conn.execute(_LOCK_AND_READ_RUNTIME, this).first()
        if row is None:
            raise NotFound(f"deployment {self.deployment_id!r} has no node instance {self.instance_id!r}")
        attributes = {**(row.attributes or {}), **self.writes}
        all_outputs = dict(row.outputs or {})
        if self.outputs is not None:
            all_outputs[self.outputs[0]] = dict(self.outputs[1])
        if self.state == "deleted":  # see _SET_STATES_DELETED
            attributes, all_outputs = {}, {}
        values = {**this, "new_attributes": attributes, "new_outputs": all_outputs}
        if self.state is None:
            conn.execute(_WRITE_RUNTIME, values)
        else:
            conn.execute(_WRITE_RUNTIME_STATE, {**values, "new_state": self.state})


@dataclass
class _States:
    deployment_id: str
    instance_ids: list[str]
    state: str

    def run(self, conn: Connection) -> None:
        these = {"deployment": self.deployment_id, "instances": self.instance_ids}
        if self.state == "deleted":
            conn.execute(_SET_STATES_DELETED, these)
        else:
            conn.execute(_SET_STATES, {**these, "new_state": self.state})


class Writes:
    """The writes of one :meth:`Store.together` block, run in its transaction: the events first, in the order they
    came (one statement), then the instance changes in theirs. A state set on the instance that the write before
    merged into becomes part of that merge (a chain's "configured" then "starting" is one UPDATE)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._events: list[NewEvent] = []
        self._changes: list[_Merge | _States] = []

    @property
    def pending(self) -> bool:
        return bool(self._events or self._changes)

    def run(self, conn: Connection) -> None:
        self._store._insert_events(conn, self._events)
        for change in self._changes:
            change.run(conn)

    def set_states(
        self, deployment_id: str, instance_ids: Sequence[str], state: str, *, events: Sequence[NewEvent] = ()
    ) -> None:
        """Sets the instances' state, and adds the events."""
        last = self._changes[-1] if self._changes else None
        if isinstance(last, _Merge) and (last.deployment_id, [last.instance_id]) == (deployment_id, list(instance_ids)):
            last.state = state
        elif instance_ids:
            self._changes.append(_States(deployment_id, list(instance_ids), state))
        self.add_events(events)

    def add_events(self, events: Sequence[NewEvent]) -> None:
        """Adds events, each once (see :meth:`Store.add_event`)."""
        self._events.extend(events)

    def merge_attributes(
        self,
        deployment_id: str,
        instance_id: str,
        writes: Mapping[str, Any],
        *,
        outputs: tuple[str, Mapping[str, Any]] | None = None,
        state: str | None = None,
        events: Sequence[NewEvent] = (),
    ) -> None:
        """Merges attribute writes (and an operation's outputs) into the instance, sets its state, and adds the
        events; idempotent."""
        self._changes.append(_Merge(deployment_id, instance_id, dict(writes), outputs, state))
        self.add_events(events)


def _instance(row: Row[Any]) -> NodeInstanceRecord:
    m = row._mapping
    return NodeInstanceRecord(
        deployment_id=m["deployment_id"],
        id=m["id"],
        node=m["node"],
        index=m["idx"],
        host_id=m["host_id"],
        group_instance=m["group_instance"],
        state=m["state"],
        attributes=m["attributes"] or {},
        outputs=m["outputs"] or {},
        removed=bool(m["removed"]),
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
