"""``cicd run`` end to end: the real console script, a real git repository, real containers.

One successful run (``happy``) is made once for the module and looked at from several sides;
every other behaviour gets its own small pipeline. Outcomes come from the exit status, the
live output and ``cicd report --format json``; times only from the report's recorded times.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from e2ekit import BUSYBOX, Output, Project, jobs, stages, when

pytestmark = pytest.mark.docker


def pipeline(text: str) -> dict[str, str | bytes]:
    """``text`` (dedented) as the default pipeline file."""
    return {".pipelines/pipeline.yaml": textwrap.dedent(text).lstrip("\n")}


# -- one successful run, looked at from every side --------------------------------------------

DATA = bytes(range(256)) * 40 + b"\x00\xff end"  # binary, not valid UTF-8

HAPPY = f"""
pipeline:
  name: happy
  stages: [build, test]
  image: {BUSYBOX}
  variables: {{SHARED: from-pipeline, OVERRIDDEN: from-pipeline}}
jobs:
  - name: env
    stage: build
    variables: {{OVERRIDDEN: from-job, OWN: job-only}}
    script:
      - env | grep -E '^(CI|CICD_[A-Z]+|SHARED|OVERRIDDEN|OWN)=' | sort | sed 's/^/ENV /'
  - name: produce
    stage: build
    artifacts: [dist/]
    script:
      - mkdir -p dist
      - cp data.bin dist/data.bin
      - echo "made by $CICD_JOB" > dist/note.txt
      - echo from-build > handoff.txt
  - name: consume
    stage: test
    script:
      - echo "HANDOFF=$(cat handoff.txt)"
      - echo "COMMITTED=$(cat committed.txt)"
      - if [ -e dirty.txt ]; then echo DIRTY=present; else echo DIRTY=absent; fi
"""


class Happy:
    """The module's successful run: its project, commit, output and report."""

    def __init__(self, project: Project, commit: str, out: Output, report: dict[str, Any]):
        self.project = project
        self.commit = commit
        self.out = out
        self.report = report


@pytest.fixture(scope="module")
def happy(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Happy:
    """``happy#1``: committed files, then an edited and an untracked file left uncommitted."""
    project = Project.create(tmp_path_factory.mktemp("happy"))
    commit = project.commit(
        {**pipeline(HAPPY), "data.bin": DATA, "committed.txt": "as committed\n"}
    )
    project.write({"committed.txt": "edited, not committed\n", "dirty.txt": "untracked\n"})
    out = project.run()
    return Happy(project, commit, out, project.report("happy", 1))


@pytest.mark.docker
def test_run_success_exits_0_and_reports_every_job_success(happy: Happy) -> None:
    assert happy.out.returncode == 0, happy.out.stdout + happy.out.stderr
    report = happy.report
    assert (report["pipeline"], report["run"], report["status"]) == ("happy", 1, "SUCCESS")
    assert (report["commit"], report["branch"]) == (happy.commit, "main")
    assert report["finished_at"] is not None
    assert [(s["name"], s["status"]) for s in report["stages"]] == [
        ("build", "SUCCESS"),
        ("test", "SUCCESS"),
    ]
    assert {name: (j["status"], j["exit_code"]) for name, j in jobs(report).items()} == {
        "env": ("SUCCESS", 0),
        "produce": ("SUCCESS", 0),
        "consume": ("SUCCESS", 0),
    }


@pytest.mark.docker
def test_run_variables_job_wins_per_key_and_standard_ones_set(happy: Happy) -> None:
    shown = [text.removeprefix("ENV ") for text in happy.out.job_lines("env") if text[:4] == "ENV "]
    assert shown == [
        "CI=true",
        "CICD_BRANCH=main",
        f"CICD_COMMIT={happy.commit}",
        "CICD_JOB=env",
        "CICD_PIPELINE=happy",
        "CICD_RUN=happy#1",
        "CICD_STAGE=build",
        "OVERRIDDEN=from-job",
        "OWN=job-only",
        "SHARED=from-pipeline",
    ]


@pytest.mark.docker
def test_run_workspace_shared_by_stages_and_holds_the_commit(happy: Happy) -> None:
    said = [t for t in happy.out.job_lines("consume") if not t.startswith(("$ ", "started"))]
    assert said[:3] == ["HANDOFF=from-build", "COMMITTED=as committed", "DIRTY=absent"]


@pytest.mark.docker
def test_run_uncommitted_changes_warned_by_name(happy: Happy) -> None:
    said = happy.out.lines + happy.out.stderr.splitlines()  # stdout or stderr: either will do
    warnings = [line for line in said if "uncommitted" in line]
    assert len(warnings) == 1, happy.out.stdout
    assert "committed.txt" in warnings[0] and "dirty.txt" in warnings[0]


@pytest.mark.docker
def test_run_live_lines_prefixed_with_job_name(happy: Happy) -> None:
    # the padded prefix of the longest name is "produce | "
    assert "env     | ENV CI=true" in happy.out.lines
    assert "consume | HANDOFF=from-build" in happy.out.lines
    assert "produce | $ cp data.bin dist/data.bin" in happy.out.lines


@pytest.mark.docker
def test_run_first_line_names_the_run_even_with_uncommitted_changes(happy: Happy) -> None:
    # SPEC §3.1: "cicd run prints the run's name (NAME#N) in its first line of output"
    assert "happy#1" in happy.out.lines[0], happy.out.stdout


@pytest.mark.docker
def test_run_artifacts_download_byte_identical(happy: Happy, tmp_path: Path) -> None:
    out = happy.project.cicd("artifacts", "happy#1", "--download", str(tmp_path / "got"))
    assert out.returncode == 0, out.stderr
    got = tmp_path / "got" / "produce" / "dist"
    assert sorted(p.name for p in got.iterdir()) == ["data.bin", "note.txt"]
    assert hashlib.sha256((got / "data.bin").read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert (got / "data.bin").read_bytes() == DATA
    assert (got / "note.txt").read_text() == "made by produce\n"


# -- success, failure, exit codes -------------------------------------------------------------


@pytest.mark.docker
def test_run_clean_repo_first_line_names_run(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: first, image: {BUSYBOX}}}
            jobs:
              - {{name: only, stage: build, script: "echo hi"}}
            """
        )
    )
    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.lines[0].startswith("first#1"), out.stdout
    assert out.stderr == ""


@pytest.mark.docker
def test_run_failing_command_stops_script_and_fails_run_with_exit_1(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: failing, image: {BUSYBOX}}}
            jobs:
              - name: broken
                stage: build
                script:
                  - echo "before-$CICD_JOB"
                  - sh -c 'exit 7'
                  - echo "after-$CICD_JOB"
            """
        )
    )
    out = project.run()
    assert out.returncode == 1, out.stdout + out.stderr
    said = out.job_lines("broken")
    assert "before-broken" in said
    assert "after-broken" not in said  # the line after the failing command never ran
    report = project.report("failing", 1)
    assert report["status"] == "FAILED"
    assert (jobs(report)["broken"]["status"], jobs(report)["broken"]["exit_code"]) == ("FAILED", 7)


