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
import statistics
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import _cli  # benchmarks/_cli.py: the script's directory is on the path

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.api.up import connect_when_ready, exit_on_up_error, throwaway_dev_server
from tempano.api.worker import build_worker
from tempano.plugins.openstack import forget_connections
from tempano.plugins.openstack.testing import Faults, OpenStackEmulator, write_clouds_yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "blueprints" / "examples" / "openstack"
BLUEPRINTS = {"multi-network": EXAMPLES / "multi_network.yaml", "vnfd": EXAMPLES / "vnfd_firewall.yaml"}
CASES = {"clean": (0.0, 0.0), "10% 5xx, 20 ms": (0.1, 0.02), "10% 5xx, 100 ms": (0.1, 0.1)}


@asynccontextmanager
async def stack(workdir: Path) -> AsyncIterator[Tempano]:
    with throwaway_dev_server(workdir / "temporal.db", log=workdir / "temporal.log") as (address, server):
        settings = Settings(data_dir=workdir / "data", temporal_address=address, secret_key=None)
        client = await connect_when_ready(address, server)
        worker, pool = build_worker(client, settings.store, task_queue=settings.task_queue, threads=32)
        async with worker:
            yield Tempano(settings, client, settings.store)
        pool.shutdown(wait=False, cancel_futures=True)


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
    count = _cli.rounds(__doc__, 3)
    with exit_on_up_error("openstack_install"):
        asyncio.run(main(count))
