"""The onos driver against the ONOS REST emulator: create, adopt, delete, heal, and a flaky controller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tempano.plugins.contract import AuthenticationFailed, ConfigurationError, RetryableError
from tempano.plugins.sdn import _http as sdn_http
from tempano.plugins.sdn import plugin
from tempano.plugins.sdn.testing import Faults, OnosEmulator

CP_A, CP_B = "of:0000000000000001/1", "of:0000000000000002/3"


@pytest.fixture
def onos() -> Iterator[OnosEmulator]:
    with OnosEmulator(faults=Faults()) as emulator:
        yield emulator  # type: ignore[misc]


@pytest.fixture
def world(onos: OnosEmulator, world_factory: Any) -> Any:
    w = world_factory("tpsdn-onos", secrets={"onos-creds": "onos:rocks"})
    for name, cp in (("central", CP_A), ("regional", CP_B)):
        w.site(name, driver="onos", controller_url=onos.url, credentials_secret="onos-creds", attachment_point=cp)
    w.network("net_a", "bra")
    w.network("net_b", "brb")
    w.make_link("central", "net_a", "regional", "net_b", service_type="L2", vlan_id=100)
    return w


def run(ctx: Any, op: str) -> Any:
    return plugin.operations[op](ctx)


def until_it_works(fn: Any, attempts: int = 40) -> Any:
    """Call an operation again after each retryable failure, as the engine's retry policy would."""
    for _ in range(attempts):
        try:
            return fn()
        except RetryableError:
            continue
    raise AssertionError(f"still failing after {attempts} attempts")


def test_create_makes_one_vpls_joining_both_attachment_points(onos: OnosEmulator, world: Any) -> None:
    for site in ("central", "regional"):
        run(world.site_ctx(site, "create"), "site.create")

    out = run(world.link_ctx("create"), "link.create")

    [vpls] = onos.vplss()
    assert vpls["name"] == out["vpls_name"] and vpls["name"].startswith("tempano-")
    assert vpls["interfaces"] == [f"{vpls['name']}-a", f"{vpls['name']}-b"]
    assert vpls["encapsulation"] == "VLAN"
    assert onos.interfaces(CP_A) == [{"name": f"{vpls['name']}-a", "vlan": "100"}]
    assert onos.interfaces(CP_B) == [{"name": f"{vpls['name']}-b", "vlan": "100"}]
    assert sorted(r.kind for r in world.link_resources()) == [
        "sdn.onos.interface",
        "sdn.onos.interface",
        "sdn.onos.vpls",
    ]
    assert run(world.link_ctx("check"), "link.check")["healthy"] is True


def test_create_again_changes_nothing(onos: OnosEmulator, world: Any) -> None:
    run(world.link_ctx("create"), "link.create")
    writes_before = [r for r in onos.requests if r[0] == "POST"]

    run(world.link_ctx("create", attempt=2), "link.create")

    assert [r for r in onos.requests if r[0] == "POST"] == writes_before
    assert len(onos.vplss()) == 1
    assert len(world.link_resources()) == 3


def test_create_adopts_a_vpls_a_lost_attempt_made(onos: OnosEmulator, world: Any) -> None:
    onos.faults.lost_reply_rate = 1.0  # ONOS applies every write but the answers never arrive
    with pytest.raises(RetryableError, match="reply lost"):
        run(world.link_ctx("create"), "link.create")
    onos.faults.lost_reply_rate = 0.0

    run(world.link_ctx("create", attempt=2), "link.create")

    assert len(onos.vplss()) == 1
    assert len(onos.interfaces(CP_A)) == 1 and len(onos.interfaces(CP_B)) == 1


def test_a_controller_that_fails_sometimes_still_ends_with_exactly_one_vpls(onos: OnosEmulator, world: Any) -> None:
    onos.faults.error_rate = 0.3
    onos.faults.lost_reply_rate = 0.3

    until_it_works(lambda: run(world.link_ctx("create"), "link.create"))

    assert len(onos.vplss()) == 1
    assert len(onos.interfaces(CP_A)) == 1 and len(onos.interfaces(CP_B)) == 1
    assert any(status >= 500 for _, _, status in onos.requests), "the fault injection did not fire"

    until_it_works(lambda: run(world.link_ctx("delete"), "link.delete"))

    assert onos.vplss() == [] and onos.interfaces(CP_A) == [] and onos.interfaces(CP_B) == []
    assert world.link_resources() == []


