"""The cache folder: archives per key, atomic replace, nothing read or written outside."""

from __future__ import annotations

import io
import multiprocessing
import os
import tarfile
import threading
from pathlib import Path

import pytest

from backend.cache_store import CacheStore, CacheTooBig

META = {"pipeline": "p", "run": "p#1", "job": "build"}


def _workspace(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cache_store_save_then_restore_same_files(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    source = _workspace(tmp_path / "a", {"deps/x.txt": "x", "deps/sub/y.txt": "y"})
    (source / "deps" / "run.sh").write_text("#!/bin/sh\n")
    (source / "deps" / "run.sh").chmod(0o4777)  # setuid, world-writable in the job's hands
    saved = store.save("k1", source, ["deps/x.txt", "deps/sub/y.txt", "deps/run.sh"], META)
    assert (saved.files, saved.bytes, saved.warnings) == (3, 12, [])

    dest = _workspace(tmp_path / "b", {"deps/x.txt": "old"})
    restored = store.restore("k1", dest)
    assert restored is not None and (restored.files, restored.warnings) == (3, [])
    assert (dest / "deps/x.txt").read_text() == "x"
    assert (dest / "deps/sub/y.txt").read_text() == "y"
    assert (dest / "deps/run.sh").stat().st_mode & 0o7777 == 0o755
    assert store.restore("other", dest) is None


def test_cache_store_hostile_keys_stay_in_folder(tmp_path: Path) -> None:
    root = tmp_path / "home" / "cache"
    store = CacheStore(root)
    source = _workspace(tmp_path / "ws", {"f": "1"})
    for key in ("../../escape", "/etc/passwd", "..", "a/b", "x\0y", "."):
        store.save(key, source, ["f"], META)
        assert store.archive(key).parent == root.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "ws"]
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["cache"]
    assert {e.key for e in store.entries()} == {"../../escape", "/etc/passwd", "..", "a/b",
                                                "x\0y", "."}  # fmt: skip


def test_cache_store_symlinks_kept_as_links_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "s").write_text("host secret 2")
    source = _workspace(tmp_path / "ws", {"deps/ok.txt": "ok"})
    (source / "deps" / "leak").symlink_to(secret)  # a venv's bin/python -> /usr/bin/python3
    (source / "deps" / "up").symlink_to("../../secret.txt")
    (source / "deps" / "inside").symlink_to("ok.txt")
    (source / "linkdir").symlink_to(tmp_path / "outdir")
    store = CacheStore(tmp_path / "cache")
    paths = ["deps/ok.txt", "deps/leak", "deps/up", "deps/inside", "linkdir", "linkdir/s"]
    saved = store.save("k", source, paths, META)
    assert (saved.files, saved.bytes) == (5, 2)
    assert saved.warnings == ["cache path 'linkdir/s' not saved: a symlink or a file is in the way"]
    with tarfile.open(store.archive("k")) as tar:
        members = {m.name: (m.type, m.linkname, m.size) for m in tar.getmembers()}
        data = b"".join(
            f.read()
            for m in tar.getmembers()
            if m.isreg() and (f := tar.extractfile(m)) is not None
        )
    assert members == {
        "deps/ok.txt": (tarfile.REGTYPE, "", 2),
        "deps/leak": (tarfile.SYMTYPE, str(secret), 0),
        "deps/up": (tarfile.SYMTYPE, "../../secret.txt", 0),
        "deps/inside": (tarfile.SYMTYPE, "ok.txt", 0),
        "linkdir": (tarfile.SYMTYPE, str(tmp_path / "outdir"), 0),
    }
    assert b"secret" not in data  # nothing was read through a link
    dest = _workspace(tmp_path / "b", {})
    restored = store.restore("k", dest)
    assert restored is not None and (restored.files, restored.warnings) == (5, [])
    assert os.readlink(dest / "deps/leak") == str(secret)
    assert (dest / "deps/inside").read_text() == "ok"
    assert secret.read_text() == "host secret"


def test_cache_store_restore_never_writes_through_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    source = _workspace(tmp_path / "a", {"lib/x": "cached", "victim": "cached", "d/f": "cached"})
    store = CacheStore(tmp_path / "cache")
    store.save("k", source, ["lib/x", "victim", "d/f"], META)
    dest = _workspace(tmp_path / "b", {"d/f/inner": "a directory where a file goes"})
    (dest / "lib").symlink_to(outside)  # a checkout may commit lib -> /etc
    (dest / "victim").symlink_to(outside / "victim")
    restored = store.restore("k", dest)
    assert restored is not None
    assert sorted(restored.warnings) == [
        "cache entry 'd/f' not restored: a directory is in its place",
        "cache entry 'lib/x' not restored: a symlink or a file is in the way",
    ]
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_text() == "untouched"
    assert not (dest / "victim").is_symlink() and (dest / "victim").read_text() == "cached"


