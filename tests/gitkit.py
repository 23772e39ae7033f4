"""Hostile git set-ups for the hardening tests: every trap writes a marker file if it ever runs.

``hostile_home`` is a HOME whose global config sets a file-system monitor, a hooks folder (every
hook), a smudge/clean/process filter for every path and a textconv, all writing markers;
``hostile_repo`` is a repository whose own config does the same, with ``.gitattributes``
routing every file through that filter. A repository served over HTTP with Basic auth
(``AuthGitServer``) records the credentials it was sent.
"""

from __future__ import annotations

import base64
import http.server
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
HOOKS = ("post-checkout", "reference-transaction", "pre-auto-gc", "post-index-change",
         "fsmonitor-watchman", "post-merge", "pre-commit")


def run_git(cwd: Path, *args: str, home: Path | None = None) -> str:
    """Run the test's own git (not the product's) in ``cwd``; its stripped stdout."""
    env = {**os.environ, **GIT_ENV}
    env["HOME"] = str(home) if home else env.get("HOME", "/")
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull  # the traps must not fire while the test sets them up
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def trap(path: Path, markers: Path, name: str) -> Path:
    """An executable at ``path`` that appends ``name`` to ``markers`` and swallows stdin."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho {name} >> "{markers}"\ncat >/dev/null 2>&1 || true\n')
    path.chmod(0o755)
    return path


def trap_config(root: Path, markers: Path) -> list[tuple[str, str]]:
    """Config entries (key, value) that run a trap: fsmonitor, hooks, filter, textconv, diff."""
    hooks = root / "hooks"
    for hook in HOOKS:
        trap(hooks / hook, markers, f"hook-{hook}")
    return [
        ("core.fsmonitor", str(trap(root / "fsmonitor", markers, "fsmonitor"))),
        ("core.hooksPath", str(hooks)),
        ("filter.evil.smudge", str(trap(root / "smudge", markers, "smudge"))),
        ("filter.evil.clean", str(trap(root / "clean", markers, "clean"))),
        ("filter.evil.required", "true"),
        ("filter.lfs.smudge", str(trap(root / "lfs", markers, "lfs"))),
        ("diff.evil.textconv", str(trap(root / "textconv", markers, "textconv"))),
        ("diff.external", str(trap(root / "external-diff", markers, "external-diff"))),
        ("core.pager", str(trap(root / "pager", markers, "pager"))),
        ("uploadpack.packObjectsHook", str(trap(root / "pack-objects", markers, "packobjects"))),
        ("core.alternateRefsCommand", str(trap(root / "alt-refs", markers, "alternate-refs"))),
    ]


def hostile_home(root: Path, markers: Path) -> Path:
    """A HOME whose ~/.gitconfig and ~/.config/git/attributes set every trap for every file."""
    home = root / "home"
    home.mkdir(parents=True)
    for key, value in trap_config(root / "global-traps", markers):
        run_git(root, "config", "--file", str(home / ".gitconfig"), key, value)
    attributes = home / ".config" / "git" / "attributes"
    attributes.parent.mkdir(parents=True)
    attributes.write_text("* filter=evil diff=evil\n")
    return home


@dataclass
class HostileRepo:
    """A repository whose own config sets every trap; ``commit`` holds a pipeline file."""

    path: Path
    commit: str


def hostile_repo(path: Path, markers: Path, files: dict[str, str]) -> HostileRepo:
    """Commit ``files`` plus a ``.gitattributes`` routing them through the trap filter, then set
    the traps in the repository's own config (after committing, so they fire only later)."""
    path.mkdir(parents=True)
    run_git(path, "init", "-q", "-b", "main")
    for name, text in {**files, ".gitattributes": "* filter=evil diff=evil\n"}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    run_git(path, "add", "-A")
    run_git(path, "commit", "-q", "-m", "hostile")
    for key, value in trap_config(path.parent / f"{path.name}-traps", markers):
        run_git(path, "config", key, value)
    for hook in HOOKS:  # in the default hooks folder too, should core.hooksPath be ignored
        trap(path / ".git" / "hooks" / hook, markers, f"hook-{hook}")
    (path / "README").write_text("changed, so a status would have to look\n")
    return HostileRepo(path, run_git(path, "rev-parse", "HEAD"))


def fired(markers: Path) -> list[str]:
    """The traps that ran."""
    return markers.read_text().split() if markers.exists() else []


@dataclass
class AuthGitServer:
    """A git repository served over plain HTTP (git's dumb protocol) behind Basic auth."""

    url: str  # http://127.0.0.1:PORT/repo.git, without credentials
    user: str
    password: str
    seen: list[str] = field(default_factory=list)  # Authorization headers received


@contextmanager
def auth_git_server(bare: Path, user: str, password: str) -> Iterator[AuthGitServer]:
    """Serve ``bare`` (a bare repository) as ``/repo.git``; 401 without the right credentials."""
    run_git(bare, "update-server-info")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(bare), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            header = self.headers.get("Authorization")
            if header:
                seen.append(header)
            if header != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.path = self.path.removeprefix("/repo.git")
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/repo.git"
        yield AuthGitServer(url, user, password, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def silent_git_daemon() -> Iterator[tuple[str, list[socket.socket]]]:
    """A git:// URL whose server accepts connections and never answers; the connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"git://127.0.0.1:{listener.getsockname()[1]}/repo.git", accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
