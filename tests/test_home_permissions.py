"""CICD_HOME and the SQLite store in it are private to the user who runs cicd.

Jobs' logs, artifacts (which may be setuid files a job made as root, see
tests/e2e/test_output_safety.py) and checkouts live under CICD_HOME: nobody else may reach them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from backend.store import Store

CICD = Path(sys.executable).with_name("cicd")


def mode(path: Path) -> str:
    """``path``'s permission bits, as ``0o700``."""
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_cli_fresh_home_is_private(tmp_path: Path) -> None:
    home = tmp_path / "data" / "cicd"  # neither folder there yet
    env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
    env.update(CICD_HOME=str(home), PREFECT_API_URL="http://127.0.0.1:9/api")
    result = subprocess.run(
        [str(CICD), "report"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (mode(home), mode(home / "cicd.db")) == ("0o700", "0o600")


def test_cli_existing_home_made_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
    env.update(CICD_HOME=str(home), PREFECT_API_URL="http://127.0.0.1:9/api")
    result = subprocess.run(
        [str(CICD), "report"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert mode(home) == "0o700"


def test_store_new_sqlite_file_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "new" / "store.db"
    with Store(f"sqlite:///{database}") as store:
        assert store.list_pipelines().pipelines == []
    assert (mode(database), mode(database.parent)) == ("0o600", "0o700")
    wal = database.with_name("store.db-wal")
    if wal.exists():  # SQLite gives the write-ahead log the database file's mode
        assert mode(wal) == "0o600"


def test_store_existing_sqlite_file_keeps_its_mode(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    with Store(f"sqlite:///{database}"):
        pass
    database.chmod(0o640)  # made shareable on purpose by its owner
    with Store(f"sqlite:///{database}"):
        pass
    assert mode(database) == "0o640"
