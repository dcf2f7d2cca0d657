"""Shared builders for the sdn plugin tests: Site/WanLink instances and their LocalContexts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tempano.plugins.contract import InstanceView, Relationship, Resource
from tempano.plugins.testing import LocalContext, instance

SITE_HIERARCHY = ("tempano.nodes.sdn.Site", "tempano.nodes.Root", "tosca.nodes.Root")
LINK_HIERARCHY = ("tempano.nodes.sdn.WanLink", "tempano.nodes.Root", "tosca.nodes.Root")
NET_HIERARCHY = ("tempano.nodes.lab.Network", "tosca.nodes.network.Network", "tosca.nodes.Root")
DEPENDS = ("tosca.relationships.DependsOn", "tosca.relationships.Root")


class SdnWorld:
    """Sites, networks and a link of one test deployment, sharing a ledger and secrets as the engine would."""

    def __init__(self, deployment: str, secrets: Mapping[str, str] | None = None) -> None:
        self.deployment = deployment
        self.ledger: list[Resource] = []
        self.secrets = dict(secrets or {})
        self.sites: dict[str, InstanceView] = {}
        self.networks: dict[str, InstanceView] = {}
        self.link: InstanceView | None = None

    def site(self, name: str, **properties: Any) -> InstanceView:
        view = instance(name, type=SITE_HIERARCHY[0], type_hierarchy=SITE_HIERARCHY, properties=properties)
        self.sites[name] = view
        return view

    def network(self, name: str, bridge: str, cidr: str | None = None) -> InstanceView:
        attributes = {"bridge": bridge, **({"cidr": cidr} if cidr else {})}
        view = instance(name, type=NET_HIERARCHY[0], type_hierarchy=NET_HIERARCHY, attributes=attributes)
        self.networks[name] = view
        return view

    def site_ctx(self, name: str, operation: str, inputs: Mapping[str, Any] | None = None) -> LocalContext:
        return LocalContext(
            self.sites[name],
            operation=operation,
            inputs=inputs,
            deployment_id=self.deployment,
            plugin="sdn",
            ledger=self.ledger,
            secrets=self.secrets,
        )

    def make_link(self, site_a: str, net_a: str, site_b: str, net_b: str, **properties: Any) -> InstanceView:
        self.link = instance("wan", type=LINK_HIERARCHY[0], type_hierarchy=LINK_HIERARCHY, properties=properties)
        self._rels = (
            Relationship("site_a", DEPENDS[0], DEPENDS, self.sites[site_a]),
            Relationship("site_b", DEPENDS[0], DEPENDS, self.sites[site_b]),
            Relationship("endpoint_a", DEPENDS[0], DEPENDS, self.networks[net_a]),
            Relationship("endpoint_b", DEPENDS[0], DEPENDS, self.networks[net_b]),
        )
        return self.link

    def link_ctx(self, operation: str, *, attempt: int = 1) -> LocalContext:
        assert self.link is not None
        return LocalContext(
            self.link,
            operation=operation,
            deployment_id=self.deployment,
            plugin="sdn",
            ledger=self.ledger,
            secrets=self.secrets,
            relationships=self._rels,
            attempt=attempt,
        )

    def link_resources(self) -> list[Resource]:
        assert self.link is not None
        return [r for r in self.ledger if r.node_instance_id == self.link.id]


@pytest.fixture
def world_factory() -> Any:
    return SdnWorld
