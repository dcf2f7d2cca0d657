"""An OpenStack emulator for tests: Keystone v3, Nova, Neutron, Glance and Cinder over local HTTP, with
faults.

The real openstacksdk talks to it unmodified through a clouds.yaml (:func:`write_clouds_yaml`). Fault injection
(:class:`Faults`, changed at any time through ``emulator.faults``): a rate of 500/503 answers, some sent after the
call took effect; added latency; servers that go to ERROR or never leave BUILD; volumes that go to error when
attached (Nova keeping the attachment or not), or go to error or stay detaching when detached; quota limits per
resource kind, refused the way each service does (Nova 403, Neutron 409 OverQuota, Cinder 413). Discovery and
authentication are never faulted, so a failure always lands on a resource call.
"""

from tempano.plugins.openstack.testing._emulator import OpenStackEmulator, write_clouds_yaml
from tempano.plugins.openstack.testing._state import KINDS, Faults

__all__ = ["KINDS", "Faults", "OpenStackEmulator", "write_clouds_yaml"]
