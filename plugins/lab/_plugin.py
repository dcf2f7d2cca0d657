"""The ``lab`` plugin object; operation modules register on it (kept apart to avoid import cycles)."""

from tempano.plugins.contract import Plugin

plugin = Plugin("lab", "a local VIM made of network namespaces, Linux bridges, veth pairs and sshd")
