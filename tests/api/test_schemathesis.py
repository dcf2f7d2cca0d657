"""schemathesis against the served OpenAPI schema: no 5xx answer over at least 1,000 generated requests
(examples, coverage and fuzzing phases; valid and invalid data), with the real worker, store and Temporal."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tempano.api.up import UpError, free_port, stop_process, wait_for
from tests.conftest import DevServer, worker_polling

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "blueprints" / "examples" / "hello" / "hello.yaml"
MIN_REQUESTS = 1000


@pytest.fixture
def served(dev_server: DevServer, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`tempano worker` and `tempano api` as processes on a fresh task queue; yields (url, admin token)."""
    token = "adm-" + secrets.token_urlsafe(24)
    port = free_port()
    env = {
        **os.environ,
        "TEMPANO_DATA_DIR": str(tmp_path / "data"),
        "TEMPANO_TEMPORAL_ADDRESS": dev_server.address,
        "TEMPANO_TASK_QUEUE": f"tq-{uuid.uuid4().hex[:12]}",
        "TEMPANO_API_PORT": str(port),
        "TEMPANO_ADMIN_TOKEN": token,
        "TEMPANO_MAX_UPLOAD_BYTES": str(1024 * 1024),
    }
    logs = (tmp_path / "worker.log").open("wb"), (tmp_path / "api.log").open("wb")
    procs = [
        subprocess.Popen([sys.executable, "-m", "tempano.api.cli", verb], env=env, stdout=log, stderr=subprocess.STDOUT)
        for verb, log in zip(("worker", "api"), logs, strict=True)
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            # (minutes on a loaded machine: both processes import for seconds)
            wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "the API", 240, procs[1])
        except UpError as e:
            pytest.fail(f"{e}: {(tmp_path / 'api.log').read_text()}")
        queue = env["TEMPANO_TASK_QUEUE"]
        asyncio.run(worker_polling(dev_server.address, queue, procs[0], tmp_path / "worker.log"))
        yield url, token
    finally:
        for proc in procs:
            stop_process(proc)
        for log in logs:
            log.close()
        server_errors = [line for line in (tmp_path / "api.log").read_text().splitlines() if "unexpected error" in line]
        print("\n".join(server_errors[:20]))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # its run is bounded at 1500 s below: let that bound speak first
def test_no_server_error_over_a_thousand_generated_requests(served: tuple[str, str], tmp_path: Path) -> None:
    url, token = served
    auth = {"Authorization": f"Bearer {token}"}
    # Real objects under the ids the schema's examples use, so generated requests also reach them.
    assert (
        httpx.put(f"{url}/api/v1/blueprints/hello", content=HELLO.read_bytes(), headers=auth, timeout=60).status_code
        == 201
    )
    r = httpx.put(f"{url}/api/v1/deployments/hello-1", json={"blueprint_id": "hello"}, headers=auth, timeout=60)
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{url}/api/v1/executions", json={"deployment_id": "hello-1", "workflow": "install"}, headers=auth, timeout=120
    )
    assert r.status_code == 202, r.text

    har = tmp_path / "schemathesis.har"
    st = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [
            str(st),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "60",
            "--generation-with-security-parameters",
            "false",
            "--suppress-health-check",
            "all",
            "--header",
            f"Authorization: Bearer {token}",
            "--report",
            "har",
            "--report-har-path",
            str(har),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
    )
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = Counter(e["response"]["status"] for e in entries)
    server_errors = [
        f"{e['request']['method']} {e['request']['url']} -> {e['response']['status']}"
        for e in entries
        if e["response"]["status"] >= 500
    ]
    print(f"schemathesis: {len(entries)} requests, statuses {dict(sorted(statuses.items()))}")
    assert not server_errors, "\n".join(server_errors[:20]) + "\n" + run.stdout[-5000:]
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert len(entries) >= MIN_REQUESTS, f"only {len(entries)} requests were generated"
    # Most requests got past authentication (the admin token was not revoked by a generated DELETE).
    assert statuses[401] < len(entries) / 4, statuses
