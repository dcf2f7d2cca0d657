"""The ietf-l2vpn driver against the RESTCONF emulator: sites, vpn-services and accesses per RFC 8466."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tempano.plugins.contract import (
    AuthenticationFailed,
    ConfigurationError,
    NonRetryableError,
    RetryableError,
)
from tempano.plugins.sdn import plugin
from tempano.plugins.sdn.testing import Faults, L2vpnEmulator


@pytest.fixture
def wim() -> Iterator[L2vpnEmulator]:
    with L2vpnEmulator(username="admin", password="s3cret", faults=Faults(seed=11)) as emulator:
        yield emulator  # type: ignore[misc]


@pytest.fixture
def world(wim: L2vpnEmulator, world_factory: Any) -> Any:
    w = world_factory("tpsdn-l2vpn", secrets={"wim-creds": "admin:s3cret"})
    for name in ("central", "regional"):
        w.site(name, driver="ietf-l2vpn", controller_url=wim.url, credentials_secret="wim-creds")
    w.network("net_a", "bra")
    w.network("net_b", "brb")
    w.make_link("central", "net_a", "regional", "net_b", service_type="L2", vlan_id=210, bandwidth_mbps=50)
    return w


def run(ctx: Any, op: str) -> Any:
    result = plugin.operations[op](ctx)
    for name, value in ctx.instance.attribute_writes.items():  # the engine persists attribute writes
        ctx.instance.attributes[name] = value
    return result


def until_it_works(fn: Any, attempts: int = 40) -> Any:
    for _ in range(attempts):
        try:
            return fn()
        except RetryableError:
            continue
    raise AssertionError(f"still failing after {attempts} attempts")


def install_sites(world: Any) -> None:
    for site in ("central", "regional"):
        run(world.site_ctx(site, "create"), "site.create")


def test_install_makes_sites_a_vpws_service_and_one_access_per_end(wim: L2vpnEmulator, world: Any) -> None:
    install_sites(world)

    out = run(world.link_ctx("create"), "link.create")

    [service] = wim.vpn_services()
    assert service["vpn-id"] == out["vpn_id"]
    assert service["vpn-svc-type"] == "ietf-l2vpn-svc:vpws"
    site_ids = [world.sites[s].attributes["site_id"] for s in ("central", "regional")]
    assert sorted(s["site-id"] for s in wim.sites()) == sorted(site_ids)
    accesses = wim.accesses()
    assert [a["vpn-attachment"]["vpn-id"] for a in accesses] == [service["vpn-id"]] * 2
    tagged = accesses[0]["connection"]["tagged-interface"]["dot1q-vlan-tagged"]
    assert tagged["cvlan-id"] == 210
    assert accesses[0]["service"]["svc-bandwidth"]["bandwidth"][0]["cir"] == 50_000_000
    assert run(world.link_ctx("check"), "link.check") == {"healthy": True, "vpn_id": service["vpn-id"]}


def test_writes_use_the_yang_json_media_type(wim: L2vpnEmulator, world: Any) -> None:
    install_sites(world)
    run(world.link_ctx("create"), "link.create")

    assert not [r for r in wim.requests if r[2] == 415]
    with httpx.Client(auth=("admin", "s3cret")) as client:
        wrong = client.post(f"{wim.url}/restconf/data/ietf-l2vpn-svc:l2vpn-svc/vpn-services", json={})
    assert wrong.status_code == 415  # so the driver's writes above really carried yang-data+json


def test_create_again_adopts_instead_of_duplicating(wim: L2vpnEmulator, world: Any) -> None:
    install_sites(world)
    run(world.link_ctx("create"), "link.create")

    run(world.link_ctx("create", attempt=2), "link.create")
    run(world.site_ctx("central", "create"), "site.create")

    assert len(wim.vpn_services()) == 1 and len(wim.accesses()) == 2 and len(wim.sites()) == 2
    assert [r[2] for r in wim.requests if r[0] == "POST"].count(409) == 4  # seen, adopted
    assert len(world.link_resources()) == 3


def test_a_controller_that_fails_sometimes_still_ends_with_exactly_one_service(wim: L2vpnEmulator, world: Any) -> None:
    wim.faults.error_rate = 0.3
    wim.faults.lost_reply_rate = 0.3
    for site in ("central", "regional"):
        until_it_works(lambda site=site: run(world.site_ctx(site, "create"), "site.create"))

    until_it_works(lambda: run(world.link_ctx("create"), "link.create"))

    assert len(wim.vpn_services()) == 1 and len(wim.accesses()) == 2 and len(wim.sites()) == 2
    assert any(status >= 500 for _, _, status in wim.requests), "the fault injection did not fire"

    until_it_works(lambda: run(world.link_ctx("delete"), "link.delete"))
    for site in ("central", "regional"):
        until_it_works(lambda site=site: run(world.site_ctx(site, "delete"), "site.delete"))

    assert wim.vpn_services() == [] and wim.accesses() == [] and wim.sites() == []
    assert world.ledger == []


def test_delete_removes_accesses_before_the_service_and_is_idempotent(wim: L2vpnEmulator, world: Any) -> None:
    install_sites(world)
    run(world.link_ctx("create"), "link.create")

    run(world.link_ctx("delete"), "link.delete")

    assert wim.vpn_services() == [] and wim.accesses() == []
    deletes = [path for method, path, _ in wim.requests if method == "DELETE"]
    assert "vpn-service=" in deletes[-1] and all("site-network-access=" in p for p in deletes[:-1])
    assert run(world.link_ctx("delete"), "link.delete") == {"removed": []}


def test_a_given_site_id_is_used_and_never_deleted(wim: L2vpnEmulator, world_factory: Any) -> None:
    wim.data["sites"]["site"].append({"site-id": "customer-hq", "management": {"type": "ietf-l2vpn-svc:co-managed"}})
    w = world_factory("tpsdn-l2vpn", secrets={"wim-creds": "admin:s3cret"})
    w.site(
        "hq",
        driver="ietf-l2vpn",
        controller_url=wim.url,
        credentials_secret="wim-creds",
        site_id="customer-hq",
    )
    w.site("gone", driver="ietf-l2vpn", controller_url=wim.url, credentials_secret="wim-creds", site_id="nope")

    assert run(w.site_ctx("hq", "create"), "site.create")["site_id"] == "customer-hq"
    run(w.site_ctx("hq", "delete"), "site.delete")

    assert [s["site-id"] for s in wim.sites()] == ["customer-hq"]
    with pytest.raises(ConfigurationError, match="names L2VPN site 'nope', which the controller at"):
        run(w.site_ctx("gone", "create"), "site.create")


def test_check_answers_unhealthy_when_an_access_vanishes_and_create_restores_it(wim: L2vpnEmulator, world: Any) -> None:
    install_sites(world)
    run(world.link_ctx("create"), "link.create")
    site = wim.data["sites"]["site"][1]
    removed = site["site-network-accesses"]["site-network-access"].pop()

    answer = run(world.link_ctx("check"), "link.check")

    assert answer["healthy"] is False and answer["state"] == "broken"
    missing = f"the controller at {wim.url} has no site-network-access {removed['network-access-id']}"
    assert missing in answer["reason"]
    assert answer["problems"] == [f"{missing} at site {site['site-id']}"]
    run(world.link_ctx("create"), "link.create")

    assert len(wim.accesses()) == 2
    assert run(world.link_ctx("check"), "link.check")["healthy"] is True


def test_site_check_answers_unhealthy_when_the_controller_lost_the_site(wim: L2vpnEmulator, world: Any) -> None:
    install_sites(world)
    site_id = world.sites["central"].attributes["site_id"]
    wim.data["sites"]["site"] = [s for s in wim.data["sites"]["site"] if s["site-id"] != site_id]

    answer = run(world.site_ctx("central", "check"), "site.check")

    assert answer == {
        "healthy": False,
        "reason": f"site 'central_1' is broken: the controller at {wim.url} no longer has L2VPN site {site_id}; "
        "heal re-creates the site",
        "state": "broken",
        "problems": [f"the controller at {wim.url} no longer has L2VPN site {site_id}"],
    }
    assert run(world.site_ctx("regional", "check"), "site.check") == {"healthy": True}


def test_controller_errors_are_sentences_with_the_right_retry_flag(wim: L2vpnEmulator, world: Any) -> None:
    install_sites(world)
    wim.faults.reject_auth = True
    with pytest.raises(AuthenticationFailed, match="refused the credentials from secret 'wim-creds'"):
        run(world.link_ctx("create"), "link.create")
    wim.faults.reject_auth = False

    wim.faults.fail_next = 1
    with pytest.raises(RetryableError) as busy:
        run(world.link_ctx("create"), "link.create")
    assert busy.value.retryable and wim.url in busy.value.message and "HTTP 503" in busy.value.message

    # A 4xx the driver cannot fix (the site vanished from the controller): not retryable, reason kept.
    world.sites["central"].attributes["site_id"] = "no-such-site"
    with pytest.raises(NonRetryableError) as rejected:
        run(world.link_ctx("create"), "link.create")
    assert not rejected.value.retryable
    assert "HTTP 404" in rejected.value.message and "link 'wan_1'" in rejected.value.message


def test_link_without_installed_sites_is_a_configuration_error(wim: L2vpnEmulator, world: Any) -> None:
    with pytest.raises(ConfigurationError, match="has no L2VPN site id; install the site"):
        run(world.link_ctx("create"), "link.create")


def test_an_l3_link_is_refused_with_a_sentence(world: Any) -> None:
    world.make_link("central", "net_a", "regional", "net_b", service_type="L3", vlan_id=210)

    with pytest.raises(
        ConfigurationError, match=r"provides L2 links only \(RFC 8466\), not L3; set service_type to L2"
    ):
        run(world.link_ctx("create"), "link.create")
