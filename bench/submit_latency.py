"""How fast a cicd server takes a run: submit accepted, and submit to the first job starting.

Starts a real ``cicd server`` (Docker runner, a temporary CICD_HOME, the local Prefect server it
starts or PREFECT_API_URL) on a free loopback port, then submits a one-job busybox pipeline N
times the way ``cicd run --server`` does (bundle + multipart POST) and follows each run's events:

    .venv/bin/python bench/submit_latency.py [--runs N] [--image cicd-busybox:latest]

Prints per run: bundle time, submit accepted (POST /runs answered 202), submit -> first
``job_started`` event, submit -> run finished; then the medians of the warm runs (all but the
first, which pays the server's first flow run).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from backend.remote import RemoteBackend  # noqa: E402
from backend.requests import prepare_run  # noqa: E402
from backend.source.bundles import make_bundle  # noqa: E402

CICD = REPO_ROOT / ".venv" / "bin" / "cicd"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def make_repo(path: Path, image: str) -> Path:
    """A one-commit repository with a one-job pipeline."""
    (path / ".pipelines").mkdir(parents=True)
    (path / ".pipelines" / "pipeline.yaml").write_text(
        f"pipeline:\n  name: latency\n  image: {image}\n"
        "jobs:\n  - name: hello\n    stage: build\n    script: [echo hello]\n"
    )
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env)
    return path


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(backend: RemoteBackend, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the server answers its health check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cicd server exited with status {proc.returncode}")
        try:
            if backend.health()["status"] == "ok":
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"cicd server not healthy within {timeout:.0f}s")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--image", default="cicd-busybox:latest")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cicd-bench-submit-"))
    port = free_port()
    env = {**os.environ, "CICD_HOME": str(work / "home")}
    env["CICD_API_TOKEN"] = token = secrets.token_urlsafe(32)  # every server requires one
    log = (work / "server.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(CICD), "server", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    backend = RemoteBackend(f"http://127.0.0.1:{port}", token=token)
    try:
        wait_healthy(backend, proc, 120)
        print(f"server healthy after {time.monotonic() - started:.2f}s (incl. its Prefect API)")
        repo = make_repo(work / "repo", options.image)
        print(f"{'run':>4} {'bundle':>8} {'accepted':>9} {'1st job':>8} {'finished':>9}")
        rows = []
        for index in range(options.runs):
            prepared = prepare_run(cwd=repo, repo=str(repo), cache_dir=work / "cache", force=True)
            t0 = time.perf_counter()
            bundle = make_bundle(prepared.source)
            t1 = time.perf_counter()
            reply = backend.submit(prepared, bundle)
            t2 = time.perf_counter()
            first_job = None
            for event in backend.events(reply["pipeline"], int(reply["run"])):
                if event.kind == "job_started" and first_job is None:
                    first_job = time.perf_counter()
            t3 = time.perf_counter()
            if first_job is None:
                raise SystemExit(f"{reply['name']}: no job started")
            row = (t1 - t0, t2 - t1, first_job - t1, t3 - t1)
            rows.append(row)
            print(f"{index + 1:>4} " + " ".join(f"{v * 1000:>7.0f}ms" for v in row))
        warm = rows[1:] or rows
        medians = [statistics.median(column) for column in zip(*warm, strict=True)]
        print(
            f"median of {len(warm)} warm runs: bundle {medians[0] * 1000:.0f} ms, "
            f"submit accepted {medians[1] * 1000:.0f} ms, "
            f"submit -> first job started {medians[2] * 1000:.0f} ms, "
            f"submit -> run finished {medians[3] * 1000:.0f} ms"
        )
    finally:
        backend.close()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        from flows.prefect_api import stop_local_server

        stop_local_server(work / "home")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
