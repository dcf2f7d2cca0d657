"""The vFW example built by calling the operations in the blueprint's dependency order, as install would.

client -> firewall VNF -> router VNF -> server, VNFs configured by the example's own playbooks; the policy
comes from the blueprint's input defaults. Allowed traffic passes, denied traffic is dropped, a day-2
update_rules flips it, and uninstall leaves nothing behind.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tempano.plugins.ansible import plugin
from tempano.plugins.contract import InstanceView
from tempano.plugins.lab import leftovers
from tempano.plugins.lab.testing import LabDeployment, tcp_probe
from tempano.plugins.testing import LocalContext, instance

VFW = Path(__file__).parents[3] / "blueprints" / "examples" / "vfw"
GREETING = "tempano vfw service"


def configure(lab: LabDeployment, node: str, host: InstanceView, playbook: str, **variables: Any) -> None:
    software = instance(node, host_id=host.id, type="tempano.nodes.ansible.Software")
    ctx = LocalContext(
        software,
        operation="configure",
        inputs={"playbook": playbook, **variables},
        deployment_id=lab.deployment_id,
        plugin="ansible",
        host=host,
        blueprint_dir=VFW,
    )
    plugin.operations["playbook.run"](ctx)


def output(blueprint: dict[str, Any], name: str, nodes: dict[str, InstanceView], inputs: dict[str, Any]) -> str:
    """Evaluate one of the blueprint's outputs (strings, get_input, get_attribute, concat and join)."""

    def value(expr: Any) -> str:
        if isinstance(expr, dict) and "get_attribute" in expr:
            node, attribute = expr["get_attribute"]
            return str(nodes[node].attributes[attribute])
        if isinstance(expr, dict) and "concat" in expr:
            return "".join(value(part) for part in expr["concat"])
        if isinstance(expr, dict) and "join" in expr:
            parts, delimiter = expr["join"]
            return str(delimiter).join(str(p) for p in inputs[parts["get_input"]])
        return str(expr)

    return value(blueprint["topology_template"]["outputs"][name]["value"])


def test_vfw_chain_passes_allowed_and_drops_denied_traffic(lab: LabDeployment) -> None:
    blueprint = yaml.safe_load((VFW / "vfw.yaml").read_text())
    inputs = {name: spec["default"] for name, spec in blueprint["topology_template"]["inputs"].items()}

    client_net = lab.network("client_net", inputs["client_cidr"], gateway_ip=inputs["firewall_client_ip"])
    transit_net = lab.network("transit_net", inputs["transit_cidr"])
    server_net = lab.network("server_net", inputs["server_cidr"], gateway_ip=inputs["router_server_ip"])
    client, firewall, router, server = (lab.server(n) for n in ("client", "firewall", "router", "server"))
    lab.port("client_port", client, client_net, is_default=True)
    lab.port("firewall_client_port", firewall, client_net, ip_address=inputs["firewall_client_ip"])
    fw_transit = lab.port("firewall_transit_port", firewall, transit_net, ip_address=inputs["firewall_transit_ip"])
    rt_transit = lab.port("router_transit_port", router, transit_net, ip_address=inputs["router_transit_ip"])
    lab.port("router_server_port", router, server_net, ip_address=inputs["router_server_ip"])
    server_port = lab.port("server_port", server, server_net, is_default=True)
    server_ip = server_port.attributes["ip_address"]

    configure(
        lab,
        "router_app",
        router,
        "playbooks/router.yaml",
        client_cidr=inputs["client_cidr"],
        firewall_address=fw_transit.attributes["ip_address"],
    )
    configure(
        lab,
        "firewall_app",
        firewall,
        "playbooks/firewall.yaml",
        allowed_tcp_ports=inputs["allowed_tcp_ports"],
        protected_cidr=inputs["server_cidr"],
        router_address=rt_transit.attributes["ip_address"],
    )
    configure(
        lab,
        "service",
        server,
        "playbooks/service.yaml",
        service_ports=inputs["service_ports"],
        service_address=server_ip,
    )

    namespace = client.attributes["namespace"]
    assert inputs["allowed_tcp_ports"] == [80] and inputs["service_ports"] == [80, 8080]
    assert tcp_probe(namespace, server_ip, 80) == GREETING
    assert tcp_probe(namespace, server_ip, 8080).startswith("error: timed out")

    nodes = {"client": client, "server_port": server_port}
    check = subprocess.run(
        ["bash", "-c", output(blueprint, "check_command", nodes, inputs)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.stdout.splitlines() == [f"port 80: {GREETING}", "port 8080: dropped"], check.stderr

    # day 2: the firewall now lets 8080 through and drops 80
    configure(lab, "firewall_app", firewall, "playbooks/update_rules.yaml", allowed_tcp_ports=[8080])
    assert tcp_probe(namespace, server_ip, 8080) == GREETING
    assert tcp_probe(namespace, server_ip, 80).startswith("error: timed out")

    lab.uninstall()
    assert leftovers(lab.deployment_id) == []
    assert lab.ledger == []
