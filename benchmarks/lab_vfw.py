"""Plugin time of the vFW example on the lab VIM, per step: namespaces, sshd, ports, Ansible, uninstall.

Run as root: ``.venv/bin/python benchmarks/lab_vfw.py [rounds]``. Prints seconds per step (median of rounds).
Orchestration time (Temporal) is not included: this is what the operations themselves cost.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _cli  # benchmarks/_cli.py: the script's directory is on the path

from tempano.plugins.ansible import plugin as ansible
from tempano.plugins.lab.testing import lab_deployment
from tempano.plugins.testing import LocalContext, instance

VFW = Path(__file__).parents[1] / "blueprints" / "examples" / "vfw"


def timed(figures: dict[str, list[float]], step: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    figures[step].append(time.perf_counter() - started)
    return result


def one_round(figures: dict[str, list[float]]) -> None:
    with lab_deployment("bench") as lab:
        t = lambda step, fn: timed(figures, step, fn)  # noqa: E731
        nets = {
            name: t("network.create", lambda n=name, c=cidr, g=gateway: lab.network(n, c, **g))
            for name, cidr, gateway in (
                ("client_net", "10.10.1.0/24", {"gateway_ip": "10.10.1.1"}),
                ("transit_net", "10.10.2.0/24", {}),
                ("server_net", "10.10.3.0/24", {"gateway_ip": "10.10.3.1"}),
            )
        }
        servers = {}
        for name in ("client", "firewall", "router", "server"):
            inst = instance(name, type="tempano.nodes.lab.Server")
            lab.created.append(("server", inst, ()))
            t(
                "server.create (namespace, mgmt veth, keys)",
                lambda i=inst: lab.call("server.create", i, "create"),
            )
            t("server.start (sshd answers)", lambda i=inst: lab.call("server.start", i, "start"))
            servers[name] = inst
        ports = [
            ("client", "client_net", {}),
            ("firewall", "client_net", {"ip_address": "10.10.1.1"}),
            ("firewall", "transit_net", {"ip_address": "10.10.2.1"}),
            ("router", "transit_net", {"ip_address": "10.10.2.2"}),
            ("router", "server_net", {"ip_address": "10.10.3.1"}),
            ("server", "server_net", {}),
        ]
        for index, (server, net, props) in enumerate(ports):
            t(
                "port.create",
                lambda s=server, n=net, p=props, i=index: lab.port(f"p{i}", servers[s], nets[n], **p),
            )
        plays = [
            (
                "router",
                "playbooks/router.yaml",
                {"client_cidr": "10.10.1.0/24", "firewall_address": "10.10.2.1"},
            ),
            (
                "firewall",
                "playbooks/firewall.yaml",
                {"allowed_tcp_ports": [80], "protected_cidr": "10.10.3.0/24", "router_address": "10.10.2.2"},
            ),
            (
                "server",
                "playbooks/service.yaml",
                {"service_ports": [80, 8080], "service_address": "10.10.3.2"},
            ),
        ]
        for host, playbook, variables in plays:
            ctx = LocalContext(
                instance(f"{host}_app", host_id=servers[host].id),
                operation="configure",
                inputs={"playbook": playbook, **variables},
                deployment_id=lab.deployment_id,
                host=servers[host],
                blueprint_dir=VFW,
            )
            t(f"ansible {Path(playbook).name}", lambda c=ctx: ansible.operations["playbook.run"](c))
        t("uninstall (all deletes)", lab.uninstall)


def main() -> None:
    rounds = _cli.rounds(__doc__, 3)
    os.environ["TEMPANO_LAB_DIR"] = tempfile.mkdtemp(prefix="tempano-bench-")
    figures: dict[str, list[float]] = defaultdict(list)
    totals = []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            one_round(figures)
            totals.append(time.perf_counter() - started)
    finally:
        shutil.rmtree(os.environ["TEMPANO_LAB_DIR"])  # only the host-wide management table is left in it
    print(f"vFW on the lab VIM, plugin time, median of {rounds} rounds ({os.cpu_count()} CPUs)")
    print(f"{'step':48} {'calls':>5} {'median s':>9} {'sum s':>7}")
    for step, values in figures.items():
        per_round = len(values) // rounds
        print(f"{step:48} {per_round:5d} {statistics.median(values):9.3f} {sum(values) / rounds:7.2f}")
    print(f"{'total (install + uninstall)':48} {'':5} {'':9} {statistics.median(totals):7.2f}")


if __name__ == "__main__":
    main()
