"""The sdn plugin: WAN links between sites, through a driver per backend.

Drivers (a Site's ``driver`` property): ``linux`` (VXLAN between lab edge namespaces, bridged L2 or
routed L3), ``onos`` (ONOS VPLS over its REST API, L2) and ``ietf-l2vpn`` (RFC 8466 over RESTCONF, L2);
a driver refuses a service type it does not offer with a ConfigurationError. Operations::

    sdn.site.create / site.check / site.delete
    sdn.link.create / link.check / link.delete

The checks answer ``{"healthy": false, "reason": ...}`` (with the driver's ``state`` and ``problems``) when
the backend reports the site or link damaged; heal then re-creates it. A backend they cannot ask is an error.

Errors (the contract's)::

    PluginError
     ├── RetryableError           controller 5xx, timeouts, unreachable controller, failed `ip` command
     └── NonRetryableError
          ├── AuthenticationFailed controller refused the site's credentials (401/403)
          └── ConfigurationError   bad site/link properties, missing secret, controller 4xx
"""

from tempano.plugins.sdn import ietf_l2vpn, linux, onos  # noqa: F401  (register the drivers)
from tempano.plugins.sdn.driver import (
    Credentials,
    LinkEnd,
    LinkSpec,
    LinkState,
    LinkStatus,
    SdnDriver,
    SiteSpec,
    driver_names,
    make_driver,
    register_driver,
)
from tempano.plugins.sdn.operations import plugin

__all__ = [
    "Credentials",
    "LinkEnd",
    "LinkSpec",
    "LinkState",
    "LinkStatus",
    "SdnDriver",
    "SiteSpec",
    "driver_names",
    "make_driver",
    "plugin",
    "register_driver",
]