@pytest.mark.docker
def test_run_allowed_failure_lets_needing_job_run_and_pipeline_succeed(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: allowed, image: {BUSYBOX}}}
            jobs:
              - {{name: flaky, stage: test, allow_failure: true, script: "exit 3"}}
              - {{name: after, stage: test, needs: [flaky], script: "echo ran-$CICD_JOB"}}
            """
        )
    )
    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ran-after" in out.job_lines("after")
    report = project.report("allowed", 1)
    assert report["status"] == "SUCCESS"
    assert stages(report)["test"]["status"] == "SUCCESS"
    found = jobs(report)
    assert (found["flaky"]["status"], found["flaky"]["exit_code"]) == ("FAILED", 3)
    assert found["flaky"]["allow_failure"] is True
    assert found["after"]["status"] == "SUCCESS"


@pytest.mark.docker
def test_run_failure_stops_long_sibling_and_cancels_later_stages(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: failfast, stages: [one, two], image: {BUSYBOX}}}
            jobs:
              - {{name: long, stage: one, script: ["sleep 60", "echo long-$CICD_JOB"]}}
              - {{name: bad, stage: one, script: ["sleep 1", "exit 5"]}}
              - {{name: later, stage: two, script: "echo later-$CICD_JOB"}}
            """
        )
    )
    out = project.run(timeout=90)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.seconds < 40, f"the run took {out.seconds:.1f}s: its sleeping job was not stopped"
    assert "later-later" not in out.stdout and "long-long" not in out.stdout
    assert out.job_lines("later") == ["CANCELED"]  # its status, and nothing it said
    report = project.report("failfast", 1)
    assert report["status"] == "FAILED"
    assert {name: j["status"] for name, j in jobs(report).items()} == {
        "long": "CANCELED",
        "bad": "FAILED",
        "later": "CANCELED",
    }
    assert jobs(report)["later"]["started_at"] is None
    assert stages(report)["two"]["status"] == "CANCELED"
    run_seconds = (when(report["finished_at"]) - when(report["started_at"])).total_seconds()
    assert run_seconds < 40


