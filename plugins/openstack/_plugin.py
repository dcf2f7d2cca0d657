"""The plugin object; operation modules register on it when imported by the package."""

from tempano.plugins.contract import Plugin

plugin = Plugin("openstack", "OpenStack servers, networks, storage and NFV placement through openstacksdk")
