"""`tempano up`: the Temporal dev server (SQLite + web UI), a worker and the API, started, checked, supervised,
and stopped cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tempano.api.settings import Settings

if TYPE_CHECKING:
    from temporalio.client import Client

SEARCH_ATTRIBUTES = ("TempanoDeployment", "TempanoBlueprint", "TempanoWorkflow", "TempanoStatus")


class UpError(Exception):
    """The stack cannot come up; the message says why and what to do."""


@contextmanager
def exit_on_up_error(script: str) -> Iterator[None]:
    """For scripts that start their own dev server (benchmarks, the replay recorder): a server that cannot come up
    ends the script with the sentence saying why, not a traceback."""
    try:
        yield
    except UpError as e:
        sys.exit(f"{script}: {e}")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UpError(f"{what} exited with code {proc.returncode} while starting; see its log above")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.25)
    raise UpError(f"{what} did not become healthy within {timeout:.0f}s")


def temporal_command(
    settings: Settings, temporal: str, db_file: Path | None, grpc_port: int, ui_port: int | None
) -> list[str]:
    host = settings.temporal_address.rsplit(":", 1)[0]
    cmd = [
        temporal,
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(grpc_port),
        "--namespace",
        settings.temporal_namespace,
    ]
    cmd += ["--log-level", "warn"]
    # Activities scheduled by a workflow task go straight back to the worker that completed it (when it has free
    # slots), skipping the task queue's matching and polling: less server and worker CPU per operation.
    cmd += ["--dynamic-config-value", "system.enableActivityEagerExecution=true"]
    if db_file is not None:
        # SQLite's defaults (rollback journal, synchronous=FULL) sync the file several times per transaction, and
        # the server writes a transaction per history change: WAL with synchronous=NORMAL survives a crash of any
        # process (only an OS crash or power cut may lose the last transactions) and costs the server less CPU.
        cmd += [
            "--db-filename",
            str(db_file),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
    if ui_port is None:
        cmd.append("--headless")
    else:
        cmd += ["--ui-port", str(ui_port), "--ui-ip", host]
    for name in SEARCH_ATTRIBUTES:
        cmd += ["--search-attribute", f"{name}=Keyword"]
    return cmd


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for the dev servers of tests, benchmarks and the replay recorder), kept from
    the kernel's next picks for a minute. A port merely bound and closed goes back into the pool at once, and the
    dev server picks its own internal ports from that pool: it took the web UI port given to it, and then could
    not bind it ("address already in use"). A connection closed from the listening side leaves the port in
    TIME_WAIT, which the kernel skips when it picks a port, while a server binding it by number with SO_REUSEADDR
    (Go's default, uvicorn's, PostgreSQL's) still can."""
    with socket.socket() as listener:
        # (a TIME_WAIT port is open to an explicit bind only if its own socket had SO_REUSEADDR too)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection((host, port)):
            accepted, _ = listener.accept()
            accepted.close()
    return port


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0, *, group: bool = False) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not exited within ``grace`` seconds; reaped either way. ``group``: the
    signals go to its whole process group (it was started in a session of its own)."""
    if proc.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()


@contextmanager
def throwaway_dev_server(
    db_file: Path | None = None, *, log: Path | None = None, ui_port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``temporal server start-dev`` on a free port (in memory unless ``db_file``; headless unless ``ui_port``):
    yields its address and process, stopped on exit. Wait for it with :func:`connect_when_ready`."""
    temporal = Settings().find_temporal()
    if temporal is None:
        raise UpError("the temporal CLI is not installed; run `make setup` (it builds it from source with Go)")
    port = free_port()
    address = f"127.0.0.1:{port}"
    cmd = temporal_command(Settings(temporal_address=address), temporal, db_file, port, ui_port)
    with log.open("ab") if log is not None else nullcontext(subprocess.DEVNULL) as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield address, proc
        finally:
            stop_process(proc)


async def connect_when_ready(address: str, proc: subprocess.Popen[bytes], *, timeout: float = 60.0) -> Client:
    """A client (tempano's data converter) of the dev server ``proc`` runs, once it answers health checks;
    UpError when the process exits or stays silent past ``timeout``."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await Client.connect(address, data_converter=pydantic_data_converter)
            await client.service_client.check_health()
            return client
        except Exception as e:
            if proc.poll() is not None:
                raise UpError(f"the temporal dev server at {address} exited with code {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise UpError(
                    f"the temporal dev server at {address} did not answer within {timeout:.0f}s: {e}"
                ) from None
            await asyncio.sleep(0.3)


async def worker_polls(address: str, namespace: str, task_queue: str) -> bool:
    """Whether a worker polls ``task_queue`` for workflow tasks (one still importing does not): until then an
    execution asked for waits, and the API gives up on it after its update timeout."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    request = DescribeTaskQueueRequest(
        namespace=namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    return bool((await client.workflow_service.describe_task_queue(request)).pollers)


