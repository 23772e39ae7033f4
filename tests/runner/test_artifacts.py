"""Artifact pattern matching, collection and download paths, on real files in tmp_path."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from backend.errors import NotFound
from backend.runner.artifacts import (
    ArtifactPatternError,
    CollectedFile,
    collect_artifacts,
    match_artifacts,
    safe_join,
)

FILES = {
    "README.md": "readme\n",
    ".env": "dot\n",
    "build/app": "binary\n",
    "build/lib/core.so": "so\n",
    "dist/pkg-1.0-py3-none-any.whl": "wheel\n",
    "dist/pkg-1.0.tar.gz": "sdist\n",
    "dist/sub/inner.whl": "inner\n",
    "reports/junit.xml": "top\n",
    "reports/unit/junit.xml": "unit\n",
    "reports/integ/deep/junit.xml": "deep\n",
    "reports/unit/other.xml": "other\n",
    "a1.log": "1\n",
    "a22.log": "22\n",
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def matched(ws: Path, *patterns: str) -> list[str]:
    """The files ``patterns`` match, asserting there were no warnings."""
    files, warnings = match_artifacts(ws, list(patterns))
    assert warnings == []
    return files


def test_match_artifacts_plain_file(ws: Path) -> None:
    assert matched(ws, "README.md") == ["README.md"]
    assert matched(ws, "./build/app") == ["build/app"]


def test_match_artifacts_plain_directory_takes_everything_under_it(ws: Path) -> None:
    assert matched(ws, "build") == ["build/app", "build/lib/core.so"]


def test_match_artifacts_trailing_slash_directory(ws: Path) -> None:
    assert matched(ws, "build/") == ["build/app", "build/lib/core.so"]


def test_match_artifacts_trailing_slash_on_file_matches_nothing(ws: Path) -> None:
    assert match_artifacts(ws, ["README.md/"]) == (
        [],
        ["artifact pattern 'README.md/' matched no files"],
    )


def test_match_artifacts_star_stays_in_one_segment(ws: Path) -> None:
    assert matched(ws, "dist/*.whl") == ["dist/pkg-1.0-py3-none-any.whl"]


def test_match_artifacts_star_matching_a_directory_takes_its_files(ws: Path) -> None:
    assert matched(ws, "dist/*") == [
        "dist/pkg-1.0-py3-none-any.whl",
        "dist/pkg-1.0.tar.gz",
        "dist/sub/inner.whl",
    ]


def test_match_artifacts_double_star_crosses_segments_including_zero(ws: Path) -> None:
    assert matched(ws, "reports/**/junit.xml") == [
        "reports/integ/deep/junit.xml",
        "reports/junit.xml",
        "reports/unit/junit.xml",
    ]


def test_match_artifacts_leading_and_trailing_double_star(ws: Path) -> None:
    assert matched(ws, "**/*.whl") == ["dist/pkg-1.0-py3-none-any.whl", "dist/sub/inner.whl"]
    assert matched(ws, "reports/**") == [
        "reports/integ/deep/junit.xml",
        "reports/junit.xml",
        "reports/unit/junit.xml",
        "reports/unit/other.xml",
    ]


def test_match_artifacts_question_mark_is_one_char(ws: Path) -> None:
    assert matched(ws, "a?.log") == ["a1.log"]


def test_match_artifacts_star_matches_dotfiles(ws: Path) -> None:
    assert ".env" in matched(ws, "*")


def test_match_artifacts_sorted_and_deduplicated(ws: Path) -> None:
    assert matched(ws, "dist/*.whl", "**/*.whl", "dist/pkg-1.0-py3-none-any.whl") == [
        "dist/pkg-1.0-py3-none-any.whl",
        "dist/sub/inner.whl",
    ]


def test_match_artifacts_unmatched_patterns_warn(ws: Path) -> None:
    assert match_artifacts(ws, ["README.md", "nope/", "*.exe", "missing.txt"]) == (
        ["README.md"],
        [
            "artifact pattern 'nope/' matched no files",
            "artifact pattern '*.exe' matched no files",
            "artifact pattern 'missing.txt' matched no files",
        ],
    )


@pytest.mark.parametrize("pattern", ["../secret", "/etc/passwd", "build/../../x", "a/../b"])
def test_match_artifacts_escaping_pattern_refused(ws: Path, pattern: str) -> None:
    with pytest.raises(ArtifactPatternError) as err:
        match_artifacts(ws, ["README.md", pattern])
    assert str(err.value) == f"artifact pattern '{pattern}' escapes the workspace"


def test_match_artifacts_symlink_out_of_workspace_not_followed(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (ws / "build" / "leak.txt").symlink_to(outside / "secret.txt")
    (ws / "build" / "leakdir").symlink_to(outside)
    files, warnings = match_artifacts(ws, ["build/", "build/leak.txt", "build/leakdir/secret.txt"])
    assert files == ["build/app", "build/lib/core.so"]
    assert warnings == [
        "artifact 'build/leakdir' is a symlink out of the workspace; skipped",
        "artifact 'build/leak.txt' is a symlink out of the workspace; skipped",
        "artifact pattern 'build/leak.txt' matched no files",
        "artifact pattern 'build/leakdir/secret.txt' matched no files",
    ]


def test_match_artifacts_symlink_inside_workspace_to_file_is_kept(ws: Path) -> None:
    (ws / "build" / "readme-link").symlink_to(ws / "README.md")
    assert "build/readme-link" in matched(ws, "build/")


def test_match_artifacts_symlinked_directory_not_descended(ws: Path) -> None:
    (ws / "alias").symlink_to(ws / "build")
    files, warnings = match_artifacts(ws, ["**/core.so", "alias/app"])
    assert files == ["build/lib/core.so"]
    assert warnings == ["artifact pattern 'alias/app' matched no files"]


def test_match_artifacts_skips_special_files(ws: Path) -> None:
    os.mkfifo(ws / "build" / "pipe")
    assert matched(ws, "build/") == ["build/app", "build/lib/core.so"]


def test_collect_artifacts_copies_byte_identical_with_sha256(ws: Path, tmp_path: Path) -> None:
    (ws / "build" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    (ws / "build" / "app").chmod(0o755)
    dest = tmp_path / "store"
    result = collect_artifacts(ws, ["build/", "nothing/"], dest)
    assert [f.path for f in result.files] == ["build/app", "build/big.bin", "build/lib/core.so"]
    for f in result.files:
        data = (ws / f.path).read_bytes()
        assert f == CollectedFile(
            f.path, len(data), hashlib.sha256(data).hexdigest(), dest / f.path
        )
        assert f.stored_path.read_bytes() == data
    assert os.access(dest / "build" / "app", os.X_OK)
    assert result.warnings == ["artifact pattern 'nothing/' matched no files"]


def test_collect_artifacts_escaping_pattern_refused(ws: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactPatternError):
        collect_artifacts(ws, ["../x"], tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_safe_join_returns_file_inside_root(ws: Path) -> None:
    assert safe_join(ws, "build/lib/core.so") == (ws / "build/lib/core.so").resolve()


@pytest.mark.parametrize(
    "relpath", ["../ws/README.md", "/etc/passwd", "build/../../x", "", "build", "missing", "a\0b"]
)
def test_safe_join_refuses_escapes_and_missing(ws: Path, relpath: str) -> None:
    with pytest.raises(NotFound) as err:
        safe_join(ws, relpath)
    assert str(err.value) == f"artifact '{relpath}' not found"


def test_safe_join_refuses_symlink_out_of_root(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    (ws / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(NotFound):
        safe_join(ws, "link")


def test_collect_artifacts_copies_drop_setuid_setgid_sticky_and_others_write(
    ws: Path, tmp_path: Path
) -> None:
    modes = {"suid": 0o4755, "sgid": 0o2711, "open": 0o1666, "private": 0o600}
    for name, mode in modes.items():
        (ws / name).write_bytes(b"#!/bin/sh\n")
        (ws / name).chmod(mode)
    dest = tmp_path / "store"
    result = collect_artifacts(ws, list(modes), dest)
    stored = {f.path: oct(stat.S_IMODE(f.stored_path.stat().st_mode)) for f in result.files}
    assert stored == {"suid": "0o755", "sgid": "0o755", "open": "0o644", "private": "0o644"}
