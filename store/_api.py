"""The API's own store queries and tables (API tokens, paged listings, metrics aggregates).

Kept apart from the engine's store code: ``Store`` mixes this class in, so both share one engine and schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, Engine, String, Table, case, func, select, update
from sqlalchemy.exc import IntegrityError

from tempano.store import schema as s
from tempano.store.records import ExecutionRecord, UtcDatetime, _Record

api_tokens = Table(
    "api_tokens",
    s.metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

RUNNING_STATUSES = ("pending", "running")


class TokenRecord(_Record):
    """An API token as stored: its hash only, never the token itself."""

    id: str
    name: str
    role: str
    created_at: UtcDatetime
    revoked: bool


class BlueprintSummary(_Record):
    """A blueprint without its plan (listings)."""

    id: str
    description: str
    plan_hash: str
    created_at: UtcDatetime


class DeploymentSummary(_Record):
    """A deployment without its plan (listings)."""

    id: str
    blueprint_id: str
    status: str
    labels: dict[str, str]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ApiQueries:
    """Store methods used by the API only."""

    engine: Engine

    # ---------------------------------------------------------------- tokens

    def add_token(self, token_id: str, name: str, role: str, token_hash: str) -> TokenRecord:
        from tempano.store._store import Conflict

        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            try:
                conn.execute(
                    api_tokens.insert().values(
                        id=token_id, name=name, role=role, token_hash=token_hash, created_at=now, revoked=False
                    )
                )
            except IntegrityError:
                raise Conflict(f"a token with id {token_id!r} (or the same value) exists already") from None
        return TokenRecord(id=token_id, name=name, role=role, created_at=now, revoked=False)

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == token_hash)).first()
        return None if row is None else _token(row._mapping)

    def get_token(self, token_id: str) -> TokenRecord:
        from tempano.store._store import NotFound

        with self.engine.connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return _token(row._mapping)

    def list_tokens(self) -> list[TokenRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)).all()
        return [_token(r._mapping) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        from tempano.store._store import NotFound

        with self.engine.begin() as conn:
            done = conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked=True)).rowcount
        if not done:
            raise NotFound(f"no token {token_id!r}")

    def count_active_tokens(self, role: str | None = None) -> int:
        stmt = select(func.count()).select_from(api_tokens).where(api_tokens.c.revoked.is_(False))
        if role is not None:
            stmt = stmt.where(api_tokens.c.role == role)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    # ---------------------------------------------------------------- listings

    def recorded_execution(self, execution_id: str, deployment_id: str) -> ExecutionRecord | None:
        """The execution as recorded; None when its deployment exists but has not recorded it (its workflow
        records one only as it starts it). NotFound when the deployment does not exist either: one query answers
        both, so an unknown id costs one read."""
        from tempano.store._store import NotFound

        d, e = s.deployments, s.executions
        stmt = (
            select(d.c.id.label("known_deployment"), e)
            .select_from(d.outerjoin(e, (e.c.deployment_id == d.c.id) & (e.c.id == execution_id)))
            .where(d.c.id == deployment_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"no execution {execution_id!r}")
        if row.id is None:
            return None
        return ExecutionRecord(**{c.name: row._mapping[c.name] for c in e.c})

    def blueprint_page(self, *, offset: int = 0, limit: int = 100) -> tuple[list[BlueprintSummary], int]:
        """Blueprints (without plans) by id, and how many there are in all."""
        b = s.blueprints
        stmt = select(b.c.id, b.c.description, b.c.plan_hash, b.c.created_at).order_by(b.c.id)
        with self.engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(b)).scalar() or 0)
            rows = conn.execute(stmt.offset(offset).limit(limit)).all()
        return [BlueprintSummary(**r._mapping) for r in rows], total

    def deployment_page(
        self,
        *,
        blueprint_id: str | None = None,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[DeploymentSummary], int]:
        """Deployments (without plans) matching the filters, and how many match in all."""
        d = s.deployments
        stmt = select(d.c.id, d.c.blueprint_id, d.c.status, d.c.labels, d.c.created_at, d.c.updated_at).order_by(d.c.id)
        if blueprint_id:
            stmt = stmt.where(d.c.blueprint_id == blueprint_id)
        if status:
            stmt = stmt.where(d.c.status == status)
        wanted = dict(labels or {})
        if not wanted:
            count_stmt = select(func.count()).select_from(stmt.order_by(None).subquery())
            with self.engine.connect() as conn:
                total = int(conn.execute(count_stmt).scalar() or 0)
                rows = conn.execute(stmt.offset(offset).limit(limit)).all()
            return [DeploymentSummary(**r._mapping) for r in rows], total
        # Labels live in a JSON column: filtered here, portable across SQLite and PostgreSQL.
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        matching = [
            DeploymentSummary(**r._mapping)
            for r in rows
            if all((r.labels or {}).get(k) == v for k, v in wanted.items())
        ]
        return matching[offset : offset + limit], len(matching)

    def execution_page(
        self,
        *,
        deployment_id: str | None = None,
        status: str | None = None,
        workflow: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[ExecutionRecord], int]:
        e = s.executions
        stmt = select(e).order_by(e.c.created_at, e.c.deployment_id, e.c.seq)
        if deployment_id:
            stmt = stmt.where(e.c.deployment_id == deployment_id)
        if status:
            stmt = stmt.where(e.c.status == status)
        if workflow:
            stmt = stmt.where(e.c.workflow == workflow)
        count_stmt = select(func.count()).select_from(stmt.order_by(None).subquery())
        with self.engine.connect() as conn:
            total = int(conn.execute(count_stmt).scalar() or 0)
            rows = conn.execute(stmt.offset(offset).limit(limit)).all()
        return [ExecutionRecord(**r._mapping) for r in rows], total

    def current_execution(self, deployment_id: str) -> ExecutionRecord | None:
        """The deployment's latest execution that has not ended."""
        e = s.executions
        stmt = (
            select(e)
            .where(e.c.deployment_id == deployment_id, e.c.status.in_(RUNNING_STATUSES))
            .order_by(e.c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else ExecutionRecord(**row._mapping)

    def recent_executions(self, deployment_id: str, limit: int = 10) -> list[ExecutionRecord]:
        e = s.executions
        stmt = select(e).where(e.c.deployment_id == deployment_id).order_by(e.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [ExecutionRecord(**r._mapping) for r in conn.execute(stmt).all()]

    # ---------------------------------------------------------------- metrics

    def count_by(self, table: str, *columns: str) -> list[tuple[tuple[str, ...], int]]:
        """Row counts grouped by columns of the deployments or executions table."""
        t = {"deployments": s.deployments, "executions": s.executions}[table]
        cols = [t.c[c] for c in columns]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols, func.count()).group_by(*cols)).all()
        return [(tuple(str(v) for v in r[:-1]), int(r[-1])) for r in rows]

    def operation_duration_histogram(self, buckets: Sequence[float]) -> list[tuple[str, str, list[int], int, float]]:
        """Per (operation, outcome): cumulative counts at each bucket bound, count and sum of durations."""
        ev = s.events
        outcome = case((ev.c.type == "operation_succeeded", "succeeded"), else_="failed")
        bucket_cols = [func.sum(case((ev.c.duration_s <= b, 1), else_=0)) for b in buckets]
        stmt = (
            select(ev.c.operation, outcome, *bucket_cols, func.count(), func.sum(ev.c.duration_s))
            .where(ev.c.type.in_(("operation_succeeded", "operation_failed")), ev.c.duration_s.is_not(None))
            .group_by(ev.c.operation, outcome)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        out: list[tuple[str, str, list[int], int, float]] = []
        n = len(buckets)
        for r in rows:
            out.append(
                (str(r[0] or ""), str(r[1]), [int(v or 0) for v in r[2 : 2 + n]], int(r[2 + n]), float(r[3 + n] or 0))
            )
        return out


def _token(m: Any) -> TokenRecord:
    return TokenRecord(
        id=m["id"], name=m["name"], role=m["role"], created_at=m["created_at"], revoked=bool(m["revoked"])
    )
