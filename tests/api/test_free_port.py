"""free_port: the port it gives is kept from the kernel's next picks, and open to the server it is meant for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PICKS = """
import json, socket
from tempano.api.up import free_port

port = free_port()
picked, held = [], []
while True:  # every port the kernel still hands out when asked for any
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
    except OSError:
        break
    held.append(sock)
    picked.append(sock.getsockname()[1])
for sock in held:
    sock.close()
server = socket.socket()  # a server binding it by number, as Go, uvicorn and PostgreSQL do
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen()
print(json.dumps({"port": port, "picked": picked}))
"""


def test_the_port_is_not_handed_out_again_yet_a_server_can_bind_it() -> None:
    if os.geteuid() != 0:
        pytest.skip("the test narrows the kernel's port range in a network namespace of its own, which needs root")
    # In a network namespace of its own the kernel picks from eight ports only: all of them are asked for.
    ns = f"tempano-fp-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40007"], check=True
        )
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", PICKS],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
    found = json.loads(out)
    assert 40000 <= found["port"] <= 40007
    assert found["port"] not in found["picked"]
    assert len(found["picked"]) == 7  # the other seven
