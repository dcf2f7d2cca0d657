"""The emulator on the wire: discovery, tokens, error bodies and fault injection, seen with plain HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tempano.plugins.openstack.testing import Faults, OpenStackEmulator


@pytest.fixture
def emulator() -> Iterator[OpenStackEmulator]:
    emulator = OpenStackEmulator("wire", faults=Faults(seed=1)).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def token(emulator: OpenStackEmulator, password: str = "secret") -> httpx.Response:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "admin", "password": password, "domain": {"name": "Default"}}},
            },
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}},
        }
    }
    return httpx.post(f"{emulator.auth_url}/auth/tokens", json=body)


def test_discovery_documents_point_at_the_emulator(emulator: OpenStackEmulator) -> None:
    compute = httpx.get(f"{emulator.url}/compute/").json()["versions"][0]
    assert compute["id"] == "v2.1" and compute["min_version"] == "2.1" and compute["version"] >= "2.9"
    assert compute["links"][0]["href"].startswith(emulator.url)
    assert httpx.get(emulator.auth_url).json()["version"]["id"].startswith("v3")
    assert httpx.get(f"{emulator.url}/network/").json()["versions"][0]["id"] == "v2.0"
    assert httpx.get(f"{emulator.url}/volume/").json()["versions"][0]["min_version"] == "3.0"


def test_password_auth_gives_a_token_and_a_catalog_and_refuses_a_wrong_password(
    emulator: OpenStackEmulator,
) -> None:
    answer = token(emulator)
    assert answer.status_code == 201 and answer.headers["X-Subject-Token"]
    catalog = {entry["type"]: entry["endpoints"][0]["url"] for entry in answer.json()["token"]["catalog"]}
    assert set(catalog) >= {"compute", "network", "image", "volumev3", "identity"}
    assert all(url.startswith(emulator.url) for url in catalog.values())
    assert token(emulator, "wrong").status_code == 401
    assert httpx.get(f"{emulator.url}/network/v2.0/networks").status_code == 401


def test_quota_refusals_use_each_service_s_format(emulator: OpenStackEmulator) -> None:
    headers = {"X-Auth-Token": token(emulator).headers["X-Subject-Token"]}
    emulator.faults.quotas = {"network": 1, "server": 0}  # the seeded public network fills the quota
    neutron = httpx.post(f"{emulator.url}/network/v2.0/networks", json={"network": {"name": "n"}}, headers=headers)
    assert neutron.status_code == 409
    assert neutron.json()["NeutronError"]["type"] == "OverQuota"
    server = {"server": {"name": "s", "flavorRef": "x", "imageRef": "y"}}
    nova = httpx.post(f"{emulator.url}/compute/v2.1/servers", json=server, headers=headers)
    assert nova.status_code == 403 and "Quota exceeded for instances" in nova.json()["forbidden"]["message"]


def test_injected_errors_follow_the_rate_and_some_land_after_the_effect(emulator: OpenStackEmulator) -> None:
    headers = {"X-Auth-Token": token(emulator).headers["X-Subject-Token"]}
    emulator.faults.error_rate = 0.3
    with httpx.Client(base_url=emulator.url, headers=headers) as client:
        statuses = [
            client.post("/network/v2.0/networks", json={"network": {"name": f"n{i}"}}).status_code for i in range(200)
        ]
    failed = sum(1 for s in statuses if s >= 500)
    assert 30 <= failed <= 90 and failed == emulator.injected_errors
    created = emulator.count("network") - 1
    # 201 answers and the 503s sent after the effect both made a network; the 500s did not
    assert created == statuses.count(201) + statuses.count(503)
    assert statuses.count(503) > 0 and statuses.count(500) > 0
