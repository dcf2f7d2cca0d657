"""API latency: median and p99 of get-deployment and list-deployments with 1,000 deployments in the store, under
50 concurrent clients on loopback.

The API runs as its own process (`tempano api`, uvicorn, SQLite store, a headless Temporal dev server for its
readiness), the load comes from this process (asyncio + httpx, one connection per client). Deployments are
written straight into the store (3 node instances each, from the hello example): the reads measured are the
same as for deployments created through the API.

    .venv/bin/python benchmarks/api_latency.py [--deployments 1000] [--clients 50] [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tempano.api.settings import Settings
from tempano.api.up import exit_on_up_error, free_port, stop_process, throwaway_dev_server, wait_for
from tempano.blueprints import compile as compile_blueprint
from tempano.blueprints import load
from tempano.store import Store
from tempano.store.topology import expand

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "blueprints" / "examples" / "hello" / "hello.yaml"


def seed(store: Store, count: int) -> None:
    plan = compile_blueprint(load(HELLO))
    store.put_blueprint("hello", plan.model_dump(mode="json"), plan.content_hash, description=plan.description)
    instances = expand(plan)
    data = plan.model_dump(mode="json")
    for i in range(count):
        store.create_deployment(
            f"dep-{i:04d}", "hello", data, {}, instances, labels={"site": f"site-{i % 10}", "tier": "bench"}
        )


async def load_test(
    url: str, token: str, paths: list[str], clients: int, requests: int
) -> tuple[list[float], float, int]:
    """Latencies (s) of ``requests`` GETs spread over ``clients`` concurrent clients; wall time; errors."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for _ in range(requests):
        queue.put_nowait(random.choice(paths))

    async def client() -> None:
        nonlocal errors
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
        ) as http:
            while True:
                try:
                    path = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await http.get(path)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started, errors


def report(name: str, latencies: list[float], wall: float, errors: int) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{name:42} n={len(ordered):5}  median {statistics.median(ordered) * 1000:7.1f} ms  "
        f"p99 {p99 * 1000:7.1f} ms  {len(ordered) / wall:6.0f} req/s  errors {errors}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tempano-bench-api-"))
    settings = Settings(data_dir=tmp / "data")
    api_port = free_port()
    token = "bench-" + secrets.token_urlsafe(24)
    procs: list[subprocess.Popen[bytes]] = []
    with throwaway_dev_server() as (address, _):
        try:
            store = Store(settings.store_url, secret_cipher=settings.cipher())
            store.create_schema()
            started = time.perf_counter()
            seed(store, args.deployments)
            store.close()
            print(f"seeded {args.deployments} deployments in {time.perf_counter() - started:.1f}s")
            env = {
                **os.environ,
                "TEMPANO_DATA_DIR": str(settings.data_dir),
                "TEMPANO_TEMPORAL_ADDRESS": address,
                "TEMPANO_API_PORT": str(api_port),
                "TEMPANO_ADMIN_TOKEN": token,
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tempano.api.cli", "api"], env=env, stdout=subprocess.DEVNULL, stderr=None
                )
            )
            url = f"http://127.0.0.1:{api_port}"
            wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "the API", 90, procs[-1])

            ids = [f"dep-{i:04d}" for i in range(args.deployments)]
            cases = [
                ("get-deployment", [f"/api/v1/deployments/{d}" for d in ids], args.requests),
                ("list-deployments (page of 100)", ["/api/v1/deployments?limit=100"], args.requests),
                ("list-deployments (label filter, 100)", ["/api/v1/deployments?label=site%3Dsite-3"], args.requests),
                ("list-deployments (all 1000 in one page)", ["/api/v1/deployments?limit=1000"], args.requests // 10),
            ]
            load = os.getloadavg()[0]
            print(f"{args.deployments} deployments, loopback, {os.cpu_count()} CPUs, load average {load:.1f} at start")
            asyncio.run(load_test(url, token, cases[0][1], 1, 50))  # warm-up
            latencies, wall, errors = asyncio.run(load_test(url, token, cases[0][1], 1, 300))
            report("get-deployment, 1 client (baseline)", latencies, wall, errors)
            print(f"{args.clients} concurrent clients:")
            for name, paths, n in cases:
                asyncio.run(load_test(url, token, paths, args.clients, min(200, n)))  # warm-up
                latencies, wall, errors = asyncio.run(load_test(url, token, paths, args.clients, n))
                report(name, latencies, wall, errors)
            return 0
        finally:
            for proc in reversed(procs):
                stop_process(proc)


if __name__ == "__main__":
    with exit_on_up_error("api_latency"):
        sys.exit(main())
