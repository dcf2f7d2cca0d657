"""IPAM: persistent, idempotent allocation per key (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempano.plugins.contract import ConfigurationError, NonRetryableError
from tempano.plugins.lab._state import Ipam


@pytest.fixture
def ipam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ipam:
    monkeypatch.setenv("TEMPANO_LAB_DIR", str(tmp_path))
    pool = Ipam("dep", "net_1")
    pool.define("10.1.0.0/29", gateway="10.1.0.1")
    return pool


def test_same_key_gets_same_address_across_instances(ipam: Ipam) -> None:
    first = ipam.allocate("dep.port_1.create")
    again = Ipam("dep", "net_1").allocate("dep.port_1.create")  # a new object reads the file: persistent
    other = ipam.allocate("dep.port_2.create")
    assert first == again == "10.1.0.2"
    assert other == "10.1.0.3"


def test_gateway_is_reserved_unless_asked_for(ipam: Ipam) -> None:
    allocated = {ipam.allocate(f"k{i}") for i in range(5)}
    assert "10.1.0.1" not in allocated
    with pytest.raises(NonRetryableError, match=r"no free address left for k5"):
        ipam.allocate("k5")
    ipam.release("k0")
    assert ipam.allocate("router") == "10.1.0.2"
    assert ipam.allocate("gw", "10.1.0.1") == "10.1.0.1"


def test_fixed_address_conflicts_and_range_are_refused(ipam: Ipam) -> None:
    ipam.allocate("a", "10.1.0.5")
    with pytest.raises(ConfigurationError, match=r"10\.1\.0\.5 .* already held by a"):
        ipam.allocate("b", "10.1.0.5")
    with pytest.raises(ConfigurationError, match=r"not a host address of network net_1"):
        ipam.allocate("c", "10.2.0.5")


def test_redefining_with_another_cidr_is_refused(ipam: Ipam) -> None:
    assert ipam.define("10.1.0.0/29").cidr == "10.1.0.0/29"  # adoption
    with pytest.raises(ConfigurationError, match=r"already exists with cidr 10\.1\.0\.0/29"):
        ipam.define("10.9.0.0/24")


def test_start_and_end_bound_allocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPANO_LAB_DIR", str(tmp_path))
    pool = Ipam("dep", "net_2")
    pool.define("10.3.0.0/24", start="10.3.0.100", end="10.3.0.101")
    assert [pool.allocate("a"), pool.allocate("b")] == ["10.3.0.100", "10.3.0.101"]
    with pytest.raises(NonRetryableError, match="no free address"):
        pool.allocate("c")
