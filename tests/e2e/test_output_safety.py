"""What a job writes cannot leak a secret, drive the user's terminal or plant a setuid file.

Each test runs a real pipeline through the ``cicd`` console script, in real containers
(``cicd-busybox``, where jobs run as root), and looks at everything the run left: the live
output, ``cicd logs``, every file under ``CICD_HOME`` and the Prefect logs of the run.
"""

from __future__ import annotations

import os
import random
import re
import stat
import string
import textwrap
import time
from pathlib import Path

import pytest
from e2ekit import BUSYBOX, Project

from backend.runner.output import MAX_LINE_BYTES

pytestmark = pytest.mark.docker


def pipeline(text: str) -> dict[str, str | bytes]:
    """``text`` (dedented) as the default pipeline file."""
    return {".pipelines/pipeline.yaml": textwrap.dedent(text).lstrip("\n")}


def pieces_of(secret: str, size: int = 8) -> list[str]:
    """Every stretch of ``size`` characters of ``secret``: finding none means no half leaked."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def files_holding(root: Path, needles: list[str]) -> list[str]:
    """Files under ``root`` whose bytes contain any of ``needles``."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(needle.encode() in data for needle in needles):
            found.append(str(path.relative_to(root)))
    return found


def prefect_log_messages(marker: str, wanted: int) -> list[str]:
    """Messages of the session's Prefect logs that contain ``marker`` (waits for ``wanted``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTextSearch

    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(LogFilter(text=LogFilterTextSearch(query=marker)), limit=50)
            messages = [log.message for log in logs if marker in log.message]
            if len(messages) >= wanted or time.monotonic() > deadline:
                return messages
            time.sleep(0.5)


# -- item 5: a secret where a long line is cut --------------------------------------------------

STRADDLE = f"""
pipeline: {{name: straddle, image: {BUSYBOX}}}
jobs:
  - name: leak
    stage: build
    script: sh leak.sh
"""


def test_run_secret_straddling_long_line_cut_is_masked_everywhere(project: Project) -> None:
    secret = "".join(random.choice(string.ascii_uppercase) for _ in range(16))
    marker = f"straddle{random.randrange(10**9)}"
    # The secret's middle sits on the cut at MAX_LINE_BYTES; the newline comes a moment later,
    # so the reader has to cut the line while it is still arriving.
    before = MAX_LINE_BYTES - 8 - len(marker)
    script = (
        f"printf {marker}; head -c {before} /dev/zero | tr '\\000' x\n"
        'printf %s "$STRADDLE_TOKEN"; head -c 100 /dev/zero | tr "\\000" y\n'
        "sleep 1; echo\n"
    )
    project.commit({**pipeline(STRADDLE), "leak.sh": script})
    project.env["STRADDLE_TOKEN"] = secret

    out = project.run("--secret", "STRADDLE_TOKEN")
    assert out.returncode == 0, out.stdout + out.stderr
    logs = project.cicd("logs", "straddle#1", "--job", "leak", "--no-timestamps")
    assert logs.returncode == 0, logs.stderr

    halves = pieces_of(secret)
    whole = marker + "x" * before + "****" + "y" * 100
    # the pieces of the long line as each place shows them, joined again
    live = joined(job_output(out.stdout, "leak"))
    logged = joined(logs.stdout.splitlines())
    prefect = "".join(prefect_log_messages(marker, 1) + prefect_log_messages("yyyy", 1))
    assert [p for p in halves if p in out.stdout + out.stderr + logs.stdout + prefect] == []
    assert files_holding(project.home, halves) == []
    assert [describe(text) for text in (live, logged, prefect)] == [describe(whole)] * 3


def joined(lines: list[str]) -> str:
    """The lines that are pieces of the long line (not ``$ sh leak.sh`` etc.), joined."""
    return "".join(line for line in lines if re.fullmatch(r"[a-z0-9]*[x*y]+", line))


def describe(text: str) -> str:
    """A short account of a long line: its runs of one character (``x*65511``)."""
    return " ".join(f"{m.group(1)}*{len(m.group(0))}" for m in re.finditer(r"(.)\1*", text))


# -- item 14: escape sequences in job output ---------------------------------------------------

# What a hostile job prints: a clipboard write (OSC 52), a screen clear, a cursor move, a title
# change, an 8-bit CSI, a terminal reset and a carriage return, around visible text and a colour.
ESCAPES = (
    r"A\033]52;c;ZXZpbA==\007B\033[2JC\033[1;1HD\033]0;title\007E\302\23331mF"
    r"\033[31mred\033[0mG\033cH"
)
VISIBLE = "ABCDEFredGH"
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

ESCAPING = f"""
pipeline: {{name: escapes, image: {BUSYBOX}}}
jobs:
  - name: term
    stage: build
    script: sh term.sh
