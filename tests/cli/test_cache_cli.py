"""``cicd cache list|clear`` through the console script, on a CICD_HOME with real caches."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from fabricate import Cicd, rows, run_cicd

from backend.cache_store import CacheStore


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A CICD_HOME with caches ``deps`` (restored once) and ``gems``."""
    home = tmp_path / "home"
    source = tmp_path / "ws"
    (source / "vendor").mkdir(parents=True)
    (source / "vendor" / "lib.py").write_text("x" * 3000)
    store = CacheStore(home / "cache")
    store.save(
        "deps", source, ["vendor/lib.py"], {"pipeline": "app", "run": "app#3", "job": "build"}
    )
    store.save("gems", source, ["vendor/lib.py"], {"pipeline": "app", "run": "app#4", "job": "t 1"})
    store.restore("deps", tmp_path / "ws")
    return home


@pytest.fixture
def cicd(home: Path) -> Cicd:
    """The real ``cicd`` console script on ``home``."""
    return run_cicd(home)


def test_cache_cli_list_table(cicd: Cicd, home: Path) -> None:
    done = cicd("cache", "list")
    assert done.returncode == 0, done.stderr
    size = (home / "cache" / CacheStore(home / "cache").archive("deps").name).stat().st_size
    shown = f"{size / 1024:.1f} KiB"
    ago = re.compile(r"\b\d+s ago\b")  # saved a moment before the command ran
    assert [ago.sub("Ns ago", line) for line in rows(done.stdout)] == [
        "KEY SIZE SAVED LAST USED SAVED BY",
        f"deps {shown} Ns ago Ns ago app#3 job build",
        f"gems {shown} Ns ago never app#4 job t 1",
        f"2 caches, {2 * size / 1024:.1f} KiB",
    ]


def test_cache_cli_list_json(cicd: Cicd, home: Path) -> None:
    done = cicd("cache", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    caches = json.loads(done.stdout)["caches"]
    assert [(c["key"], c["pipeline"], c["run"], c["job"]) for c in caches] == [
        ("deps", "app", "app#3", "build"),
        ("gems", "app", "app#4", "t 1"),
    ]
    assert caches[0]["last_used"] is not None and caches[1]["last_used"] is None
    assert caches[0]["size"] == CacheStore(home / "cache").archive("deps").stat().st_size


def test_cache_cli_clear_one_key_then_all(cicd: Cicd) -> None:
    done = cicd("cache", "clear", "deps")
    assert (done.returncode, done.stdout, done.stderr) == (0, "removed 1 cache\n", "")
    assert [c["key"] for c in json.loads(cicd("cache", "list", "--format", "json").stdout)[
        "caches"]] == ["gems"]  # fmt: skip
    done = cicd("cache", "clear")
    assert (done.returncode, done.stdout) == (0, "removed 1 cache\n")
    assert cicd("cache", "list").stdout == "no caches\n"


def test_cache_cli_clear_unknown_key_fails_one_line(cicd: Cicd, home: Path) -> None:
    done = cicd("cache", "clear", "../deps")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"error: no cache with key '../deps' in {home / 'cache'}\n"
    assert len(json.loads(cicd("cache", "list", "--format", "json").stdout)["caches"]) == 2


def test_cache_cli_list_hostile_key_is_plain_text(cicd: Cicd, home: Path) -> None:
    planted = CacheStore(home / "cache").archive("x")
    with tarfile.open(planted, "w", format=tarfile.PAX_FORMAT,
                      pax_headers={"cicd.key": "\x1b]0;owned\x07red\x1b[31m"}) as tar:  # fmt: skip
        tar.addfile(tarfile.TarInfo("f"), io.BytesIO(b""))
    done = cicd("cache", "list")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert any(line.startswith("red ") for line in rows(done.stdout))


def test_cache_cli_no_caches_yet(tmp_path: Path) -> None:
    cicd = run_cicd(tmp_path / "empty-home")
    assert cicd("cache", "list").stdout == "no caches\n"
    assert cicd("cache", "list", "--format", "json").stdout == '{\n  "caches": []\n}\n'
    done = cicd("cache", "clear")
    assert (done.returncode, done.stdout) == (0, "removed 0 caches\n")
    assert not (tmp_path / "empty-home" / "cache").exists()
