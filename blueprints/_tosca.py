"""Running tosca-parser on data we loaded, and turning everything it raises into located errors.

tosca-parser keeps its errors in a process-global collector, so runs are serialised by a lock.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import toscaparser.topology_template
import toscaparser.tosca_template
from toscaparser.common.exception import ExceptionCollector
from toscaparser.tosca_template import ToscaTemplate
from toscaparser.tpl_relationship_graph import ToscaGraph

from tempano.blueprints._errors import ErrorDetail

_LOCK = threading.Lock()
_DOUBLE_QUOTED = re.compile(r'"([^"]+)"')
_SINGLE_QUOTED = re.compile(r"'([^']+)'")

logging.getLogger("tosca").addHandler(logging.NullHandler())
logging.getLogger("tosca").propagate = False


class _LinearGraph(ToscaGraph):  # type: ignore[misc]
    """tosca-parser's relationship graph, built through a name index.

    The original compares every relationship with every node template (quadratic: 1.4 s of 2.5 s at 1,000
    templates) and is built twice, by TopologyTemplate and again by ToscaTemplate over the same node list.
    """

    def _create(self) -> None:
        by_name = {tpl.name: tpl for tpl in self.nodetemplates}
        for node in self.nodetemplates:
            relation = node.relationships
            if relation:
                for rel, target in relation.items():
                    tpl = by_name.get(target.name)
                    if tpl is not None:
                        self._create_edge(node, tpl, rel)
            self._create_vertex(node)


_last_graph: list[Any] = [None, None]


def _graph(nodetemplates: Any) -> Any:
    if _last_graph[0] is nodetemplates:
        return _last_graph[1]
    graph = _LinearGraph(nodetemplates)
    _last_graph[:] = [nodetemplates, graph]
    return graph


# Applied at import: both modules call ToscaGraph(nodetemplates) by their module-global name.
toscaparser.topology_template.ToscaGraph = _graph
toscaparser.tosca_template.ToscaGraph = _graph


class _Template(ToscaTemplate):  # type: ignore[misc]
    """ToscaTemplate that leaves error reporting to us and accepts unfilled requirements."""

    def _validate_relationship_occurences(self) -> None:
        # Since tosca-parser 2.13 every requirement a type declares must be filled, which rejects ETSI SOL001
        # VNFDs that leave e.g. virtual_link unfilled on purpose; TOSCA lets an orchestrator fill them.
        return None

    def verify_template(self) -> None:
        # The collected exceptions are read by run_parser, one by one, instead of one joined message.
        return None


Locator = Callable[[str], ErrorDetail]


def run_parser(template: Mapping[str, Any], locate: Locator) -> tuple[Any, list[ErrorDetail]]:
    """Validate ``template`` with tosca-parser: its ToscaTemplate (None if it crashed) and the errors."""
    with _LOCK:
        try:
            parsed = _Template(yaml_dict_tpl=template)
            problems = [_describe(exc) for exc in ExceptionCollector.getExceptions()]
        except RecursionError:
            parsed, problems = None, ["the template's definitions refer to each other in a loop (recursion)"]
        except Exception as exc:
            collected = [_describe(e) for e in ExceptionCollector.getExceptions()]
            parsed, problems = None, [*collected, _crash(exc)]
        finally:
            ExceptionCollector.stop()
            ExceptionCollector.clear()
            _last_graph[:] = [None, None]
    return parsed, [locate(p) for p in dict.fromkeys(problems)]


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" and text[0] not in text[1:-1]:
        text = text[1:-1]  # KeyError-style messages come quoted
    return text or type(exc).__name__


def _crash(exc: BaseException) -> str:
    detail = _describe(exc)
    return (
        f"tosca-parser could not process this template ({type(exc).__name__}: {detail}); this is usually a "
        "malformed definition near the named entity: check its keys and value types"
    )


def quoted_names(message: str) -> list[str]:
    """Names quoted in a tosca-parser message, in order."""
    return [*_DOUBLE_QUOTED.findall(message), *_SINGLE_QUOTED.findall(message)]
