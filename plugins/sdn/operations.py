"""The sdn plugin's operations: ``site.create/delete/check`` and ``link.create/delete/check``.

Sites and links read their backend from the site's ``driver`` property; a link's two sites must use
the same driver (and, for controller drivers, the same controller). Credentials come from the secret
named by the site's ``credentials_secret`` property, never from properties themselves.

The checks answer ``healthy: false`` with a reason when the backend says the site or link is damaged (an
answer heal acts on, not an error); a backend they cannot ask (controller down, credentials refused) is an
error, because then nobody knows whether the link works.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from tempano.plugins.contract import (
    ConfigurationError,
    InstanceView,
    OperationContext,
    Plugin,
    Resource,
    unhealthy,
)
from tempano.plugins.sdn.driver import (
    Credentials,
    LinkEnd,
    LinkSpec,
    LinkStatus,
    SdnDriver,
    SiteSpec,
    make_driver,
)

plugin = Plugin("sdn", "WAN links between sites: Linux VXLAN in the lab, ONOS VPLS, IETF L2VPN (RFC 8466)")

SITE_TYPE = "tempano.nodes.sdn.Site"
NETWORK_ATTRIBUTES = ("bridge", "bridge_name", "network_id", "resource_id")
"""Where a link looks for its endpoint network's backend name, in this order (then ``network_name``)."""


def site_spec(view: InstanceView, inputs: Mapping[str, Any] | None = None) -> SiteSpec:
    """A Site node instance as the drivers see it.

    Each setting comes from the site's property, else from site.create's input of the same name (where a
    blueprint passes run-time values, e.g. ``get_attribute`` of the lab edge router's namespace), else from
    the attribute site.create stored (so link and check operations see what create saw).
    """
    props: Mapping[str, Any] = view.properties
    given: Mapping[str, Any] = inputs or {}

    def opt(name: str) -> str | None:
        for source in (props, given, view.attributes):
            value = source.get(name)
            if value not in (None, ""):
                return str(value)
        return None

    driver = opt("driver")
    if driver is None:
        raise ConfigurationError(f"site {view.id!r} has no driver property; set it to linux, onos or ietf-l2vpn")
    return SiteSpec(
        name=view.id,
        driver=driver,
        controller_url=opt("controller_url"),
        credentials_secret=opt("credentials_secret"),
        underlay_address=opt("underlay_address"),
        edge_namespace=opt("edge_namespace"),
        attachment_point=opt("attachment_point"),
        site_id=opt("site_id"),
        site_id_given=props.get("site_id") not in (None, "") or given.get("site_id") not in (None, ""),
    )


def credentials(ctx: OperationContext, site: SiteSpec) -> Credentials | None:
    if site.credentials_secret is None:
        return None
    try:
        return Credentials.parse(site.credentials_secret, ctx.get_secret(site.credentials_secret))
    except LookupError:  # the store's NotFound in the engine, KeyError in LocalContext
        raise ConfigurationError(
            f"site {site.name!r} names credentials secret {site.credentials_secret!r}, which is not in "
            "tempano's secret store; add it (value `user:password` or a bearer token)"
        ) from None


@contextmanager
def driver_for(ctx: OperationContext, site: SiteSpec) -> Iterator[SdnDriver]:
    driver = make_driver(site, credentials(ctx, site))
    driver.logger = ctx.logger
    try:
        yield driver
    finally:
        driver.close()


def _relationship_target(ctx: OperationContext, requirement: str) -> InstanceView:
    for rel in ctx.relationships:
        if rel.name == requirement:
            return rel.target
    raise ConfigurationError(
        f"link {ctx.instance.id!r} has no {requirement!r} requirement filled; a WanLink needs "
        "site_a, site_b, endpoint_a and endpoint_b"
    )


def _network_name(link_id: str, view: InstanceView) -> str:
    for name in NETWORK_ATTRIBUTES:
        if view.attributes.get(name):
            return str(view.attributes[name])
    if view.properties.get("network_name"):
        return str(view.properties["network_name"])
    raise ConfigurationError(
        f"link {link_id!r}: endpoint network {view.id!r} exposes none of the attributes "
        f"{', '.join(NETWORK_ATTRIBUTES)} nor a network_name property; is it created yet?"
    )


