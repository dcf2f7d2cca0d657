"""TOSCA blueprints: loading, validation, the type library, the Plan model and the compiler.

The Plan model and the intrinsic functions are light and imported at once; the compiler (tosca-parser and its
dependencies, about 1.5 s of imports) loads on first use of one of its names, so the worker, the workflow
sandbox and the CLI do not pay for it unless they compile.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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
    from tempano.blueprints._yaml import YamlProblem, yaml_problem

_COMPILER = {
    "compile": "_api",
    "compile_path": "_api",
    "Blueprint": "_blueprint",
    "load": "_blueprint",
    "install_waves": "_dot",
    "plan_to_dot": "_dot",
    "BlueprintCompileError": "_errors",
    "BlueprintError": "_errors",
    "BlueprintLoadError": "_errors",
    "ErrorDetail": "_errors",
    "InputError": "_errors",
    "blueprint_files": "_files",
    "bind_inputs": "_inputs",
    "YamlProblem": "_yaml",
    "yaml_problem": "_yaml",
}


def __getattr__(name: str) -> Any:
    module = _COMPILER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
    "YamlProblem",
    "bind_inputs",
    "blueprint_files",
    "compile",
    "compile_path",
    "evaluate",
    "install_waves",
    "load",
    "plan_to_dot",
    "yaml_problem",
]
