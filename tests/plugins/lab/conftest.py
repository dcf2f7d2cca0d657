"""Lab VIM test fixtures: a private state directory, a deployment removed afterwards even on failure."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempano.plugins.lab import cleanup, leftovers
from tempano.plugins.lab.testing import LabDeployment


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the lab VIM tests need root (network namespaces, bridges, sshd)")
    path = tmp_path / "lab"
    monkeypatch.setenv("TEMPANO_LAB_DIR", str(path))
    return path


@pytest.fixture
def lab(lab_dir: Path) -> Iterator[LabDeployment]:
    deployment = LabDeployment(f"labtest-{uuid.uuid4().hex[:8]}")
    try:
        yield deployment
    finally:
        cleanup(deployment.deployment_id)
        assert leftovers(deployment.deployment_id) == []
