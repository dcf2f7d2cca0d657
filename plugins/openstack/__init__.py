"""The OpenStack plugin: servers, networks, storage and NFV placement on any cloud of clouds.yaml.

Operations (``openstack.<name>`` in TOSCA): server.create/start/stop/delete/check, keypair.create/delete,
server_group.create/delete, volume.create/delete, volume.attach/detach (relationship), network.*, subnet.*,
port.*,
router.*, floating_ip.*, security_group.* (create/delete each). Errors follow ``_errors`` (module docstring);
:mod:`tempano.plugins.openstack.testing` is the emulator the tests run against.
"""

from tempano.plugins.openstack import compute, network, storage
from tempano.plugins.openstack._connection import forget_connections
from tempano.plugins.openstack._plugin import plugin

__all__ = ["compute", "forget_connections", "network", "plugin", "storage"]
