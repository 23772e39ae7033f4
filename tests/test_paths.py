"""Names never become paths: ``safe_child`` and the log and artifact paths built with it.

These hold even if validation were bypassed: whatever the name, the path is inside its folder,
and two different names never share one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.errors import UnsafePath
from backend.paths import safe_child, safe_name
from backend.recording import log_path

HOSTILE = [
    "..",
    ".",
    "../x",
    "../../../../etc/passwd",
    "/tmp/x",
    "/",
    "",
    "a/../../b",
    "\0",
    "x\n",
    "~",
    "$HOME",
    "C:\\Windows",
    "..\\..\\x",
    " ",
    "a" * 10_000,
]
names = st.one_of(
    st.sampled_from(HOSTILE), st.text(), st.text(alphabet="./\\ab\0\n~-_", max_size=30)
)


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


@settings(max_examples=300, deadline=None)
@given(name=names)
def test_safe_child_hostile_name_stays_a_direct_child(tmp_path_factory, name: str) -> None:
    root = tmp_path_factory.getbasetemp() / "root"
    child = safe_child(root, name, ".log")
    assert child.parent == root.resolve()
    assert child.name not in (".", "..") and not child.name.startswith(".")
    assert len(child.name) <= 255  # one valid file name, however long the job name


@settings(max_examples=300, deadline=None)
@given(pipeline=names, job=names, number=st.integers(min_value=1, max_value=10**9))
def test_log_path_hostile_names_resolve_inside_logs_dir(
    tmp_path_factory, pipeline: str, job: str, number: int
) -> None:
    logs = tmp_path_factory.getbasetemp() / "logs"
    assert _inside(logs, log_path(logs, pipeline, number, job))


@given(first=names, second=names)
def test_safe_name_distinct_names_never_share_a_path(first: str, second: str) -> None:
    if first != second:
        assert safe_name(first) != safe_name(second)


def test_safe_name_names_that_slug_alike_differ() -> None:
    assert safe_name("a/b").startswith("a_b-")
    assert safe_name("a b").startswith("a_b-")
    assert safe_name("a/b") != safe_name("a b")
    assert safe_name("Build").lower() != safe_name("build").lower()  # case-insensitive disks


def test_log_path_jobs_that_slug_alike_get_their_own_log(tmp_path: Path) -> None:
    assert log_path(tmp_path, "p", 1, "a/b") != log_path(tmp_path, "p", 1, "a b")


def test_safe_child_planted_symlink_out_of_root_raises(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / safe_name("job"))
    with pytest.raises(UnsafePath) as info:
        safe_child(root, "job")
    assert str(info.value) == f"path for 'job' resolves outside {root.resolve()}"
