"""docker-compose.yml parses, and its services' environment agrees with tempano's settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from tempano.api.settings import Settings
from tempano.api.up import SEARCH_ATTRIBUTES

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def test_compose_services_and_settings_agree() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"postgresql", "temporal", "temporal-ui", "api", "worker"} <= set(services)
    known = {f"TEMPANO_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "worker"):
        env = services[name]["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables tempano does not read: {unknown}"
        settings = Settings(**{k.removeprefix("TEMPANO_").lower(): v for k, v in env.items() if "SECRET" not in k})
        host, port = settings.temporal_address.split(":")
        assert host in services and port == "7233"
        assert settings.store_url.startswith("postgresql+psycopg://")
        assert settings.database_url is not None and "@postgresql:5432/" in settings.database_url
    api_port = services["api"]["environment"]["TEMPANO_API_PORT"]
    assert f"{api_port}:{api_port}" in services["api"]["ports"]
    registered = services["temporal-admin-tools"]["entrypoint"][-1]
    for attribute in SEARCH_ATTRIBUTES:
        assert attribute in registered
