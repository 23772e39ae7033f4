"""``cicd check``, ``dry-run`` and ``run`` on a ``.gitlab-ci.yml`` in a real git repository.

Through the real entry point (``python -m cicd_cli``); ``run`` only as far as its usage errors,
which come before any container (tests/e2e/test_gitlab_run.py runs one for real).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GITLAB_CI = """\
stages: [build, test, deploy]
default:
  image: alpine:3
  before_script: [echo setup]
compile:
  stage: build
  script: make
lint:
  stage: test
  needs: []
  script: ruff
unit:
  stage: test
  needs: [compile, lint]
  script: [pytest]
docs:
  stage: test
  script: mkdocs
  rules:
    - if: $CI_COMMIT_BRANCH == "release"
ship:
  stage: deploy
  script: deploy
  when: manual
tidy:
  stage: deploy
  script: tidy
"""


def cicd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cicd_cli ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "cicd_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "NO_COLOR": "1", "CICD_DAEMON": "0",
             "CICD_HOME": str(cwd.parent / "home")},
    )  # fmt: skip


def git(repo: Path, *args: str) -> None:
    """Run git in ``repo`` with a fixed identity."""
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip


def make_repo(root: Path, files: dict[str, str], name: str = "shop") -> Path:
    """A git repository ``root/name`` (branch main) with ``files`` committed."""
    repo = root / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(textwrap.dedent(text))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The repository ``shop`` with GITLAB_CI as its .gitlab-ci.yml and no .pipelines/."""
    return make_repo(tmp_path, {".gitlab-ci.yml": GITLAB_CI})


UNKNOWN_JOB = "error: --job unti: no job 'unti' in pipeline 'shop'; did you mean 'unit'?\n"

PLAN = """\
pipeline 'shop' (.gitlab-ci.yml): 3 stages, 6 jobs, 2 not run
one DAG across stages: groups count across the whole run
stage 1/3: build
└── group 1
    └── compile  alpine:3
        ├── $ echo setup
        └── $ make
stage 2/3: test
├── group 1
│   └── lint  alpine:3  needs: none
│       ├── $ echo setup
│       └── $ ruff
├── group 2
│   └── unit  alpine:3  needs: compile (build), lint
│       ├── $ echo setup
│       └── $ pytest
└── not run
    └── docs  alpine:3  — rules: no rule matches branch 'main'
stage 3/3: deploy
├── group 3
│   └── tidy  alpine:3
│       ├── $ echo setup
│       └── $ tidy
└── not run
    └── ship  alpine:3  — manual: start it with --manual ship
"""


def test_check_gitlab_file_found_without_f(repo):
    result = cicd("check", cwd=repo)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ".gitlab-ci.yml: ok — pipeline 'shop', 3 stages, 6 jobs\n"


def test_check_gitlab_file_with_f_and_pipeline_name(repo):
    result = cicd("check", "-f", ".gitlab-ci.yml", "-p", "storefront", cwd=repo)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ".gitlab-ci.yml: ok — pipeline 'storefront', 3 stages, 6 jobs\n"


def test_check_prefers_pipelines_folder_over_gitlab_file(tmp_path):
    native = "pipeline: {name: native}\njobs:\n  - {name: a, stage: build, script: 'true'}\n"
    repo = make_repo(tmp_path, {".gitlab-ci.yml": GITLAB_CI, ".pipelines/pipeline.yaml": native})
    result = cicd("check", cwd=repo)
    assert result.stdout == ".pipelines/pipeline.yaml: ok — pipeline 'native', 1 stage, 1 job\n"


def test_dry_run_gitlab_shows_dag_and_not_run_jobs(repo):
    result = cicd("dry-run", cwd=repo)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == PLAN


def test_dry_run_gitlab_rules_see_the_current_branch(repo):
    git(repo, "checkout", "-q", "-b", "release")
    result = cicd("dry-run", "--format", "json", cwd=repo)
    docs = json.loads(result.stdout)["stages"][1]["jobs"][2]
    assert (docs["name"], docs["run"], docs["skip_reason"]) == ("docs", True, None)


def test_dry_run_gitlab_json_keeps_spec_keys_and_adds_its_own(repo):
    result = cicd("dry-run", "--format", "json", cwd=repo)
    document = json.loads(result.stdout)
    unit = document["stages"][1]["jobs"][1]
    assert unit == {
        "name": "unit",
        "image": "alpine:3",
        "needs": ["compile", "lint"],
        "allow_failure": False,
        "script": ["pytest"],
        "before_script": ["echo setup"],
        "when": "on_success",
        "run": True,
        "skip_reason": None,
        "group": 2,
        "after": ["compile", "lint"],
        "need_stages": {"compile": "build", "lint": "test"},
    }
    assert [[j["name"] for j in s["jobs"]] for s in document["stages"]] == [
        ["compile"], ["lint", "unit", "docs"], ["tidy", "ship"],
    ]  # fmt: skip
    assert (document["pipeline"], document["format"]) == ("shop", "gitlab")


