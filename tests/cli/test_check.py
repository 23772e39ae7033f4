"""``cicd check`` and ``cicd dry-run`` through the real entry point: output and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

EXAMPLES = Path(__file__).parents[2] / "examples"


def cicd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cicd_cli ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "cicd_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "NO_COLOR": "1"},
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A folder with the python-project and dag examples as two files of .pipelines/."""
    folder = tmp_path / ".pipelines"
    folder.mkdir()
    shutil.copy(EXAMPLES / "python-project/.pipelines/pipeline.yaml", folder / "pipeline.yaml")
    shutil.copy(EXAMPLES / "dag/.pipelines/pipeline.yaml", folder / "dag.yml")
    return tmp_path


def test_check_valid_default_file(repo):
    result = cicd("check", cwd=repo)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        ".pipelines/pipeline.yaml: ok — pipeline 'python-project', 4 stages, 7 jobs\n"
    )


def test_check_all_prints_one_line_per_file(repo):
    result = cicd("check", "--all", cwd=repo)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        ".pipelines/dag.yml: ok — pipeline 'dag', 2 stages, 6 jobs\n"
        ".pipelines/pipeline.yaml: ok — pipeline 'python-project', 4 stages, 7 jobs\n"
    )


def test_check_invalid_file_prints_every_problem_and_exits_1(repo):
    shutil.copy(EXAMPLES / "invalid/.pipelines/pipeline.yaml", repo / "bad.yaml")
    result = cicd("check", "-f", "bad.yaml", cwd=repo)
    assert (result.returncode, result.stdout) == (1, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 11
    assert lines[0] == "bad.yaml:4:25: stage 'deploy' has no jobs"
    assert lines[5] == "bad.yaml:15:22: cyclic dependency in stage 'test': unit -> integ -> unit"


def test_check_missing_file_exits_1(tmp_path):
    result = cicd("check", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ".pipelines/pipeline.yaml:1:1: file not found\n"


def test_check_all_duplicate_names_exit_1_after_valid_lines(repo):
    shutil.copy(repo / ".pipelines/dag.yml", repo / ".pipelines/zz.yaml")
    result = cicd("check", "--all", cwd=repo)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        ".pipelines/dag.yml: ok — pipeline 'dag', 2 stages, 6 jobs",
        ".pipelines/pipeline.yaml: ok — pipeline 'python-project', 4 stages, 7 jobs",
    ]
    assert result.stderr == (
        ".pipelines/zz.yaml:5:9: pipeline name 'dag' is already used by .pipelines/dag.yml\n"
    )


def test_check_all_without_files_exits_1(tmp_path):
    result = cicd("check", "--all", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: no pipeline files (*.yaml, *.yml) in .pipelines/\n"


def test_check_file_and_all_together_is_a_usage_error(repo):
    result = cicd("check", "-f", "x.yaml", "--all", cwd=repo)
    assert result.returncode == 2
    assert result.stderr == "error: -f/--file and --all cannot be used together\n"


def test_check_unknown_option_is_a_usage_error(repo):
    result = cicd("check", "--bogus", cwd=repo)
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_dry_run_json_is_the_spec_shape(repo):
    result = cicd("dry-run", "-f", ".pipelines/dag.yml", "--format", "json", cwd=repo)
    assert (result.returncode, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert list(document) == ["pipeline", "stages"]
    assert document["pipeline"] == "dag"
    test = document["stages"][1]
    assert [job["name"] for job in test["jobs"]] == [
        "slow-integration",
        "prepare",
        "verify",
        "flaky-probe",
        "report",
    ]
    assert test["jobs"][4] == {
        "name": "report",
        "image": "cicd-busybox:latest",
        "needs": ["verify", "flaky-probe"],
        "allow_failure": False,
        "script": [
            'awk \'{ sum += $1 } END { print "sum:", sum }\' "$OUT/numbers.txt" | tee '
            '"$OUT/report.txt"'
        ],
    }
    assert result.stdout.startswith('{\n  "pipeline": "dag",\n  "stages": [\n')


def test_dry_run_yaml_has_the_same_content(repo):
    as_json = cicd("dry-run", "--format", "json", cwd=repo)
    as_yaml = cicd("dry-run", "--format", "yaml", cwd=repo)
    assert as_yaml.returncode == 0
    assert YAML(typ="safe").load(as_yaml.stdout) == json.loads(as_json.stdout)


def test_dry_run_text_shows_groups_images_needs_and_script(repo):
    result = cicd("dry-run", "-f", ".pipelines/dag.yml", cwd=repo)
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith("pipeline 'dag' (.pipelines/dag.yml): 2 stages, 6 jobs\n")
    assert "stage 2/2: test" in out
    assert "group 1 — 2 jobs start together" in out
    assert "report  cicd-busybox:latest  needs: verify, flaky-probe" in out
    assert "flaky-probe  cicd-busybox:latest  needs: prepare  (allowed to fail)" in out
    assert "$ sleep 3" in out
    assert out.index("group 2") < out.index("group 3") < out.index("report  ")


def test_dry_run_override_applies(repo):
    result = cicd(
        "dry-run", "--format", "json", "--override", "jobs.syntax.image=alpine:3.20", cwd=repo
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["stages"][0]["jobs"][0]["image"] == "alpine:3.20"


def test_dry_run_bad_override_exits_1_with_positioned_problem(repo):
    result = cicd("dry-run", "--override", "jobs.syntax.retry=9", cwd=repo)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        ".pipelines/pipeline.yaml:17:5: override 'jobs.syntax.retry=9': job 'syntax': 'retry' "
        "must be an integer from 0 to 2, not 9\n"
    )


def test_dry_run_invalid_file_exits_1(repo):
    (repo / ".pipelines/pipeline.yaml").write_text("pipeline: [\n")
    result = cicd("dry-run", cwd=repo)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(".pipelines/pipeline.yaml:2:1: invalid YAML: ")


def test_dry_run_bad_format_is_a_usage_error(repo):
    result = cicd("dry-run", "--format", "xml", cwd=repo)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: --format xml: expected one of text, yaml, json, mermaid, dot\n"


@pytest.mark.parametrize("command", ["check", "dry-run"])
def test_help_describes_the_command(command, tmp_path):
    result = cicd(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Exit status: 0" in result.stdout