@dataclass
class Service:
    name: str
    argv: list[str]
    healthy: Callable[[], bool]
    timeout: float
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.argv, env=env, start_new_session=True)

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace, group=True)


class Stack:
    """The three processes of a one-machine tempano."""

    def __init__(self, settings: Settings, *, say: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.say = say
        self.services: list[Service] = []
        self._stopping = False

    def check_ports(self) -> None:
        host, port = self.settings.temporal_address.rsplit(":", 1)
        wanted = {
            f"Temporal gRPC ({self.settings.temporal_address})": (host, int(port)),
            f"Temporal web UI ({self.settings.ui_url})": (host, self.settings.temporal_ui_port),
            f"tempano API ({self.settings.api_url})": (self.settings.api_host, self.settings.api_port),
        }
        taken = [what for what, (h, p) in wanted.items() if not port_free(h, p)]
        if taken:
            raise UpError(
                "port(s) already in use: " + "; ".join(taken) + ". Stop what uses them (another `tempano up`?), "
                "or choose other ports with TEMPANO_TEMPORAL_ADDRESS, TEMPANO_TEMPORAL_UI_PORT, TEMPANO_API_PORT."
            )

    def build(self) -> None:
        temporal = self.settings.find_temporal()
        if temporal is None:
            raise UpError("the temporal CLI is not installed; run `make setup` (it builds it from source with Go)")
        data = self.settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        host, port = self.settings.temporal_address.rsplit(":", 1)
        py = sys.executable

        def temporal_ok() -> bool:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
            return httpx.get(self.settings.ui_url, timeout=1).status_code < 500

        def worker_ok() -> bool:
            return asyncio.run(
                worker_polls(self.settings.temporal_address, self.settings.temporal_namespace, self.settings.task_queue)
            )

        def api_ok() -> bool:
            return httpx.get(f"{self.settings.api_url}/readyz", timeout=2).status_code == 200

        self.services = [
            Service(
                "Temporal dev server",
                temporal_command(
                    self.settings, temporal, data / "temporal.db", int(port), self.settings.temporal_ui_port
                ),
                temporal_ok,
                60,
            ),
            # A worker or API imports for seconds, a minute on a loaded machine; one that exits is seen at once.
            Service("worker", [py, "-m", "tempano.api.cli", "worker"], worker_ok, 180),
            Service("API", [py, "-m", "tempano.api.cli", "api"], api_ok, 180),
        ]

    def start(self) -> None:
        self.check_ports()
        self.build()
        env = {**os.environ, "TEMPANO_DATA_DIR": str(self.settings.data_dir)}
        # The worker and the API need Temporal, not each other: they start together once it answers.
        temporal, *clients = self.services
        try:
            for batch in ([temporal], clients):
                for service in batch:
                    self.say(f"starting {service.name}...")
                    service.start(env)
                for service in batch:
                    wait_for(service.healthy, service.name, service.timeout, service.proc)
        except UpError:
            self.stop()
            raise
        self.say(
            f"tempano is up: API {self.settings.api_url}, Temporal web UI {self.settings.ui_url}, data in {self.settings.data_dir}"
        )

    def supervise(self) -> int:
        """Restarts the worker or API if they die (at most 5 times a minute); stops all if Temporal dies."""
        env = {**os.environ, "TEMPANO_DATA_DIR": str(self.settings.data_dir)}
        while not self._stopping:
            time.sleep(0.5)
            for service in self.services:
                if self._stopping or service.proc is None or service.proc.poll() is None:
                    continue
                code = service.proc.returncode
                now = time.monotonic()
                service.restarts = [t for t in service.restarts if now - t < 60] + [now]
                if service is self.services[0] or len(service.restarts) > 5:
                    self.say(f"{service.name} exited with code {code}; stopping tempano")
                    self.stop()
                    return 1
                self.say(f"{service.name} exited with code {code}; restarting it")
                service.start(env)
        return 0

    def stop(self) -> None:
        self._stopping = True
        for service in reversed(self.services):
            service.stop()


def up(settings: Settings) -> int:
    stack = Stack(settings)

    def on_signal(signum: int, _frame: object) -> None:
        stack.say(f"received {signal.Signals(signum).name}: stopping tempano")
        stack._stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except UpError as e:
        print(f"tempano up: {e}", file=sys.stderr)
        return 2
    code = stack.supervise()
    stack.stop()
    stack.say("tempano stopped")
    return code
