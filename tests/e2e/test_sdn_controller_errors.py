"""Controller errors through the engine: an ONOS that answers 5xx now and then, refused and missing credentials.

The WanLink blueprint (tests/e2e/blueprints/onos_link.yaml) names a secret; tempano's secret store holds it and
the activity reads it at run time. The emulator speaks ONOS's REST API over real HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempano.api.service import Tempano
from tempano.plugins.sdn.testing import Faults, OnosEmulator
from tempano.store.records import EventRecord

BLUEPRINT = Path(__file__).resolve().parent / "blueprints" / "onos_link.yaml"
PASSWORD = "s3cret-rocks"

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def onos() -> Iterator[OnosEmulator]:
    with OnosEmulator("onos", PASSWORD, Faults()) as emulator:
        yield emulator  # type: ignore[misc]


async def deploy(tempano: Tempano, onos: OnosEmulator, secret: str = "onos-admin") -> str:
    dep = f"onos-{uuid.uuid4().hex[:6]}"
    tempano.upload_blueprint(dep, BLUEPRINT)
    await tempano.create_deployment(dep, dep, {"controller_url": onos.url, "credentials_secret": secret})
    return dep


def failures(tempano: Tempano, dep: str, execution_id: str) -> list[EventRecord]:
    return [e for e in tempano.store.events(dep, execution_id=execution_id) if e.type == "operation_failed"]


def not_retried(events: list[EventRecord]) -> bool:
    return bool(events) and all(e.data.get("retryable") is False and e.data.get("final") is True for e in events)


async def test_a_controller_answering_5xx_now_and_then_is_retried_to_a_working_link(
    tempano: Tempano, onos: OnosEmulator
) -> None:
    tempano.store.put_secret("onos-admin", f"onos:{PASSWORD}")
    dep = await deploy(tempano, onos)
    onos.faults.fail_next = 3  # the sites' first calls meet a 503
    onos.faults.lost_reply_rate = 0.2  # and some writes are applied but answered 502

    install = await tempano.run(dep, "install", timeout=300)

    assert install.status == "succeeded", install.error
    retried = failures(tempano, dep, install.id)
    assert retried, "the injected 503s must show as failed attempts"
    assert all("the engine retries" in e.message and "HTTP 50" in e.message for e in retried), retried
    assert all(e.data.get("retryable") is True for e in retried)
    [vpls] = onos.vplss()
    assert vpls["name"] == tempano.outputs(dep)["vpls_name"]
    assert len(vpls["interfaces"]) == 2

    uninstall = await tempano.run(dep, "uninstall", timeout=300)

    assert uninstall.status == "succeeded", uninstall.error
    assert onos.vplss() == []
    assert onos.interfaces("of:0000000000000001/1") == onos.interfaces("of:0000000000000002/3") == []


async def test_refused_credentials_fail_the_install_at_once_with_a_sentence_naming_the_secret(
    tempano: Tempano, onos: OnosEmulator
) -> None:
    tempano.store.put_secret("onos-admin", "onos:not-the-password")
    dep = await deploy(tempano, onos)

    install = await tempano.run(dep, "install", timeout=300)

    assert install.status == "failed"
    assert install.error is not None
    assert "refused the credentials from secret 'onos-admin' (HTTP 401" in install.error, install.error
    assert "fix the secret or the controller account's rights" in install.error
    failed = failures(tempano, dep, install.id)
    assert not_retried(failed), "credentials refused must not be retried"
    assert {e.node_instance_id for e in failed} == {"central_1", "regional_1"}
    assert not any("not-the-password" in m for m in [*(e.message for e in failed), install.error])
    assert onos.vplss() == []


async def test_a_missing_secret_fails_with_a_sentence_saying_what_to_add(tempano: Tempano, onos: OnosEmulator) -> None:
    dep = await deploy(tempano, onos, secret="nobody-stored-this")

    install = await tempano.run(dep, "install", timeout=300)

    assert install.status == "failed"
    assert install.error is not None
    assert "names credentials secret 'nobody-stored-this', which is not in tempano's secret store" in install.error
    assert not_retried(failures(tempano, dep, install.id))
    assert onos.requests == [], "nothing may reach the controller without credentials"