def _hostile_archive(path: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT, pax_headers={"cicd.key": "k"}) as tar:
        for name, kind, link in (
            ("../escape", tarfile.REGTYPE, ""),
            ("/abs", tarfile.REGTYPE, ""),
            ("a/../../b", tarfile.REGTYPE, ""),
            ("out", tarfile.SYMTYPE, "../../outside"),
            ("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
            ("hard", tarfile.LNKTYPE, "/etc/passwd"),
            ("dev", tarfile.CHRTYPE, ""),
            ("good", tarfile.REGTYPE, ""),
        ):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            data = b"data" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_cache_store_hostile_archive_extracts_only_inside(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    archive = store.archive("k")
    _hostile_archive(archive)
    dest = _workspace(tmp_path / "deep" / "ws", {})
    restored = store.restore("k", dest)
    assert restored is not None and restored.files == 3  # good, and the two links as links
    assert restored.warnings == [
        f"cache entry '{name}' not restored: not a file inside the workspace"
        for name in ("../escape", "/abs", "a/../../b", "hard", "dev")
    ]
    assert sorted(p.name for p in dest.iterdir()) == ["abs-link", "good", "out"]
    assert os.readlink(dest / "out") == "../../outside" and (dest / "good").read_bytes() == b"data"
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["ws"]
    assert not (tmp_path / "escape").exists() and not (tmp_path / "outside").exists()


def test_cache_store_archive_link_then_file_below_it_not_written_through(tmp_path: Path) -> None:
    """An archive that plants ``lib -> OUTSIDE`` and then ``lib/x`` writes nothing outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    store = CacheStore(tmp_path / "cache")
    with tarfile.open(store.archive("k"), "w", format=tarfile.PAX_FORMAT) as tar:
        link = tarfile.TarInfo("lib")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        for name in ("lib/x", "lib"):  # a file below the link, then a file over the link
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    dest = _workspace(tmp_path / "ws", {})
    restored = store.restore("k", dest)
    assert restored is not None
    assert restored.warnings == [
        "cache entry 'lib/x' not restored: a symlink or a file is in the way"
    ]
    assert list(outside.iterdir()) == []
    assert not (dest / "lib").is_symlink() and (dest / "lib").read_bytes() == b"evil"


def test_cache_store_too_big_keeps_old_version(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    source = _workspace(tmp_path / "ws", {"a": "old"})
    store.save("k", source, ["a"], META)
    (source / "a").write_text("x" * 100)
    with pytest.raises(CacheTooBig, match=r"^its files pass 50 bytes$"):
        store.save("k", source, ["a"], META, max_bytes=50)
    assert sorted(p.name for p in store.root.iterdir()) == [store.archive("k").name]
    dest = _workspace(tmp_path / "b", {})
    store.restore("k", dest)
    assert (dest / "a").read_text() == "old"


def _save_version(root: str, source: str, version: int) -> None:
    store = CacheStore(Path(root))
    for _ in range(5):
        store.save("shared", Path(source), [f"f{i}" for i in range(20)], {"job": str(version)})


def _versions(tmp_path: Path, count: int) -> list[Path]:
    sources = []
    for version in range(count):
        files = {f"f{i}": f"v{version}-" * 2000 for i in range(20)}
        sources.append(_workspace(tmp_path / f"src{version}", files))
    return sources


def _assert_one_version(store: CacheStore, dest: Path, count: int) -> None:
    restored = store.restore("shared", dest)
    assert restored is not None and restored.files == 20 and restored.warnings == []
    contents = {(dest / f"f{i}").read_text() for i in range(20)}
    assert len(contents) == 1 and contents <= {f"v{v}-" * 2000 for v in range(count)}
    assert [e.key for e in store.entries()] == ["shared"]
    assert [p for p in store.root.iterdir() if p.name.startswith(".tmp-")] == []


class _Reader(threading.Thread):
    """Restores ``shared`` over and over while saves run; records whether each was one version."""

    def __init__(self, store: CacheStore, dest: Path) -> None:
        super().__init__()
        self.store, self.dest = store, dest
        self.stop = threading.Event()
        self.seen: list[bool] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        self.dest.mkdir(exist_ok=True)
        while not self.stop.is_set():
            try:
                result = self.store.restore("shared", self.dest)
            except BaseException as exc:  # a torn archive would raise here
                self.errors.append(exc)
                continue
            if result is not None:
                texts = {(self.dest / f"f{i}").read_text() for i in range(20)}
                self.seen.append(len(texts) == 1 and result.files == 20 and not result.warnings)


def test_cache_store_concurrent_saves_threads_one_version(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    sources = _versions(tmp_path, 4)
    reader = _Reader(store, tmp_path / "reader")
    threads = [
        threading.Thread(target=_save_version, args=(str(store.root), str(s), v))
        for v, s in enumerate(sources)
    ]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader.stop.set()
    reader.join()
    assert reader.errors == []
    assert reader.seen and all(reader.seen)
    _assert_one_version(store, _workspace(tmp_path / "final", {}), 4)


def test_cache_store_concurrent_saves_processes_one_version(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    store.root.mkdir()
    sources = _versions(tmp_path, 4)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_save_version, args=(str(store.root), str(s), v))
        for v, s in enumerate(sources)
    ]
    reader = _Reader(store, tmp_path / "reader")
    reader.start()
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    reader.stop.set()
    reader.join()
    assert reader.errors == []
    assert all(reader.seen)
    _assert_one_version(store, _workspace(tmp_path / "final", {}), 4)


def test_cache_store_list_and_clear(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    assert store.entries() == [] and store.clear() == 0
    source = _workspace(tmp_path / "ws", {"f": "12345"})
    store.save("b", source, ["f"], META)
    store.save("a", source, ["f"], {"pipeline": "q", "run": "q#2", "job": "j"})
    (store.root / ".tmp-left.tar").write_text("a crashed save")
    entries = store.entries()
    assert [(e.key, e.pipeline, e.run, e.job, e.last_used) for e in entries] == [
        ("a", "q", "q#2", "j", None),
        ("b", "p", "p#1", "build", None),
    ]
    assert entries[0].size == store.archive("a").stat().st_size
    store.restore("a", _workspace(tmp_path / "r", {}))
    assert store.entries()[0].last_used is not None
    assert store.clear("a") == 1 and store.clear("a") == 0
    assert [e.key for e in store.entries()] == ["b"]
    assert store.clear() == 1
    assert list(store.root.iterdir()) == []