def test_dry_run_job_selects_only_that_job(repo):
    result = cicd("dry-run", "--job", "unit", "--format", "json", cwd=repo)
    runs = {j["name"]: j["skip_reason"] for s in json.loads(result.stdout)["stages"]
            for j in s["jobs"]}  # fmt: skip
    assert runs == {
        "compile": "not selected (--job)",
        "lint": "not selected (--job)",
        "unit": None,
        "docs": "rules: no rule matches branch 'main'",
        "tidy": "not selected (--job)",
        "ship": "not selected (--job)",
    }


def test_dry_run_with_needs_runs_what_the_job_needs(repo):
    result = cicd("dry-run", "--job", "unit", "--with-needs", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "pipeline 'shop' (.gitlab-ci.yml): 3 stages, 6 jobs, 3 not run"
    )
    assert "    └── compile  alpine:3\n" in result.stdout
    assert "│   └── lint  alpine:3  needs: none\n" in result.stdout


def test_dry_run_manual_starts_the_manual_job(repo):
    result = cicd("dry-run", "--manual", "ship", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "stage 3/3: deploy\n"
        "└── group 3 — 2 jobs start together\n"
        "    ├── ship  alpine:3  when: manual  (allowed to fail)\n"
        "    │   ├── $ echo setup\n"
        "    │   └── $ deploy\n"
        "    └── tidy  alpine:3\n"
        "        ├── $ echo setup\n"
        "        └── $ tidy\n"
    )


def test_dry_run_unknown_job_is_a_usage_error_with_a_suggestion(repo):
    result = cicd("dry-run", "--job", "unti", cwd=repo)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == UNKNOWN_JOB


def test_dry_run_override_on_a_gitlab_file_is_a_usage_error(repo):
    result = cicd("dry-run", "--override", "pipeline.image=x", cwd=repo)
    assert (result.returncode, result.stderr) == (
        2, "error: --override sets keys of .pipelines/ files; for a GitLab file use --env\n",
    )  # fmt: skip


def test_dry_run_env_beats_file_variables_in_rules(tmp_path):
    text = """\
    variables: {DEPLOY: "no"}
    ship:
      script: deploy
      rules:
        - if: $DEPLOY == "yes"
    """
    repo = make_repo(tmp_path, {".gitlab-ci.yml": text})
    plain = json.loads(cicd("dry-run", "--format", "json", cwd=repo).stdout)
    forced = json.loads(cicd("dry-run", "--env", "DEPLOY=yes", "--format", "json", cwd=repo).stdout)
    assert plain["stages"][0]["jobs"][0]["run"] is False
    assert forced["stages"][0]["jobs"][0]["run"] is True


def test_check_positioned_error_in_an_included_file(tmp_path):
    files = {
        ".gitlab-ci.yml": "include: ci/build.yml\nunit:\n  script: pytest\n",
        "ci/build.yml": "compile:\n  stage: buidl\n  script: make\n",
    }
    repo = make_repo(tmp_path, files)
    result = cicd("check", cwd=repo)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "ci/build.yml:2:10: job 'compile': chosen stage 'buidl' does not exist (did you mean "
        "'build'?); available stages are .pre, build, test, deploy, .post\n"
    )


def test_run_unknown_job_is_a_usage_error_before_running(repo):
    result = cicd("run", "--job", "unti", cwd=repo)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == UNKNOWN_JOB


def test_run_help_tells_job_from_jobs(repo):
    result = cicd("run", "--help", cwd=repo)
    text = " ".join(result.stdout.replace("│", " ").split())  # wrapped lines: no box borders
    assert "Run only this job (repeatable)" in text
    assert "not --jobs/-j, which limits how many run at once" in text
    assert "Concurrency: run at most N jobs at once" in text
    assert "To pick which jobs run, use --job NAME" in text


CONTEXT_CI = """\
release:
  script: echo release
  rules:
    - if: $CI_COMMIT_TAG == "v1.0" && $CI_COMMIT_MESSAGE =~ /^first/ && $CI_PROJECT_NAME == "shop"
trunk:
  script: echo trunk
  rules:
    - if: $CI_DEFAULT_BRANCH == "trunk"
"""


def _running(repo: Path) -> list[str]:
    document = json.loads(cicd("dry-run", "--format", "json", cwd=repo).stdout)
    return [job["name"] for stage in document["stages"] for job in stage["jobs"] if job["run"]]


def test_dry_run_gitlab_context_comes_from_git(tmp_path):
    repo = make_repo(tmp_path, {".gitlab-ci.yml": CONTEXT_CI})
    assert _running(repo) == []
    git(repo, "tag", "v1.0")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    assert _running(repo) == ["release", "trunk"]


def test_check_gitlab_pipeline_name_that_is_a_path_is_a_usage_error(repo):
    result = cicd("check", "-p", "../x", cwd=repo)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: -p '../x': a pipeline name must not start with '/' or have a '.' or '..' "
        "segment (names are not paths)\n"
    )
