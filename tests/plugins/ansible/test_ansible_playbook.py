"""ansible.playbook.run against real lab servers: real sshd, real ansible-runner, real iptables."""

from __future__ import annotations

import logging
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tempano.plugins.ansible import plugin
from tempano.plugins.ansible.inventory import extra_vars
from tempano.plugins.ansible.playbook import RESERVED_INPUTS
from tempano.plugins.contract import ConfigurationError, InstanceView, NonRetryableError, RetryableError
from tempano.plugins.lab.testing import LabDeployment, relationship, tcp_probe
from tempano.plugins.testing import LocalContext, instance

run_playbook = plugin.operations["playbook.run"]


def write(blueprint_dir: Path, name: str, text: str) -> str:
    (blueprint_dir / "playbooks" / name).write_text(textwrap.dedent(text))
    return f"playbooks/{name}"


def context(
    lab: LabDeployment, host: InstanceView, blueprint_dir: Path, inputs: dict[str, Any], **kwargs: Any
) -> LocalContext:
    software = instance("app", host_id=host.id, type="tempano.nodes.ansible.Software")
    return LocalContext(
        software,
        operation="configure",
        inputs=inputs,
        deployment_id=lab.deployment_id,
        plugin="ansible",
        host=host,
        blueprint_dir=blueprint_dir,
        **kwargs,
    )


def start_listener(lab: LabDeployment, server: InstanceView, address: str, ports: list[int]) -> None:
    """TCP greeters inside the server's namespace (they die with the namespace at cleanup)."""
    playbook = Path(__file__).parents[3] / "blueprints/examples/vfw"
    ctx = context(
        lab,
        server,
        playbook,
        {"playbook": "playbooks/service.yaml", "service_ports": ports, "service_address": address},
    )
    run_playbook(ctx)


