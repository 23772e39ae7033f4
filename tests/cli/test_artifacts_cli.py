"""``cicd artifacts`` through the real console script: list, download, refuse escapes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fabricate import Cicd, History, rows


def test_artifacts_list_text_shows_job_path_size_sha(cicd: Cicd, history: History) -> None:
    result = cicd("artifacts", "build#2")
    assert result.returncode == 0, result.stderr
    app_sha = hashlib.sha256(history.get("build#2").job("compile").artifacts["dist/app.bin"])
    assert rows(result.stdout) == [
        "job path size sha256",
        f"compile dist/app.bin 2.2 KiB {app_sha.hexdigest()[:12]}",
        f"compile dist/notes.txt 3 B {hashlib.sha256(b'v2' + bytes([10])).hexdigest()[:12]}",
        "2 artifacts, 2.3 KiB",
    ]


def test_artifacts_list_json_is_exact(cicd: Cicd, history: History) -> None:
    result = cicd("artifacts", "build#2", "--format", "json")
    assert result.returncode == 0, result.stderr
    stored = history.get("build#2").job("compile").artifacts
    expected = {
        "pipeline": "build",
        "run": 2,
        "artifacts": [
            {
                "job": "compile",
                "path": path,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for path, data in sorted(stored.items())
        ],
    }
    assert result.stdout == json.dumps(expected, indent=2) + "\n"


def test_artifacts_of_job_without_any_says_so(cicd: Cicd) -> None:
    result = cicd("artifacts", "build#2", "--job", "unit")
    assert (result.returncode, result.stdout) == (0, "no artifacts in build#2 job unit\n")


def test_artifacts_of_job_json_empty_list(cicd: Cicd) -> None:
    result = cicd("artifacts", "build#2", "-j", "unit", "--format", "json")
    assert json.loads(result.stdout) == {"pipeline": "build", "run": 2, "artifacts": []}


def test_artifacts_download_is_byte_identical(
    cicd: Cicd, history: History, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    result = cicd("artifacts", "build#2", "--download", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "compile/dist/app.bin (2.2 KiB)\n"
        "compile/dist/notes.txt (3 B)\n"
        f"downloaded 2 artifacts of build#2 to {target}\n"
    )
    for path, data in history.get("build#2").job("compile").artifacts.items():
        assert (target / "compile" / path).read_bytes() == data
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == ["compile/dist/app.bin", "compile/dist/notes.txt"]


def test_artifacts_download_one_job(cicd: Cicd, tmp_path: Path) -> None:
    result = cicd("artifacts", "build#2", "--job", "compile", "--download", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "compile" / "dist" / "notes.txt").read_bytes() == b"v2\n"


@pytest.mark.parametrize("path", ["../../escaped.txt", "/tmp/escaped.txt", "../unit/x.txt"])
def test_artifacts_download_refuses_path_outside_dir(
    cicd: Cicd, history: History, tmp_path: Path, path: str
) -> None:
    run = history.get("build#2")
    stored = history.home / "artifacts" / "evil"
    stored.write_bytes(b"evil")
    history.store.add_artifact(run.run_id, "compile", path, 4, hashlib.sha256(b"evil").hexdigest(),
                               str(stored))
    target = tmp_path / "out"
    result = cicd("artifacts", "build#2", "--download", str(target))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: artifact '{path}' of job 'compile' would be written outside "
        f"{target / 'compile'}: refused\n"
    )
    assert not target.exists() or not any(target.rglob("*"))  # refused before writing anything
    assert not (tmp_path / "escaped.txt").exists()


def test_artifacts_download_detects_changed_bytes(
    cicd: Cicd, history: History, tmp_path: Path
) -> None:
    run = history.get("build#2")
    stored = history.settings.artifacts_dir / str(run.run_id) / "compile" / "dist" / "notes.txt"
    stored.write_bytes(b"v3\n")
    result = cicd("artifacts", "build#2", "--download", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "artifact 'dist/notes.txt' of job 'compile' downloaded to" in result.stderr
    assert "does not match the recorded size and sha256" in result.stderr


def test_artifacts_download_with_format_is_usage_error(cicd: Cicd, tmp_path: Path) -> None:
    result = cicd("artifacts", "build#2", "--download", str(tmp_path), "--format", "json")
    assert (result.returncode, result.stderr) == (
        2,
        "error: --format lists artifacts; it cannot be used with --download\n",
    )


def test_artifacts_unknown_job_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("artifacts", "build#2", "--job", "nope")
    assert (result.returncode, result.stderr) == (1, "error: no job 'nope' in run 'build#2'\n")


def test_artifacts_unknown_run_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("artifacts", "docs#3")
    assert (result.returncode, result.stderr) == (1, "error: no run 'docs#3'\n")
