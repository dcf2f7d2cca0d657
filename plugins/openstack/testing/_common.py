"""Helpers shared by the emulated services: list filtering and pagination, tags."""

from __future__ import annotations

from typing import Any

from tempano.plugins.openstack.testing._http import Request

_NOT_FILTERS = {
    "limit",
    "marker",
    "fields",
    "sort_key",
    "sort_dir",
    "page_reverse",
    "all_tenants",
    "all_projects",
}


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return str(value).lower() in {w.lower() for w in wanted}
    if isinstance(value, list):
        return any(str(v) in wanted for v in value)
    return str(value) in wanted


def _tag_list(request: Request, name: str) -> list[str]:
    return [tag for value in request.query.get(name, []) for tag in value.split(",") if tag]


def filter_items(
    items: list[dict[str, Any]], request: Request, *, skip: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Equality filters on any attribute, Neutron/Nova tag filters, then marker/limit pagination."""
    result = []
    tags_all, tags_any = _tag_list(request, "tags"), _tag_list(request, "tags-any")
    not_tags, not_tags_any = _tag_list(request, "not-tags"), _tag_list(request, "not-tags-any")
    for item in items:
        tags = set(item.get("tags") or [])
        if tags_all and not set(tags_all) <= tags:
            continue
        if tags_any and not tags & set(tags_any):
            continue
        if not_tags and set(not_tags) <= tags:
            continue
        if not_tags_any and tags & set(not_tags_any):
            continue
        if all(
            key not in item or _matches(item[key], values)
            for key, values in request.query.items()
            if key not in _NOT_FILTERS | {"tags", "tags-any", "not-tags", "not-tags-any"} | skip
        ):
            result.append(item)
    marker = request.arg("marker")
    if marker:
        ids = [item["id"] for item in result]
        result = result[ids.index(marker) + 1 :] if marker in ids else []
    limit = request.arg("limit")
    if limit:
        result = result[: int(limit)]
    return result
