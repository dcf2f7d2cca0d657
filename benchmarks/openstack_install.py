"""OpenStack install/uninstall through the whole engine, with and without faults.

    .venv/bin/python benchmarks/openstack_install.py [repeats]        # default: 3

The examples of blueprints/examples/openstack (multi-network: 16 nodes, VNFD firewall: 12 nodes) are installed then
uninstalled on an emulated cloud (tempano.plugins.openstack.testing) by the real openstacksdk, on the real Temporal dev
server with an in-process worker: once clean, once with 10% of API calls answered 500/503 (half of them after the call
took effect) and 20 ms latency, once with 10% and 100 ms. Printed per case: median install and uninstall wall time,
API calls and injected errors per run, and whether anything was left or made twice (ok). Servers build in 0.5 s; the examples keep the
plugin's default 2 s polling interval, which dominates the clean figures.

The dev server, the emulator, the store and clouds.yaml live in a temporary directory removed at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.api.up import temporal_command
from tempano.api.worker import build_worker
from tempano.plugins.openstack import forget_connections
from tempano.plugins.openstack.testing import Faults, OpenStackEmulator, write_clouds_yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "blueprints" / "examples" / "openstack"
BLUEPRINTS = {"multi-network": EXAMPLES / "multi_network.yaml", "vnfd": EXAMPLES / "vnfd_firewall.yaml"}
CASES = {"clean": (0.0, 0.0), "10% 5xx, 20 ms": (0.1, 0.02), "10% 5xx, 100 ms": (0.1, 0.1)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def stack(workdir: Path) -> AsyncIterator[Tempano]:
    settings = Settings(data_dir=workdir / "data", temporal_address=f"127.0.0.1:{free_port()}", secret_key=None)
    temporal = settings.find_temporal()
    if temporal is None:
        sys.exit("the temporal CLI is missing: run `make setup`")
    port = int(settings.temporal_address.rsplit(":", 1)[1])
    cmd = temporal_command(settings, temporal, workdir / "temporal.db", port, free_port())
    server = subprocess.Popen(cmd, stdout=(workdir / "temporal.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = await Client.connect(settings.temporal_address, data_converter=pydantic_data_converter)
                await client.service_client.check_health()
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        worker, pool = build_worker(client, settings.store, task_queue=settings.task_queue, threads=32)
        async with worker:
            yield Tempano(settings, client, settings.store)
        pool.shutdown(wait=False, cancel_futures=True)
    finally:
        server.terminate()
        server.wait(30)


async def one_run(tempano: Tempano, cloud: OpenStackEmulator, blueprint: str, deployment: str) -> tuple[float, float]:
    await tempano.create_deployment(deployment, blueprint, {"cloud": cloud.name})
    started = time.perf_counter()
    execution = await tempano.run(deployment, "install", timeout=900)
    installed = time.perf_counter() - started
    if execution.status != "succeeded":
        raise SystemExit(f"{deployment}: install {execution.status}: {execution.error}")
    started = time.perf_counter()
    execution = await tempano.run(deployment, "uninstall", timeout=900)
    if execution.status != "succeeded":
        raise SystemExit(f"{deployment}: uninstall {execution.status}: {execution.error}")
    return installed, time.perf_counter() - started


async def main(repeats: int) -> None:
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)  # every injected fault logs a retried attempt
    warnings.filterwarnings("ignore")  # openstacksdk's deprecation notices
    with tempfile.TemporaryDirectory(prefix="tempano-bench-os-") as tmp:
        workdir = Path(tmp)
        async with stack(workdir) as tempano:
            for name, path in BLUEPRINTS.items():
                tempano.upload_blueprint(name, path)
            baseline: dict[str, Counter[str]] = {}
            print(
                f"{'blueprint':<14} {'faults':<16} {'install s':>9} {'uninstall s':>11} {'calls':>6} {'errors':>6}  ok"
            )
            for n, (case, (rate, latency)) in enumerate(CASES.items()):
                for name in BLUEPRINTS:
                    faults = Faults(error_rate=rate, latency=latency, server_build_seconds=0.5, seed=1)
                    with OpenStackEmulator("bench", faults=faults) as cloud:
                        os.environ["OS_CLIENT_CONFIG_FILE"] = str(write_clouds_yaml(workdir / "clouds.yaml", [cloud]))
                        forget_connections()
                        runs = [await one_run(tempano, cloud, name, f"{name}-{n}-{i}") for i in range(repeats)]
                        # the clean run's creation counts are the reference: more under faults = made twice
                        created = cloud.created
                        baseline.setdefault(name, created)
                        ok = "yes" if not cloud.leftovers() and created == baseline[name] else "NO"
                        calls = sum(cloud.state.calls.values()) // repeats
                        print(
                            f"{name:<14} {case:<16} {statistics.median(r[0] for r in runs):>9.1f} "
                            f"{statistics.median(r[1] for r in runs):>11.1f} {calls:>6} "
                            f"{cloud.injected_errors // repeats:>6}  {ok}"
                        )
            forget_connections()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
