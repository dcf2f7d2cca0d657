"""The lab VIM: real NFV on one Linux machine, without a cloud.

Servers are network namespaces with an sshd on a management address, networks are Linux bridges with IPAM,
ports are veth pairs, a router is a namespace that routes and NATs to the outside. Everything is named from
(deployment, node instance), adopted when it already exists, and removed without a trace.

Operations (implementation references ``lab.<name>``): ``server.create/start/stop/delete/check``,
``network.create/delete/check``, ``port.create/delete``, ``router.create/start/stop/delete/check``.
State files live under ``$TEMPANO_LAB_DIR`` (default ``/var/lib/tempano/lab``), one folder per deployment.
"""

from tempano.plugins.lab import network, port, router, server
from tempano.plugins.lab._plugin import plugin
from tempano.plugins.lab.cleanup import cleanup, leftovers

__all__ = ["cleanup", "leftovers", "network", "plugin", "port", "router", "server"]
