"""The runtime store's SQL schema (SQLAlchemy Core): one definition for SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

blueprints = Table(
    "blueprints",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("plan", JSON, nullable=False),
    Column("plan_hash", String(64), nullable=False),
    Column("source_dir", Text, nullable=True),
    Column("main_file", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("blueprint_id", String(200), nullable=False, index=True),
    Column("plan", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("status", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("deployment_id", String(200), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("workflow", String(200), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("status", String(40), nullable=False),
    Column("workflow_id", String(400), nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("deployment_id", "seq", name="uq_execution_seq"),
)

node_instances = Table(
    "node_instances",
    metadata,
    Column("deployment_id", String(200), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("node", String(200), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("host_id", String(200), nullable=True),
    Column("group_instance", String(200), nullable=True),
    Column("state", String(40), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("removed", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False, default=1),
    Index("ix_node_instances_node", "deployment_id", "node"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", String(200), nullable=False),
    Column("node_instance_id", String(200), nullable=False),
    Column("execution_id", String(300), nullable=True),
    Column("plugin", String(100), nullable=False),
    Column("kind", String(100), nullable=False),
    Column("resource_id", String(400), nullable=False),
    Column("idempotency_key", String(600), nullable=False),
    Column("data", JSON, nullable=False),
    Column("external", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("deployment_id", "node_instance_id", "kind", "resource_id", name="uq_ledger_resource"),
    Index("ix_ledger_instance", "deployment_id", "node_instance_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(600), nullable=False, unique=True),
    Column("deployment_id", String(200), nullable=False),
    Column("execution_id", String(300), nullable=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("type", String(60), nullable=False),
    Column("level", String(10), nullable=False),
    Column("node_instance_id", String(200), nullable=True),
    Column("operation", String(200), nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_events_execution", "execution_id", "id"),
    Index("ix_events_deployment", "deployment_id", "id"),
)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
