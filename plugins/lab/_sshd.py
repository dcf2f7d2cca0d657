"""ssh for lab servers: the deployment's key pair, a host key per server, an sshd inside each namespace."""

from __future__ import annotations

import os
import pwd
import socket
import time
from collections.abc import Callable
from pathlib import Path

from tempano.plugins.contract import NonRetryableError, RetryableError
from tempano.plugins.lab._system import kill_pids, pid_alive, run

SSHD = "/usr/sbin/sshd"
KEY_NAME = "id_ed25519"
START_TIMEOUT = 15.0


def login_user() -> str:
    """The account ssh logs in as: the worker's own (the namespaces share the host's users and files)."""
    return pwd.getpwuid(os.geteuid()).pw_name


def ensure_keypair(directory: Path, comment: str) -> Path:
    """The deployment's private key (made once; a rerun adopts it)."""
    key = directory / KEY_NAME
    if not (key.exists() and key.with_suffix(".pub").exists()):
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            what=f"generating the ssh key pair in {directory}",
        )
    return key


def write_server_files(server_dir: Path, *, address: str, public_key: Path, user: str) -> Path:
    """Host key, authorized_keys and sshd_config of one server; returns the config path."""
    server_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    host_key = server_dir / "ssh_host_ed25519_key"
    if not host_key.exists():
        host_key.with_suffix(".pub").unlink(missing_ok=True)
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"host {server_dir.name}",
                "-f",
                str(host_key),
            ],
            what=f"generating the ssh host key of server {server_dir.name}",
        )
    (server_dir / "authorized_keys").write_text(public_key.read_text())
    # A lab server shares the worker's file system: its sessions' temp files (Ansible's module payloads, left behind
    # when a task is killed) go to its own directory, which goes away with the server, not to the host's /tmp.
    tmp = server_dir / "tmp"
    tmp.mkdir(exist_ok=True, mode=0o700)
    config = server_dir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {address}",
                "Port 22",
                f"HostKey {host_key}",
                f"PidFile {server_dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {server_dir / 'authorized_keys'}",
                f"AllowUsers {user}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                # the lab directory is the worker's, not the login user's home: skip the ownership checks
                "StrictModes no",
                "PrintMotd no",
                "UseDNS no",
                f"SetEnv TMPDIR={tmp}",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    return config


def sshd_pid(server_dir: Path) -> int | None:
    """The pid of this server's sshd if it runs (checked against its command line, pids get reused)."""
    try:
        pid = int((server_dir / "sshd.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    return pid if pid_alive(pid) and str(server_dir / "sshd_config") in cmdline else None


def accepts(address: str, port: int = 22, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on address:port (from the host)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(4).startswith(b"SSH")
    except OSError:
        return False


def start_sshd(namespace: str, server_dir: Path, address: str, *, alive: Callable[[], None]) -> int:
    """Start (or adopt) the sshd of a server and wait until it answers; ``alive`` heartbeats/checks cancel."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    pid = sshd_pid(server_dir)
    if pid is None:
        (server_dir / "sshd.pid").unlink(missing_ok=True)
        run(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                SSHD,
                "-f",
                str(server_dir / "sshd_config"),
                "-E",
                str(server_dir / "sshd.log"),
            ],
            what=f"starting sshd in namespace {namespace} (config {server_dir / 'sshd_config'})",
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        alive()
        pid = sshd_pid(server_dir)
        if pid is not None and accepts(address):
            return pid
        time.sleep(0.05)
    log = server_dir / "sshd.log"
    tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
    raise RetryableError(
        f"sshd in namespace {namespace} did not answer on {address}:22 within {START_TIMEOUT:.0f} s"
        + (f" (its log says: {' / '.join(tail)})" if tail else "")
        + "; retrying"
    )


def stop_sshd(server_dir: Path) -> bool:
    """Stop the server's sshd if it runs. True if one was stopped."""
    pid = sshd_pid(server_dir)
    if pid is None:
        return False
    kill_pids([pid])
    if pid_alive(pid):
        raise NonRetryableError(f"sshd (pid {pid}) of {server_dir.name} survived SIGKILL; check the host")
    (server_dir / "sshd.pid").unlink(missing_ok=True)
    return True
