"""The sdn plugin (being built)."""

from tempano.plugins.contract import Plugin

plugin = Plugin("sdn")