def test_delete_removes_only_what_the_link_made(onos: OnosEmulator, world: Any) -> None:
    customer = {"name": "customer-x", "interfaces": ["cx"], "encapsulation": "NONE"}
    onos.config["apps"] = {"org.onosproject.vpls": {"vpls": {"vplsList": [customer]}}}
    onos.config["ports"] = {CP_A: {"interfaces": [{"name": "cx", "vlan": "7"}]}}
    run(world.link_ctx("create"), "link.create")

    run(world.link_ctx("delete"), "link.delete")

    assert onos.vplss() == [customer]
    assert onos.interfaces(CP_A) == [{"name": "cx", "vlan": "7"}]
    assert onos.interfaces(CP_B) == []
    assert run(world.link_ctx("delete"), "link.delete") == {"removed": []}


def test_check_answers_unhealthy_when_the_vpls_vanishes_and_create_restores_it(onos: OnosEmulator, world: Any) -> None:
    run(world.link_ctx("create"), "link.create")
    onos.config["apps"]["org.onosproject.vpls"]["vpls"]["vplsList"] = []

    answer = run(world.link_ctx("check"), "link.check")

    assert answer["healthy"] is False and answer["state"] == "broken"
    assert f"ONOS at {onos.url} has no VPLS tempano-" in answer["reason"]
    assert answer["reason"].startswith("link 'wan_1' is broken: ")
    assert answer["reason"].endswith("; heal re-creates the link")
    run(world.link_ctx("create"), "link.create")

    assert len(onos.vplss()) == 1
    assert run(world.link_ctx("check"), "link.check")["healthy"] is True


def test_refused_credentials_are_an_authentication_error_naming_controller_and_secret(
    onos: OnosEmulator, world: Any
) -> None:
    onos.faults.reject_auth = True

    with pytest.raises(AuthenticationFailed) as failure:
        run(world.link_ctx("create"), "link.create")

    assert not failure.value.retryable
    assert onos.url in failure.value.message
    assert "secret 'onos-creds'" in failure.value.message and "link 'wan_1'" in failure.value.message


def test_slow_controller_is_a_retryable_timeout(
    onos: OnosEmulator, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdn_http, "DEFAULT_TIMEOUT_S", 0.1)
    onos.faults.latency_s = 0.5

    with pytest.raises(RetryableError, match=rf"ONOS at {onos.url} did not answer GET .* within"):
        run(world.site_ctx("central", "create"), "site.create")


def test_unreachable_controller_is_retryable(onos: OnosEmulator, world: Any) -> None:
    onos.stop()

    with pytest.raises(RetryableError, match=r"cannot reach ONOS at http://127\.0\.0\.1"):
        run(world.link_ctx("create"), "link.create")


def test_checks_that_cannot_ask_the_controller_raise_instead_of_answering_unhealthy(
    onos: OnosEmulator, world: Any
) -> None:
    # Heal must not tear down a link nobody could look at: only the controller's own answer makes it unhealthy.
    run(world.link_ctx("create"), "link.create")
    onos.faults.reject_auth = True
    with pytest.raises(AuthenticationFailed, match="refused the credentials from secret 'onos-creds'"):
        run(world.link_ctx("check"), "link.check")
    with pytest.raises(AuthenticationFailed, match="site 'central_1'"):
        run(world.site_ctx("central", "check"), "site.check")
    onos.faults.reject_auth = False

    onos.stop()

    with pytest.raises(RetryableError, match=r"cannot reach ONOS at http://127\.0\.0\.1"):
        run(world.link_ctx("check"), "link.check")
    with pytest.raises(RetryableError, match=r"cannot reach ONOS at http://127\.0\.0\.1"):
        run(world.site_ctx("central", "check"), "site.check")


def test_missing_secret_and_attachment_point_are_configuration_errors(onos: OnosEmulator, world_factory: Any) -> None:
    w = world_factory("tpsdn-onos")
    w.site("nosecret", driver="onos", controller_url=onos.url, credentials_secret="absent", attachment_point=CP_A)
    w.site("noport", driver="onos", controller_url=onos.url, credentials_secret="absent")
    w.secrets["present"] = "onos:rocks"
    w.site("noport2", driver="onos", controller_url=onos.url, credentials_secret="present")

    with pytest.raises(ConfigurationError, match="secret 'absent', which is not in tempano's secret store"):
        run(w.site_ctx("nosecret", "create"), "site.create")
    with pytest.raises(ConfigurationError, match="has no attachment_point"):
        run(w.site_ctx("noport2", "create"), "site.create")


def test_an_l3_link_is_refused_before_anything_reaches_the_controller(onos: OnosEmulator, world: Any) -> None:
    world.make_link("central", "net_a", "regional", "net_b", service_type="L3", vlan_id=100)
    sent = len(onos.requests)

    with pytest.raises(ConfigurationError, match="ONOS VPLS provides L2 links only, not L3; set service_type to L2"):
        run(world.link_ctx("create"), "link.create")
    assert onos.requests[sent:] == []
