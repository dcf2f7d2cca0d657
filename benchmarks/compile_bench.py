"""Compile time and peak memory for synthetic blueprints of 10 to 5,000 node templates.

Run: ``.venv/bin/python benchmarks/compile_bench.py [sizes...]`` (``--baseline [sizes...]`` times
tosca-parser alone, as published, on the same blueprints). Each size runs in a fresh process (so peak
RSS is that size's alone) and prints the time split into YAML loading, tosca-parser and tempano's own work,
as wall and CPU seconds (CPU time is the figure to compare on a loaded machine).
The blueprints mix chains and fan-outs: every group of 10 nodes has a host, a chain of dependencies and a
fan-out of connections, with get_input, get_property (SELF, HOST, named), concat and get_attribute.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = (10, 100, 1_000, 5_000)

TYPES = """\
node_types:
  bench.nodes.Service:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      port: { type: integer, default: 80 }
      label: { type: string, required: false }
    attributes:
      url: { type: string }
    interfaces:
      Standard:
        type: tosca.interfaces.node.lifecycle.Standard
        operations:
          create: builtin.log
          configure:
            implementation: builtin.set_attributes
            inputs:
              url: { type: string, default: none }
          delete: builtin.log
"""


CPUS = "{ get_property: [ HOST, host, num_cpus ] }"


def blueprint(n: int) -> str:
    """A blueprint of ``n`` node templates (hosts, chains and fan-outs)."""
    lines = [
        "tosca_definitions_version: tosca_simple_yaml_1_3",
        TYPES,
        "topology_template:",
        "  inputs:",
        "    base_port: { type: integer, default: 8000 }",
        "    zone: { type: string, default: eu1 }",
        "  node_templates:",
    ]
    for i in range(n):
        if i % 10 == 0:
            lines += [
                f"    host{i}:",
                "      type: tosca.nodes.Compute",
                "      capabilities:",
                "        host: { properties: { num_cpus: 2 } }",
            ]
            continue
        group = i - i % 10
        reqs = [f"        - host: host{group}"]
        if i % 10 > 1:
            reqs.append(f"        - dependency: svc{i - 1}")  # the chain
        if i % 10 == 1 and group >= 10:
            reqs.append(f"        - dependency: svc{group - 9}")  # chains of groups
        if i % 10 == 9:
            reqs += [f"        - dependency: svc{j}" for j in range(group + 2, group + 6)]  # fan-out
        lines += [
            f"    svc{i}:",
            "      type: bench.nodes.Service",
            "      properties:",
            "        port: { get_input: base_port }",
            f"        label: {{ concat: [ {{ get_input: zone }}, '-svc{i}-', {CPUS} ] }}",
            "      requirements:",
            *reqs,
            "      interfaces:",
            "        Standard:",
            "          configure:",
            "            inputs:",
            "              url: { concat: [ 'http://', "
            f"{{ get_attribute: [ host{group}, private_address ] }}, "
            "':', { get_property: [ SELF, port ] } ] }",
        ]
    return "\n".join(lines) + "\n"


class Clock:
    """Wall and CPU seconds (CPU time stays meaningful on a loaded machine; wall time does not)."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def since(self, start: Clock) -> tuple[float, float]:
        return self.wall - start.wall, self.cpu - start.cpu


def measure(n: int) -> dict[str, float]:
    """Compile one size in this process; seconds per phase (wall and CPU) and peak RSS."""
    from tempano.blueprints import _blueprint, _tosca, _yaml, compile

    spent = {"yaml": [0.0, 0.0], "parser": [0.0, 0.0]}
    real_yaml, real_parser = _yaml.load_yaml_text, _tosca.run_parser

    def timed(phase: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = Clock()
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu = Clock().since(start)
                spent[phase][0] += wall
                spent[phase][1] += cpu

        return run

    _yaml.load_yaml_text = timed("yaml", real_yaml)
    _blueprint.run_parser = timed("parser", real_parser)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(blueprint(n))
        compile(_blueprint.load(path), has_operation=None)  # warm-up: type library, imports
        spent = {"yaml": [0.0, 0.0], "parser": [0.0, 0.0]}
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = Clock()
        plan = compile(_blueprint.load(path), has_operation=None)
        total_wall, total_cpu = Clock().since(start)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(plan.nodes) == n
    return {
        "nodes": n,
        "total_s": total_wall,
        "yaml_s": spent["yaml"][0],
        "tosca_parser_s": spent["parser"][0],
        "tempano_s": total_wall - spent["yaml"][0] - spent["parser"][0],
        "total_cpu_s": total_cpu,
        "yaml_cpu_s": spent["yaml"][1],
        "tosca_parser_cpu_s": spent["parser"][1],
        "tempano_cpu_s": total_cpu - spent["yaml"][1] - spent["parser"][1],
        "peak_rss_mb": rss / 1024,
        "rss_growth_mb": (rss - rss_before) / 1024,
        "plan_kb": len(plan.canonical_json()) / 1024,
    }


def baseline(n: int) -> dict[str, float]:
    """tosca-parser 2.15 alone on the same blueprint (its own YAML loading, no tempano patch or work)."""
    from toscaparser.tosca_template import ToscaTemplate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        text = blueprint(n).replace("builtin.log", "create.sh").replace("builtin.set_attributes", "configure.sh")
        path.write_text(text)
        start = Clock()
        ToscaTemplate(str(path), parsed_params={"base_port": 8000, "zone": "eu1"})
        wall, cpu = Clock().since(start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"nodes": n, "total_s": wall, "total_cpu_s": cpu, "peak_rss_mb": rss / 1024}


def _cell(r: dict[str, float], key: str, width: int) -> str:
    return f"{r[key + '_s']:.2f} ({r[key + '_cpu_s']:.2f})".rjust(width)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--baseline-one":
        print(json.dumps(baseline(int(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "sizes", nargs="*", type=int, help=f"nodes per blueprint (default: {' '.join(map(str, SIZES))})"
    )
    parser.add_argument("--baseline", action="store_true", help="tosca-parser alone, for comparison")
    options = parser.parse_args()
    if options.baseline:
        print(f"{'nodes':>6} {'tosca-parser alone s':>21} {'peak MB':>8}   (wall, CPU in parentheses)")
        for n in options.sizes or list(SIZES):
            out = subprocess.run(
                [sys.executable, __file__, "--baseline-one", str(n)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{r['nodes']:>6} {_cell(r, 'total', 21)} {r['peak_rss_mb']:>8.0f}")
        return
    sizes = options.sizes or list(SIZES)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"load average {load} on {os.cpu_count()} CPUs; wall seconds, CPU seconds in parentheses")
    print(
        f"{'nodes':>6} {'total s':>14} {'yaml s':>14} {'tosca-parser s':>15} {'tempano s':>14} "
        f"{'peak MB':>8} {'plan KB':>8}"
    )
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])

        print(
            f"{r['nodes']:>6} {_cell(r, 'total', 14)} {_cell(r, 'yaml', 14)} {_cell(r, 'tosca_parser', 15)} "
            f"{_cell(r, 'tempano', 14)} {r['peak_rss_mb']:>8.0f} {r['plan_kb']:>8.0f}"
        )


if __name__ == "__main__":
    main()
