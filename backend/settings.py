"""One typed settings object, read from ``CICD_*`` environment variables at the edge."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cicd"


class Settings(BaseSettings):
    """Configuration of one cicd process. Build it once (``Settings()``) and pass it down."""

    model_config = SettingsConfigDict(env_prefix="CICD_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home, description="data: store, logs, artifacts, workspaces"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite under home"
    )
    server: str | None = Field(
        default=None, description="submit to this cicd server instead of running embedded"
    )
    api_token: str | None = Field(default=None, description="bearer token the API requires")
    debug: bool = False

    @property
    def store_url(self) -> str:
        """The history store's SQLAlchemy URL."""
        return self.database_url or f"sqlite:///{self.home / 'cicd.db'}"

    @property
    def logs_dir(self) -> Path:
        """Where each job's log file lives."""
        return self.home / "logs"

    @property
    def artifacts_dir(self) -> Path:
        """Where collected artifacts are kept."""
        return self.home / "artifacts"

    @property
    def workspaces_dir(self) -> Path:
        """Where each run's checkout lives while it runs."""
        return self.home / "workspaces"