@pytest.mark.docker
def test_run_job_starts_as_soon_as_its_needs_succeed(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: ready, image: {BUSYBOX}}}
            jobs:
              - {{name: slow, stage: test, script: "sleep 4"}}
              - {{name: a, stage: test, script: "echo a"}}
              - {{name: b, stage: test, needs: [a], script: "echo b"}}
              - {{name: c, stage: test, needs: [b], script: "echo c"}}
            """
        )
    )
    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr
    found = jobs(project.report("ready", 1))
    assert when(found["a"]["finished_at"]) <= when(found["b"]["started_at"])
    assert when(found["b"]["finished_at"]) <= when(found["c"]["started_at"])
    assert when(found["c"]["started_at"]) < when(found["slow"]["finished_at"])


@pytest.mark.docker
def test_run_jobs_1_never_overlaps_jobs(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: serial, image: {BUSYBOX}}}
            jobs:
              - {{name: j1, stage: test, script: "sleep 1"}}
              - {{name: j2, stage: test, script: "sleep 1"}}
              - {{name: j3, stage: test, script: "sleep 1"}}
            """
        )
    )
    out = project.run("--jobs", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    spans = sorted(
        (when(j["started_at"]), when(j["finished_at"]))
        for j in jobs(project.report("serial", 1)).values()
    )
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert end <= next_start, spans


@pytest.mark.docker
def test_run_timeout_fails_job_with_message(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: slowpoke, image: {BUSYBOX}}}
            jobs:
              - {{name: sleepy, stage: test, timeout: 2s, script: "sleep 30"}}
            """
        )
    )
    out = project.run(timeout=90)
    assert out.returncode == 1, out.stdout + out.stderr
    finished = [t for t in out.job_lines("sleepy") if t.startswith("FAILED")]
    assert len(finished) == 1 and re.search(r"time(d)? ?out", finished[0]), out.stdout
    report = project.report("slowpoke", 1)
    assert (report["status"], jobs(report)["sleepy"]["status"]) == ("FAILED", "FAILED")
    job = jobs(report)["sleepy"]
    assert (when(job["finished_at"]) - when(job["started_at"])).total_seconds() < 20


@pytest.mark.docker
def test_run_retry_succeeds_on_second_attempt(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: retrying, image: {BUSYBOX}}}
            jobs:
              - name: flaky
                stage: test
                retry: 1
                script:
                  - if [ -e .attempted ]; then echo attempt-two; else touch .attempted; echo attempt-one; exit 1; fi
            """  # noqa: E501
        )
    )
    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr
    said = out.job_lines("flaky")
    assert said.index("attempt-one") < said.index("attempt-two")
    report = project.report("retrying", 1)
    assert report["status"] == "SUCCESS"
    assert (jobs(report)["flaky"]["status"], jobs(report)["flaky"]["exit_code"]) == ("SUCCESS", 0)


@pytest.mark.docker
def test_run_missing_image_fails_job_naming_image(project: Project) -> None:
    project.commit(
        pipeline(
            """
            pipeline: {name: noimage, image: cicd-missing:nope}
            jobs:
              - {name: ghost, stage: test, script: "echo never-$CICD_JOB"}
            """
        )
    )
    out = project.run("--pull", "never")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "never-ghost" not in out.stdout
    finished = [t for t in out.job_lines("ghost") if t.startswith("FAILED")]
    assert len(finished) == 1 and "cicd-missing:nope" in finished[0], out.stdout
    report = project.report("noimage", 1)
    assert (report["status"], jobs(report)["ghost"]["status"]) == ("FAILED", "FAILED")
    assert jobs(report)["ghost"]["image"] == "cicd-missing:nope"


# -- workspaces -------------------------------------------------------------------------------


@pytest.mark.docker
def test_run_workspace_not_shared_between_runs(project: Project) -> None:
    project.commit(
        pipeline(
            f"""
            pipeline: {{name: isolated, image: {BUSYBOX}}}
            jobs:
              - name: mark
                stage: test
                script:
                  - if [ -e left.txt ]; then echo "FOUND $(cat left.txt)"; exit 1; fi
                  - echo "$CICD_RUN" > left.txt
            """
        )
    )
    first, second = project.run(), project.run()
    assert (first.returncode, second.returncode) == (0, 0), first.stdout + second.stdout
    said = first.job_lines("mark") + second.job_lines("mark")
    assert [text for text in said if text.startswith("FOUND")] == []
    assert project.report("isolated", 2)["status"] == "SUCCESS"


# -- choosing the pipeline --------------------------------------------------------------------

TWO_PIPELINES: dict[str, str | bytes] = {
    ".pipelines/alpha.yaml": f"pipeline: {{name: alpha, image: {BUSYBOX}}}\n"
    'jobs: [{name: a, stage: build, script: "echo in-$CICD_PIPELINE"}]\n',
    ".pipelines/beta.yaml": f"pipeline: {{name: beta, image: {BUSYBOX}}}\n"
    'jobs: [{name: b, stage: build, script: "echo in-$CICD_PIPELINE"}]\n',
}


@pytest.mark.docker
def test_run_pipeline_chosen_by_name(project: Project) -> None:
    project.commit(TWO_PIPELINES)
    out = project.run("-p", "beta")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.lines[0].startswith("beta#1"), out.stdout
    assert out.job_lines("b")[-2:] == ["in-beta", "SUCCESS (exit code 0)"]
    assert project.report("beta", 1)["status"] == "SUCCESS"
    assert project.cicd("report", "-p", "alpha", "--format", "json").returncode != 0


@pytest.mark.docker
def test_run_file_and_name_together_is_usage_error(project: Project) -> None:
    project.commit(TWO_PIPELINES)
    out = project.run("-f", ".pipelines/alpha.yaml", "-p", "alpha")
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: "), out.stderr
