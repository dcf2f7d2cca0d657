"""TOSCA blueprints: loading, validation, the type library, the Plan model and the compiler."""

from tempano.blueprints.functions import FunctionError, Resolver, evaluate, has_runtime_functions, has_secret
from tempano.blueprints.plan import (
    INSTALL_PHASES,
    NODE_PHASE_OPERATIONS,
    RELATIONSHIP_PHASE_OPERATIONS,
    UNINSTALL_PHASES,
    ImperativeWorkflow,
    Instances,
    NodeSpec,
    OperationSpec,
    Plan,
    RelationshipSpec,
    RetryPolicy,
    ScalingGroup,
    Step,
    WorkflowGraph,
)

__all__ = [
    "INSTALL_PHASES",
    "NODE_PHASE_OPERATIONS",
    "RELATIONSHIP_PHASE_OPERATIONS",
    "UNINSTALL_PHASES",
    "FunctionError",
    "ImperativeWorkflow",
    "Instances",
    "NodeSpec",
    "OperationSpec",
    "Plan",
    "RelationshipSpec",
    "Resolver",
    "RetryPolicy",
    "ScalingGroup",
    "Step",
    "WorkflowGraph",
    "evaluate",
    "has_runtime_functions",
    "has_secret",
]