def link_spec(ctx: OperationContext) -> LinkSpec:
    """The link this operation runs on, with both ends resolved from its relationships."""
    props = ctx.properties
    ends = []
    for side in "ab":
        site_view = _relationship_target(ctx, f"site_{side}")
        if not site_view.is_a(SITE_TYPE):
            raise ConfigurationError(
                f"link {ctx.instance.id!r}: site_{side} targets {site_view.id!r} of type {site_view.type}, "
                f"not a {SITE_TYPE}"
            )
        network_view = _relationship_target(ctx, f"endpoint_{side}")
        cidr = network_view.attributes.get("cidr") or network_view.properties.get("cidr")
        gateway = props.get(f"gateway_{side}")
        ends.append(
            LinkEnd(
                site_spec(site_view),
                _network_name(ctx.instance.id, network_view),
                cidr=str(cidr) if cidr else None,
                gateway=str(gateway) if gateway else None,
            )
        )
    a, b = ends
    if a.site.driver != b.site.driver or a.site.controller_url != b.site.controller_url:
        raise ConfigurationError(
            f"link {ctx.instance.id!r} joins site {a.site.name!r} ({a.site.driver} "
            f"{a.site.controller_url or ''}) and site {b.site.name!r} ({b.site.driver} "
            f"{b.site.controller_url or ''}); both sites of a link must use the same driver and controller"
        )
    service_type = str(props.get("service_type", "L2"))
    if service_type not in ("L2", "L3"):
        raise ConfigurationError(f"link {ctx.instance.id!r}: service_type must be L2 or L3, not {service_type!r}")
    # Deletes and checks run under their own idempotency keys: the objects are named from create's key.
    key = str(ctx.attributes.get("link_key") or ctx.idempotency_key)
    return LinkSpec(
        key=key,
        name=ctx.instance.id,
        a=a,
        b=b,
        service_type="L2" if service_type == "L2" else "L3",
        bandwidth_mbps=_opt_int(props.get("bandwidth_mbps")),
        vlan_id=_opt_int(props.get("vlan_id")),
        vni=_opt_int(props.get("vni")),
    )


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _recorder(ctx: OperationContext, extra: Mapping[str, Any]) -> Any:
    def record(kind: str, resource_id: str, data: Mapping[str, Any]) -> None:
        ctx.record_resource(kind, resource_id, {**extra, **data})
        ctx.heartbeat({"resource": resource_id})

    return record


def _unhealthy(kind: Literal["site", "link"], name: str, status: LinkStatus) -> dict[str, Any]:
    """A check's answer for a site or link the backend reports damaged: what is wrong, where (the problems name
    the interface, VPLS or controller), and what heal will do; the engine records the reason in the history."""
    problems = "; ".join(status.problems) or "the driver gave no details"
    return unhealthy(
        f"{kind} {name!r} is {status.state.value}: {problems}; heal re-creates the {kind}",
        state=status.state.value,
        problems=list(status.problems),
    )


def _delete_ledger(ctx: OperationContext, site: SiteSpec, what: str) -> list[str]:
    removed: list[str] = []
    resources: list[Resource] = [r for r in reversed(ctx.resources()) if not r.external]
    if not resources:
        return removed
    with driver_for(ctx, site) as driver:
        for resource in resources:
            if ctx.cancelled.is_set():
                ctx.log(
                    "%s %s: delete cancelled, %d resources left", what, ctx.instance.id, len(resources) - len(removed)
                )
                break
            driver.disconnect(resource)
            ctx.forget_resource(resource.kind, resource.resource_id)
            removed.append(resource.resource_id)
            ctx.heartbeat({"removed": removed})
    return removed


# -- sites -----------------------------------------------------------------------------------------


@plugin.operation("site.create")
def create_site(ctx: OperationContext) -> dict[str, Any]:
    """Validate the site's backend (edge namespace, controller, credentials) and make what it needs."""
    site = dataclasses.replace(site_spec(ctx.instance, ctx.inputs), key=ctx.idempotency_key)
    if not site.key:
        raise ConfigurationError(f"site {site.name!r}: the engine gave site.create no idempotency key")
    with driver_for(ctx, site) as driver:
        attributes = {
            "driver": site.driver,
            **driver.prepare_site(site, _recorder(ctx, {"driver": site.driver})),
        }
    for name, value in attributes.items():
        ctx.set_attribute(name, value)
    ctx.log("site %s ready on %s driver", site.name, site.driver)
    return attributes


@plugin.operation("site.check")
def check_site(ctx: OperationContext) -> dict[str, Any]:
    """Health check: ``healthy: false`` with the reason when the site's backend is not usable."""
    site = site_spec(ctx.instance)
    with driver_for(ctx, site) as driver:
        status = driver.check_site(site)
    if not status.ok:
        return _unhealthy("site", site.name, status)
    return {"healthy": True}


@plugin.operation("site.delete")
def delete_site(ctx: OperationContext) -> dict[str, Any]:
    """Remove what site.create made (nothing for most drivers)."""
    removed = _delete_ledger(ctx, site_spec(ctx.instance), "site")
    return {"removed": removed}


# -- links -----------------------------------------------------------------------------------------


@plugin.operation("link.create")
def create_link(ctx: OperationContext) -> dict[str, Any]:
    """Create (or adopt, or repair) the WAN link between the two endpoint networks."""
    link = link_spec(ctx)
    ctx.set_attribute("link_key", link.key)
    with driver_for(ctx, link.a.site) as driver:
        attributes = driver.connect(link, _recorder(ctx, {"driver": link.a.site.driver, "link_key": link.key}))
    for name, value in attributes.items():
        ctx.set_attribute(name, value)
    ctx.log("link %s up between %s and %s", link.name, link.a.site.name, link.b.site.name)
    return attributes


@plugin.operation("link.check")
def check_link(ctx: OperationContext) -> dict[str, Any]:
    """Health check: ``healthy: false`` with the reason when the link is missing or damaged on the backend."""
    link = link_spec(ctx)
    with driver_for(ctx, link.a.site) as driver:
        status = driver.status(link)
    if not status.ok:
        return _unhealthy("link", link.name, status)
    return {"healthy": True, **status.details}


@plugin.operation("link.delete")
def delete_link(ctx: OperationContext) -> dict[str, Any]:
    """Remove exactly what the ledger says the link made; a second call finds nothing to do."""
    # The site's driver settings come from the relationship; the ledger holds everything else.
    site = site_spec(_relationship_target(ctx, "site_a"))
    removed = _delete_ledger(ctx, site, "link")
    return {"removed": removed}
