"""Which debug snapshots stay (``backend.debugging``): pure pruning, and the books on disk.

No Docker here: images are "removed" by a recording function.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.debugging import (
    RECORD,
    SnapshotRecord,
    find,
    load_all,
    prune,
    save,
    snapshot_id,
    target_for,
)

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def record(
    ident: str, pipeline: str = "demo", minutes: int = 0, keep: bool = False
) -> SnapshotRecord:
    """A snapshot taken ``minutes`` before NOW."""
    return SnapshotRecord(
        id=ident,
        pipeline=pipeline,
        run=1,
        job=ident,
        image=f"cicd-debug:{ident}",
        workdir="/workspace",
        taken_at=NOW - timedelta(minutes=minutes),
        keep=keep,
    )


def ids(records: list[SnapshotRecord]) -> list[str]:
    return sorted(r.id for r in records)


def test_prune_newer_failure_replaces_older_of_same_pipeline() -> None:
    old, other, new = record("old", minutes=5), record("other", "lib", minutes=9), record("new")

    assert ids(prune([old, other, new], new, NOW)) == ["old"]


def test_prune_late_older_snapshot_is_replaced_at_once() -> None:
    newer, late = record("newer", minutes=1), record("late", minutes=2)

    assert ids(prune([newer, late], late, NOW)) == ["late"]


def test_prune_keep_failed_snapshots_are_not_replaced() -> None:
    kept_a, kept_b = record("a", minutes=3, keep=True), record("b", minutes=2, keep=True)
    new = record("new")

    assert prune([kept_a, kept_b, new], new, NOW) == []
    assert prune([kept_a, kept_b], kept_b, NOW) == []


def test_prune_count_removes_the_oldest() -> None:
    many = [record(f"s{i:02}", pipeline=f"p{i}", minutes=i, keep=True) for i in range(25)]

    assert ids(prune(many, many[0], NOW, max_count=20)) == [f"s{i}" for i in range(20, 25)]


def test_prune_age_removes_snapshots_older_than_max_age() -> None:
    fresh = record("fresh", "a", minutes=60, keep=True)
    stale = record("stale", "b", minutes=8 * 24 * 60, keep=True)
    new = record("new", "c")

    assert ids(prune([fresh, stale, new], new, NOW, max_age=timedelta(days=7))) == ["stale"]


def test_snapshot_id_hostile_names_are_hex_and_distinct(tmp_path: Path) -> None:
    first = snapshot_id(tmp_path, "demo", 1, "../../x")
    second = snapshot_id(tmp_path, "demo", 1, "../../x ")
    target = target_for(tmp_path, "demo", 1, "../../x")

    assert first != second
    assert all(c in "0123456789abcdef" for c in first)
    assert target.directory == tmp_path / first
    assert target.image == f"cicd-debug:{first}"


def test_snapshot_id_other_home_differs(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"

    assert snapshot_id(first, "demo", 1, "j") != snapshot_id(second, "demo", 1, "j")


def _kept(debug_dir: Path, rec: SnapshotRecord) -> None:
    """What the runner leaves before ``save``: the folder with its workspace tar."""
    (debug_dir / rec.id).mkdir(parents=True)
    (debug_dir / rec.id / "workspace.tar").write_bytes(b"")


def test_save_replaces_older_snapshot_of_pipeline(tmp_path: Path) -> None:
    removed: list[str] = []
    first = record(snapshot_id(tmp_path, "demo", 1, "a"), minutes=5)
    second = record(snapshot_id(tmp_path, "demo", 2, "a"))
    _kept(tmp_path, first)
    save(tmp_path, first, removed.append, now=NOW)
    _kept(tmp_path, second)

    gone = save(tmp_path, second, removed.append, now=NOW)

    assert gone == [first]
    assert removed == [first.image]
    assert load_all(tmp_path) == [second]
    assert not (tmp_path / first.id).exists()
    assert (tmp_path / second.id / RECORD).is_file()


def test_find_without_workspace_copy_is_none(tmp_path: Path) -> None:
    rec = record(snapshot_id(tmp_path, "demo", 1, "a"))
    _kept(tmp_path, rec)
    save(tmp_path, rec, lambda image: None, now=NOW)

    assert find(tmp_path, "demo", 1, "a") == rec
    (tmp_path / rec.id / "workspace.tar").unlink()
    assert find(tmp_path, "demo", 1, "a") is None
    assert find(tmp_path, "demo", 2, "a") is None


class _FakeApi:
    """The parts of docker's low-level API ``take_snapshot`` uses, recording removals."""

    def __init__(self, archive_bytes: int) -> None:
        self.archive_bytes = archive_bytes
        self.removed: list[str] = []

    def inspect_image(self, image: str) -> dict[str, str]:
        from docker.errors import ImageNotFound

        raise ImageNotFound(image)

    def commit(self, container: str, **_options: object) -> dict[str, str]:
        return {"Id": "sha256:made"}

    def get_archive(self, container: str, path: str) -> tuple[object, dict[str, object]]:
        chunk = b"x" * (1024 * 1024)
        return (chunk for _ in range(self.archive_bytes // len(chunk))), {}

    def remove_image(self, image: str, force: bool = False) -> None:
        self.removed.append(image)


def test_take_snapshot_refuses_a_workspace_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from backend.runner import postmortem
    from backend.runner.base import SnapshotTarget

    monkeypatch.setattr(postmortem, "MAX_WORKSPACE_BYTES", 3 * 1024 * 1024)
    target = SnapshotTarget(image="cicd-debug:abc", directory=tmp_path / "snap")
    big = SimpleNamespace(api=_FakeApi(archive_bytes=8 * 1024 * 1024))

    with pytest.raises(OSError, match="its workspace is over"):
        postmortem.take_snapshot(big, "c1", target)  # type: ignore[arg-type]

    assert big.api.removed == ["sha256:made"]  # the committed image goes too
    assert list(target.directory.iterdir()) == []  # no tar, whole or partial
    small = SimpleNamespace(api=_FakeApi(archive_bytes=2 * 1024 * 1024))
    assert postmortem.take_snapshot(small, "c1", target) == "sha256:made"  # type: ignore[arg-type]
    assert (target.directory / postmortem.WORKSPACE_TAR).stat().st_size == 2 * 1024 * 1024
