"""Fixtures: emulated clouds reached by the real openstacksdk through a clouds.yaml in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tempano.plugins.openstack import forget_connections
from tempano.plugins.openstack.testing import Faults, OpenStackEmulator, write_clouds_yaml
from tempano.plugins.openstack.testing.harness import OperationRunner


@pytest.fixture
def clouds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, OpenStackEmulator]]:
    """Two emulated clouds, ``east`` and ``west``, in one clouds.yaml (builds take milliseconds)."""
    emulators: dict[str, OpenStackEmulator] = {}
    try:
        for name in ("east", "west"):
            faults = Faults(server_build_seconds=0.05, volume_build_seconds=0.02, seed=7)
            emulators[name] = OpenStackEmulator(name, faults=faults).start()
        path = write_clouds_yaml(tmp_path / "clouds.yaml", list(emulators.values()))
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
        monkeypatch.delenv("OS_CLOUD", raising=False)
        yield emulators
    finally:
        forget_connections()
        for emulator in emulators.values():
            emulator.stop()


@pytest.fixture
def cloud(clouds: dict[str, OpenStackEmulator]) -> OpenStackEmulator:
    return clouds["east"]


@pytest.fixture
def runner() -> OperationRunner:
    return OperationRunner()
