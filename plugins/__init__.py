"""tempano's plugins: the contract every integration implements, and the registry that finds them.

A plugin is a named set of synchronous operations. An operation receives an :class:`OperationContext`
and returns its outputs (a dict, or None). Plugins never import temporalio or fastapi: the activity layer
adapts Temporal to the context, so a plugin is testable alone.

Errors (raise these from operations)::

    PluginError(retryable=...)
     ├── RetryableError          a transient fault (5xx, timeout, busy): the engine retries
     └── NonRetryableError       retrying cannot help: the execution fails with this message
          ├── QuotaExceeded
          ├── ResourceNotFound
          ├── AuthenticationFailed
          └── ConfigurationError  bad properties/inputs in the blueprint
"""

from tempano.plugins.contract import (
    AuthenticationFailed,
    ConfigurationError,
    InstanceView,
    NonRetryableError,
    OperationContext,
    OperationFn,
    Plugin,
    PluginError,
    QuotaExceeded,
    Relationship,
    Resource,
    ResourceNotFound,
    RetryableError,
)
from tempano.plugins.registry import PluginRegistry, UnknownOperation, load_plugins

__all__ = [
    "AuthenticationFailed",
    "ConfigurationError",
    "InstanceView",
    "NonRetryableError",
    "OperationContext",
    "OperationFn",
    "Plugin",
    "PluginError",
    "PluginRegistry",
    "QuotaExceeded",
    "Relationship",
    "Resource",
    "ResourceNotFound",
    "RetryableError",
    "UnknownOperation",
    "load_plugins",
]
