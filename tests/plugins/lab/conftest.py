"""Lab VIM test fixtures: a private state directory, a deployment removed afterwards even on failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempano.plugins.lab.testing import LabDeployment, lab_deployment


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the lab VIM tests need root (network namespaces, bridges, sshd)")
    path = tmp_path / "lab"
    monkeypatch.setenv("TEMPANO_LAB_DIR", str(path))
    return path


@pytest.fixture
def lab(lab_dir: Path) -> Iterator[LabDeployment]:
    with lab_deployment("labtest") as deployment:
        yield deployment