def test_a_playbook_sets_iptables_in_a_namespace_and_traffic_follows(
    lab: LabDeployment, blueprint_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    net = lab.network("net", "10.81.0.0/24")
    client, target = lab.server("client"), lab.server("target")
    lab.port("client_port", client, net)
    target_port = lab.port("target_port", target, net)
    address = target_port.attributes["ip_address"]
    start_listener(lab, target, address, [80, 8080])
    assert tcp_probe(client.attributes["namespace"], address, 8080, timeout=5) == "tempano vfw service"

    playbook = write(
        blueprint_dir,
        "policy.yaml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: the peer group carries the client's address
              ansible.builtin.assert:
                that: hostvars[groups['client'][0]].ansible_host == client_mgmt
            - name: allow only the allowed ports
              ansible.builtin.shell: |
                iptables -F INPUT
                iptables -A INPUT -i mgmt0 -j ACCEPT
                iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
                {% for p in allowed %}iptables -A INPUT -p tcp --dport {{ p }} -j ACCEPT
                {% endfor %}
                iptables -A INPUT -p tcp -j DROP
    """,
    )
    caplog.set_level(logging.INFO, logger="tempano.plugin.ansible")
    ctx = context(
        lab,
        target,
        blueprint_dir,
        {"playbook": playbook, "allowed": [80], "client_mgmt": client.attributes["ip"]},
        relationships=(relationship("dependency", "tosca.relationships.DependsOn", client),),
    )
    result = run_playbook(ctx)

    assert result == {"status": "successful", "tasks": {"ok": 1, "changed": 1}}
    assert "target_1 | TASK [allow only the allowed ports] | changed" in caplog.messages
    namespace = client.attributes["namespace"]
    assert tcp_probe(namespace, address, 80, timeout=5) == "tempano vfw service"
    assert tcp_probe(namespace, address, 8080).startswith("error: timed out")  # dropped, not refused
    assert not (Path.home() / ".ansible").exists()  # nothing written to the worker's home


def test_a_failing_task_names_host_task_and_message(lab: LabDeployment, blueprint_dir: Path) -> None:
    server = lab.server("fw")
    playbook = write(
        blueprint_dir,
        "broken.yaml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: load the policy file
              ansible.builtin.command: cat /nonexistent/policy.rules
    """,
    )
    with pytest.raises(NonRetryableError) as caught:
        run_playbook(context(lab, server, blueprint_dir, {"playbook": playbook}))
    message = str(caught.value)
    assert "playbook broken.yaml on fw_1 failed: host fw_1, task [load the policy file]:" in message
    assert "No such file or directory" in message
    assert caught.value.details["task"] == "load the policy file"


def test_an_unreachable_host_is_retryable(lab: LabDeployment, blueprint_dir: Path) -> None:
    server = lab.server("fw")
    lab.call("server.stop", server, "stop")
    playbook = write(
        blueprint_dir,
        "noop.yaml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: ping
              ansible.builtin.ping:
    """,
    )
    with pytest.raises(RetryableError, match=r"host fw_1 is unreachable \(.*Connection refused"):
        run_playbook(context(lab, server, blueprint_dir, {"playbook": playbook}))


SERVER_PAYLOADS = "*/servers/*/tmp/ansible_*_payload_*"


def payloads(directory: Path, pattern: str = "ansible_*_payload_*") -> set[Path]:
    """Module payload directories that Ansible's AnsiballZ wrapper made on a target and did not remove."""
    return set(directory.glob(pattern))


def test_timeout_and_cancel_stop_the_run(lab: LabDeployment, blueprint_dir: Path, tmp_path: Path) -> None:
    server = lab.server("fw")
    in_host_tmp = payloads(Path(tempfile.gettempdir()))
    playbook = write(
        blueprint_dir,
        "slow.yaml",
        """
        - hosts: all
          gather_facts: false
          tasks:
            - name: wait a long time
              ansible.builtin.command: sleep 60
    """,
    )
    started = time.monotonic()
    with pytest.raises(NonRetryableError, match=r"did not finish within 3 s"):
        run_playbook(context(lab, server, blueprint_dir, {"playbook": playbook, "timeout": 3}))
    assert time.monotonic() - started < 60

    # Cancel once the task runs on the target, so that its payload exists when it is killed; a slow machine may
    # still be starting the task when a fixed timer fires.
    on_server = tmp_path / "lab"
    before = payloads(on_server, SERVER_PAYLOADS)
    running: list[Path] = []
    ctx = context(lab, server, blueprint_dir, {"playbook": playbook})

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 30
        while not running and time.monotonic() < deadline:
            running.extend(payloads(on_server, SERVER_PAYLOADS) - before)
            time.sleep(0.05)
        ctx.cancelled.set()

    threading.Thread(target=cancel_when_running, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(NonRetryableError, match=r"playbook slow.yaml on fw_1 was cancelled"):
        run_playbook(ctx)
    assert time.monotonic() - started < 90
    # The killed task left its payload behind, in the lab server's own directory, which goes with the server;
    # none of the killed tasks left one in the host's temporary directory.
    assert running, "the task never started on the target"
    assert all(path.exists() for path in running)
    assert payloads(Path(tempfile.gettempdir())) <= in_host_tmp


def test_extra_vars_merge_playbook_vars_under_inputs() -> None:
    node = instance("app", properties={"playbook_vars": {"mode": "strict", "level": "1"}})
    ctx = LocalContext(
        node,
        operation="configure",
        deployment_id="d1",
        inputs={"playbook": "p.yaml", "timeout": 5, "level": "2"},
    )
    assert extra_vars(ctx, RESERVED_INPUTS) == {"mode": "strict", "level": "2", "tempano_deployment": "d1"}


def test_a_playbook_outside_the_blueprint_is_refused(tmp_path: Path, blueprint_dir: Path) -> None:
    (tmp_path / "evil.yaml").write_text("- hosts: all\n")
    host = instance("fw", attributes={"ip": "192.0.2.10"})
    ctx = LocalContext(host, operation="configure", inputs={"playbook": "../evil.yaml"}, blueprint_dir=blueprint_dir)
    with pytest.raises(ConfigurationError, match=r"'\.\./evil\.yaml' is outside the blueprint directory"):
        run_playbook(ctx)
