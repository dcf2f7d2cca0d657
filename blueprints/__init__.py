"""TOSCA blueprints: loading, validation, the type library, the Plan model and the compiler."""

from tempano.blueprints._api import compile, compile_path
from tempano.blueprints._blueprint import Blueprint, load
from tempano.blueprints._dot import install_waves, plan_to_dot
from tempano.blueprints._errors import (
    BlueprintCompileError,
    BlueprintError,
    BlueprintLoadError,
    ErrorDetail,
    InputError,
)
from tempano.blueprints._files import blueprint_files
from tempano.blueprints._inputs import bind_inputs
from tempano.blueprints.functions import FunctionError, Resolver, evaluate
from tempano.blueprints.plan import (
    INSTALL_PHASES,
    NODE_PHASE_OPERATIONS,
    RELATIONSHIP_PHASE_OPERATIONS,
    UNINSTALL_PHASES,
    ImperativeWorkflow,
    InputSpec,
    Instances,
    NodeSpec,
    OperationSpec,
    OutputSpec,
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
    "Blueprint",
    "BlueprintCompileError",
    "BlueprintError",
    "BlueprintLoadError",
    "ErrorDetail",
    "FunctionError",
    "ImperativeWorkflow",
    "InputError",
    "InputSpec",
    "Instances",
    "NodeSpec",
    "OperationSpec",
    "OutputSpec",
    "Plan",
    "RelationshipSpec",
    "Resolver",
    "RetryPolicy",
    "ScalingGroup",
    "Step",
    "WorkflowGraph",
    "bind_inputs",
    "blueprint_files",
    "compile",
    "compile_path",
    "evaluate",
    "install_waves",
    "load",
    "plan_to_dot",
]
