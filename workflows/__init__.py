"""Deterministic Temporal workflow code: deployments, executions, and the public workflow API."""
