"""`tempano api` and `tempano worker`, run as installed, when no Temporal server answers: one sentence naming the
address tried and what to do, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tempano.api.up import free_port

TEMPANO = Path(sys.executable).parent / "tempano"


@pytest.mark.parametrize("command", ["api", "worker"])
def test_an_unreachable_temporal_is_one_sentence(command: str, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **os.environ,
        "TEMPANO_DATA_DIR": str(tmp_path),
        "TEMPANO_TEMPORAL_ADDRESS": address,
        "TEMPANO_API_PORT": str(free_port()),
    }
    result = subprocess.run(
        [str(TEMPANO), command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (
        f"Error: cannot reach the Temporal server at {address} (Connection refused): start it with `tempano up`, "
        "or set TEMPANO_TEMPORAL_ADDRESS to the address of a running one"
    )
