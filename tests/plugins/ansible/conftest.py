"""Ansible plugin fixtures: a lab deployment (real namespaces, sshd) and a blueprint directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempano.plugins.lab.testing import LabDeployment, lab_deployment


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LabDeployment]:
    if os.geteuid() != 0:
        pytest.skip("the Ansible plugin tests run playbooks on lab servers, which need root")
    monkeypatch.setenv("TEMPANO_LAB_DIR", str(tmp_path / "lab"))
    with lab_deployment("anstest") as deployment:
        yield deployment


@pytest.fixture
def blueprint_dir(tmp_path: Path) -> Path:
    path = tmp_path / "blueprint"
    (path / "playbooks").mkdir(parents=True)
    return path