"""


def job_output(stdout: str, job: str) -> list[str]:
    """The text after ``job | `` on the lines of ``stdout`` (which may be coloured)."""
    found = []
    for line in stdout.splitlines():
        name, sep, text = _SGR.sub("", line).partition(" | ")
        if sep and name.strip() == job:
            found.append(text)
    return found


def test_run_job_escape_sequences_never_reach_terminal(project: Project) -> None:
    project.commit({**pipeline(ESCAPING), "term.sh": f"printf '{ESCAPES}\\n'\n"})
    project.env.pop("NO_COLOR")
    project.env["FORCE_COLOR"] = "1"  # colour on, as on a terminal

    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr
    coloured = project.cicd("logs", "escapes#1", "--no-timestamps")
    project.env.pop("FORCE_COLOR")
    project.env["NO_COLOR"] = "1"
    plain = project.cicd("logs", "escapes#1", "--job", "term", "--no-timestamps")

    for shown in (out.stdout, coloured.stdout):
        assert "\x1b[31mred" in shown  # the colour is kept
        left = _SGR.sub("", shown)  # and nothing else but text
        assert "\x1b" not in left
        assert _CONTROLS.findall(left) == []
        assert VISIBLE in job_output(shown, "term")
    assert plain.stdout.splitlines() == ["$ sh term.sh", VISIBLE]
    [log] = project.home.glob("logs/escapes*/1/term*.log")
    stored = log.read_text()
    assert "\x1b]52;c;ZXZpbA==\x07" in stored  # the log keeps what the job wrote


# -- item 9: artifact modes and a private CICD_HOME ------------------------------------------

MODES = f"""
pipeline: {{name: modes, image: {BUSYBOX}}}
jobs:
  - name: plant
    stage: build
    artifacts: [suid, sgid, open.txt, plain.txt]
    script:
      - cp /bin/busybox suid && chmod 4755 suid
      - cp /bin/busybox sgid && chmod 2755 sgid
      - echo data > open.txt && chmod 1666 open.txt
      - echo data > plain.txt && chmod 0600 plain.txt
      - ls -ln suid sgid open.txt plain.txt
"""


def test_run_artifacts_lose_setuid_setgid_and_home_is_private(project: Project) -> None:
    project.commit(pipeline(MODES))
    home = project.home / "fresh"  # not there yet: cicd makes it
    project.env["CICD_HOME"] = str(home)

    out = project.cicd("run")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "-rwsr-xr-x" in out.stdout and "-rwxr-sr-x" in out.stdout  # what the job made

    stored = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.glob("artifacts/*/plant*/*")}
    assert {name: oct(mode) for name, mode in stored.items()} == {
        "suid": "0o755",
        "sgid": "0o755",
        "open.txt": "0o644",
        "plain.txt": "0o644",
    }
    owners = {p.stat().st_uid for p in home.glob("artifacts/*/plant*/*")}
    assert owners == {os.getuid()}
    assert oct(stat.S_IMODE(home.stat().st_mode)) == "0o700"
    assert oct(stat.S_IMODE((home / "cicd.db").stat().st_mode)) == "0o600"
    logs = [p for p in home.glob("logs/**/*") if p.is_file()]
    assert logs, "the run wrote no job log"
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in logs} == {"0o600"}
