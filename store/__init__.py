"""The runtime store: deployments, node instances, resource ledger, events, blueprints (SQLite or PostgreSQL)."""
