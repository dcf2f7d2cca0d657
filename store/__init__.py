"""The runtime store: deployments, node instances, resource ledger, events, blueprints (SQLite or PostgreSQL)."""

from tempano.store._api import BlueprintSummary, DeploymentSummary, TokenRecord
from tempano.store._store import Conflict, NotFound, Store, StoreError, Writes
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

__all__ = [
    "BlueprintRecord",
    "BlueprintSummary",
    "Conflict",
    "DeploymentRecord",
    "DeploymentSummary",
    "EventRecord",
    "ExecutionRecord",
    "NewEvent",
    "NewInstance",
    "NodeInstanceRecord",
    "NotFound",
    "ResourceRecord",
    "Store",
    "StoreError",
    "TokenRecord",
    "Writes",
]
