"""Which workspace entries ``cache:paths`` name: the artifact syntax, symlinks kept as links."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.cache_paths import match_cache_paths
from backend.runner.artifacts import ArtifactPatternError


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with a virtualenv-like folder, dotfiles, and links in and out."""
    root = tmp_path / "ws"
    for rel in ("venv/lib/site.py", "venv/pyvenv.cfg", ".cache/pip/a.whl", "src/m.py",
                "src/sub/n.py", "README"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "venv" / "bin").mkdir()
    (root / "venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    (root / "venv" / "lib64").symlink_to("lib")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_text("host")
    (root / "out").symlink_to(tmp_path / "outside")
    return root


def test_cache_paths_folder_keeps_links_as_entries(ws: Path) -> None:
    assert match_cache_paths(ws, ["venv/"]) == (
        ["venv/bin/python", "venv/lib/site.py", "venv/lib64", "venv/pyvenv.cfg"],
        [],
    )
    assert match_cache_paths(ws, ["venv"])[0] == match_cache_paths(ws, ["venv/"])[0]


def test_cache_paths_globs_as_artifacts(ws: Path) -> None:
    assert match_cache_paths(ws, ["src/*.py"])[0] == ["src/m.py"]
    assert match_cache_paths(ws, ["src/**/*.py"])[0] == ["src/m.py", "src/sub/n.py"]
    assert match_cache_paths(ws, ["*/pip"])[0] == [".cache/pip/a.whl"]  # * matches dotfiles
    assert match_cache_paths(ws, ["ven?/bin/*"])[0] == ["venv/bin/python"]


def test_cache_paths_symlinked_folder_is_the_link_never_entered(ws: Path) -> None:
    assert match_cache_paths(ws, ["out"]) == (["out"], [])
    assert match_cache_paths(ws, ["out/"]) == ([], ["cache pattern 'out/' matched no files"])
    assert match_cache_paths(ws, ["out/x"]) == ([], ["cache pattern 'out/x' matched no files"])
    assert match_cache_paths(ws, ["out/*"]) == ([], ["cache pattern 'out/*' matched no files"])


@pytest.mark.parametrize("pattern", ["/etc", "../x", "a/../../x", "venv/\0"])
def test_cache_paths_refuses_patterns_outside(ws: Path, pattern: str) -> None:
    with pytest.raises(ArtifactPatternError, match="escapes the workspace"):
        match_cache_paths(ws, [pattern])


def test_cache_paths_untracked_adds_what_the_commit_lacks(ws: Path) -> None:
    tracked = frozenset({"README", "src/m.py", "src/sub/n.py"})
    assert match_cache_paths(ws, [], tracked)[0] == [
        ".cache/pip/a.whl",
        "out",
        "venv/bin/python",
        "venv/lib/site.py",
        "venv/lib64",
        "venv/pyvenv.cfg",
    ]
