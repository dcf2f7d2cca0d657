"""tempano's settings: one class, read from TEMPANO_* environment variables (and a .env file if present)."""

from __future__ import annotations

import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN_FILE = "admin.token"
"""The bootstrap admin token's file in the data directory (written by the API, read by the CLI)."""


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tempano"


class Settings(BaseSettings):
    """Where tempano keeps its state and how its processes find each other."""

    model_config = SettingsConfigDict(env_prefix="TEMPANO_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL of the runtime store; default: SQLite in the data directory."""
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    task_queue: str = "tempano"
    api_host: str = "127.0.0.1"
    api_port: int = 8321
    api_workers: int = 1
    """API server processes (uvicorn workers)."""
    secret_key: str | None = None
    """Fernet key for secrets at rest; default: a key file generated in the data directory."""
    temporal_binary: str | None = None
    auth: bool = True
    """Require bearer tokens on the API (turn off only on a trusted, single-user machine)."""
    admin_token: str | None = None
    """An admin token to accept (at least 24 characters); default: one generated into <data dir>/admin.token."""
    token: str | None = None
    """The token the CLI sends (default: <data dir>/admin.token)."""
    api_base_url: str | None = None
    """Where the CLI finds the API (default: http://<api_host>:<api_port>)."""
    max_upload_bytes: int = 50 * 1024 * 1024
    """Largest blueprint upload the API accepts."""
    update_timeout: float = 60.0
    """How long the API waits for a worker to take an execution request before answering 503."""
    max_blueprint_bytes: int = 50 * 1024 * 1024
    """Largest total size of the files kept for one blueprint (a directory's or CSAR's whole tree)."""
    worker_threads: int = 64

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tempano.db'}"

    @property
    def blueprints_dir(self) -> Path:
        return self.data_dir / "blueprints"

    @property
    def api_url(self) -> str:
        return self.api_base_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def ui_url(self) -> str:
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    def find_temporal(self) -> str | None:
        """The temporal CLI: the configured path, the project's .tools/bin, then PATH."""
        for candidate in (self.temporal_binary, str(REPO_ROOT / ".tools" / "bin" / "temporal")):
            if candidate and Path(candidate).exists():
                return candidate
        return shutil.which("temporal")

    def cipher(self) -> Any:
        from cryptography.fernet import Fernet

        key = self.secret_key
        if not key:
            path = self.data_dir / "secret.key"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(Fernet.generate_key())
                path.chmod(0o600)
            key = path.read_text().strip()
        return Fernet(key.encode())

    @cached_property
    def store(self) -> Any:
        from tempano.store import Store

        store = Store(self.store_url, secret_cipher=self.cipher())
        store.create_schema()
        return store


def read_token_file(data_dir: Path) -> str | None:
    try:
        return (data_dir / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def execution_ui_link(settings: Settings, workflow_id: str) -> str:
    from urllib.parse import quote

    return f"{settings.ui_url}/namespaces/{settings.temporal_namespace}/workflows/{quote(workflow_id, safe='')}"


def deployment_ui_link(settings: Settings, deployment_id: str) -> str:
    """The Temporal web UI's list of a deployment's workflows (by the TempanoDeployment search attribute)."""
    from urllib.parse import quote

    query = quote(f'TempanoDeployment="{deployment_id}"', safe="")
    return f"{settings.ui_url}/namespaces/{settings.temporal_namespace}/workflows?query={query}"
