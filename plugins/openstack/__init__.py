"""The openstack plugin (being built)."""

from tempano.plugins.contract import Plugin

plugin = Plugin("openstack")
