"""The ETSI NFV profile mapped onto tempano's deployable types.

NFV profile node types carry no operations: a VNFD says *what* (a VDU, its ports, networks, volumes), not how.
A node whose type derives from one of the types below is implemented by the mapped tempano type: it gets that
type's operations (its own type's and template's operations still win) and the plan names the mapped type in
``NodeSpec.implemented_by``. How NFV properties translate into the plugin's inputs (sw_image_data -> image,
virtual_compute -> flavor, ...) is the OpenStack plugin's part: see plugins/openstack/NFV_MAPPING.md.

Instance counts of a VDU come from its ``vdu_profile`` (min/max_number_of_instances) and, for the default,
from a ``tosca.policies.nfv.VduInitialDelta`` policy targeting it (else the minimum).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tempano.blueprints.plan import Instances

NFV_TYPE_MAPPING: dict[str, str] = {
    # ETSI SOL001 (tosca_simple_yaml_1_2/1_3 VNFDs)
    "tosca.nodes.nfv.Vdu.Compute": "tempano.nodes.openstack.Server",
    "tosca.nodes.nfv.VduCp": "tempano.nodes.openstack.Port",
    "tosca.nodes.nfv.VnfVirtualLink": "tempano.nodes.openstack.Network",
    "tosca.nodes.nfv.Vdu.VirtualBlockStorage": "tempano.nodes.openstack.Volume",
    # the older TOSCA NFV profile 1.0 (tosca_simple_profile_for_nfv_1_0_0, tacker's VNFDs)
    "tosca.nodes.nfv.VDU": "tempano.nodes.openstack.Server",
    "tosca.nodes.nfv.CP": "tempano.nodes.openstack.Port",
    "tosca.nodes.nfv.VL": "tempano.nodes.openstack.Network",
}
"""NFV profile type -> the tempano type that implements it. tosca.nodes.nfv.VNF has none: it is logical."""

INITIAL_DELTA = "tosca.policies.nfv.VduInitialDelta"


def implementing_type(chain: tuple[str, ...]) -> str | None:
    """The tempano type implementing a node whose type chain is ``chain`` (nearest mapping wins)."""
    for type_name in chain:
        mapped = NFV_TYPE_MAPPING.get(type_name)
        if mapped is not None:
            return mapped
    return None


def vdu_instances(properties: Mapping[str, Any], initial_delta: int | None) -> Instances | None:
    """Instance counts from ``vdu_profile`` and the initial delta, or None if the node declares none."""
    profile = properties.get("vdu_profile")
    if not isinstance(profile, Mapping):
        return None
    low = profile.get("min_number_of_instances")
    high = profile.get("max_number_of_instances")
    minimum = low if isinstance(low, int) and not isinstance(low, bool) and low >= 0 else 0
    maximum = high if isinstance(high, int) and not isinstance(high, bool) and high >= minimum else None
    default = initial_delta if initial_delta is not None else max(minimum, 1)
    if maximum is not None:
        default = min(default, maximum)
    return Instances(default=max(default, minimum), min=minimum, max=maximum)


def initial_deltas(policies: Any) -> dict[str, int]:
    """Node name -> number_of_instances of the VduInitialDelta policies targeting it."""
    found: dict[str, int] = {}
    if not isinstance(policies, list):
        return found
    for entry in policies:
        if not isinstance(entry, Mapping):
            continue
        for policy in entry.values():
            if not isinstance(policy, Mapping) or policy.get("type") != INITIAL_DELTA:
                continue
            props = policy.get("properties")
            delta = props.get("initial_delta") if isinstance(props, Mapping) else None
            count = delta.get("number_of_instances") if isinstance(delta, Mapping) else None
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                for target in policy.get("targets") or []:
                    found[str(target)] = count
    return found
