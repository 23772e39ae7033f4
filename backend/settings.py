"""One typed settings object, read from ``CICD_*`` environment variables at the edge."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
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
    allowed_repos: str | None = Field(
        default=None,
        description="repository URLs a server may clone for a run: globs, comma- or "
        "space-separated (CICD_ALLOWED_REPOS); none: runs arrive as git bundles only",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="the secret GitLab (X-Gitlab-Token) and GitHub (X-Hub-Signature-256) "
        "webhooks prove they know (CICD_WEBHOOK_SECRET); none: the hook routes answer 404",
    )
    max_runs: int = Field(
        default_factory=lambda: max(2, os.cpu_count() or 2),
        ge=1,
        description="runs a server executes at once; more wait, queued (CICD_MAX_RUNS)",
    )
    max_queue: int = Field(
        default=100, ge=0, description="queued runs beyond max_runs before 429 (CICD_MAX_QUEUE)"
    )
    max_upload_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="largest git bundle a server accepts, in bytes (CICD_MAX_UPLOAD_BYTES)",
    )
    allowed_hosts: str | None = Field(
        default=None,
        description="extra names a server answers to in the Host header, comma- or space-separated"
        " (CICD_ALLOWED_HOSTS; '*' any); the bound address and, on loopback, localhost always",
    )
    max_followers: int = Field(
        default=64,
        ge=1,
        description="log and event streams a server serves at once (CICD_MAX_FOLLOWERS)",
    )
    pool: str | None = Field(
        default=None,
        description="the Prefect work pool a server hands submitted runs to (CICD_POOL, "
        "`cicd server --pool`); none: the server executes them itself",
    )
    worker_name: str | None = Field(
        default=None,
        description="how runs name the `cicd worker` that executed them (CICD_WORKER_NAME, "
        "`cicd worker --name`); default host/worker-PID",
    )
    worker_lease: float = Field(
        default=30.0,
        ge=5,
        le=3600,
        description="seconds a worker's run may go without a heartbeat before the server "
        "settles it FAILED (CICD_WORKER_LEASE); workers renew every lease/4",
    )
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
    def cache_dir(self) -> Path:
        """Where ``cache:`` archives are kept between runs (one machine's, not shared)."""
        return self.home / "cache"

    @property
    def debug_dir(self) -> Path:
        """Where failed jobs are kept for ``cicd debug`` (``backend.debugging``)."""
        return self.home / "debug"

    @property
    def workspaces_dir(self) -> Path:
        """Where each run's checkout lives while it runs."""
        return self.home / "workspaces"

    def ensure_home(self) -> Path:
        """Create ``home`` if needed, readable by its owner only (0700); return it.

        Logs, artifacts and the store under it may hold what jobs printed and collected.
        """
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.home.stat().st_uid == os.getuid():
            self.home.chmod(0o700)
        return self.home
