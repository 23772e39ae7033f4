"""docs/gitlab.md's keyword tables, row by row: each row's status is what the front end does.

One case per row of the Global keywords, Job keywords, YAML features and Predefined variables
tables, keyed by the row's first cell. A **supported** or **parsed, not executed yet** row
parses and its value is in the model (or the plan); an **accepted and ignored** row parses and
names its keyword in ``Pipeline.ignored``; a **refused** row raises ``PipelineInvalid`` with its
positioned message; a predefined variable row gives ``Job.predefined`` values for a context.
``test_keyword_table_covers_every_row`` fails when a row has no case, or a case no row.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backend.errors import PipelineInvalid
from backend.pipeline.gitlab.front import GitlabContext, load_gitlab
from backend.pipeline.gitlab.include import DictSource
from backend.pipeline.model import Job, Pipeline
from backend.pipeline.plan import plan_pipeline

DOCS = Path(__file__).resolve().parents[3] / "docs" / "gitlab.md"
MAIN = ".gitlab-ci.yml"
SECTIONS = {
    "Global keywords": "global",
    "Job keywords": "job",
    "YAML features": "yaml",
    "Predefined variables": "predefined",
}
SUPPORTED = "supported"
PARSED = "parsed, not executed yet"
IGNORED = "accepted and ignored"
REFUSED = "refused"
PREDEFINED = "predefined"
SHA = "0123456789abcdef0123456789abcdef01234567"
CONTEXT = GitlabContext(
    branch="feature/X",
    commit=SHA,
    message="Fix the build\n\nLonger text.",
    default_branch="main",
    project_name="My Project",
    project_path="group/My Project",
    repository_url="https://example.com/group/project.git",
    pipeline_iid=7,
)


@dataclass(frozen=True)
class Case:
    """One table row: a document using its keyword(s) and what the row's status promises."""

    row: str  # "<section>/<first cell without backticks>"
    status: str
    doc: str
    got: Callable[[Pipeline], object] | None = None  # supported, parsed, predefined
    want: object = None
    ignored: tuple[str, ...] = ()  # accepted and ignored: the names in Pipeline.ignored
    error: str | None = None  # refused (or a supported check that refuses)
    files: dict[str, str] = field(default_factory=dict)
    context: GitlabContext = field(default_factory=GitlabContext)
    xfail: str | None = None


def load(case: Case) -> Pipeline:
    """The pipeline of the case's document (dedented) and its other files."""
    text = textwrap.dedent(case.doc).lstrip("\n")
    source = DictSource({MAIN: text, **case.files})
    return load_gitlab(MAIN, source, name="p", context=case.context)


def job(pipeline: Pipeline, name: str = "job") -> Job:
    """The job ``name`` of ``pipeline``."""
    return pipeline.job(name)


def running(pipeline: Pipeline) -> list[str]:
    """The names of the jobs that run (rules, only/except and when leave the others out)."""
    return [j.name for j in pipeline.jobs if j.run]


def ignored_names(pipeline: Pipeline) -> list[str]:
    """The keywords ``Pipeline.ignored`` names (each entry is ``keyword: why``)."""
    return [entry.split(": ", 1)[0] for entry in pipeline.ignored]


def predefined(*names: str, doc: str = "job: {script: x}\n", name: str = "job") -> dict[str, Any]:
    """A predefined-variable check: ``names`` of job ``name``'s ``Job.predefined``."""
    return {"doc": doc, "got": lambda p: {k: job(p, name).predefined.get(k) for k in names}}


CASES = [
    # -- Global keywords ---------------------------------------------------------------------
    Case(
        "global/default",
        SUPPORTED,
        """
        default: {image: ruby:3.3, retry: 1}
        job: {script: x}
        plain: {script: x, inherit: {default: false}}
        """,
        got=lambda p: [(j.name, j.image, j.retry) for j in p.jobs],
        want=[("job", "ruby:3.3", 1), ("plain", "docker.io/library/ubuntu:latest", 0)],
    ),
    Case(
        "global/include",
        SUPPORTED,
        """
        include: [ci/build.yml, "ci/jobs/*.yml"]
        job: {script: x}
        """,
        files={
            "ci/build.yml": "build: {stage: build, script: make}\n",
            "ci/jobs/a.yml": "a: {script: a}\n",
            "ci/jobs/b.yml": "b: {script: b}\n",
        },
        got=lambda p: [j.name for j in p.jobs],
        want=["build", "a", "b", "job"],
    ),
    Case(
        "global/include:local",
        SUPPORTED,
        """
        include: {local: ci/test.yml}
        job: {script: x}
        """,
        files={"ci/test.yml": "unit: {script: pytest}\n"},
        got=lambda p: [(j.name, j.script) for j in p.jobs],
        want=[("unit", ["pytest"]), ("job", ["x"])],
    ),
    Case(
        "global/include:project, include:remote, include:template, include:component, "
        "include:artifact",
        REFUSED,
        """
        include:
          - {project: group/other, file: ci.yml}
          - {remote: "https://example.com/ci.yml"}
          - {template: Auto-DevOps.gitlab-ci.yml}
          - {component: gitlab.com/group/component@1.0}
          - {artifact: generated.yml, job: build}
        job: {script: x}
        """,
        error="\n".join(
            [
                ".gitlab-ci.yml:2:6: include:project needs a GitLab server; "
                "cicd includes local files only",
                ".gitlab-ci.yml:3:6: include:remote needs a GitLab server; "
                "cicd includes local files only",
                ".gitlab-ci.yml:4:6: include:template needs a GitLab server; "
                "cicd includes local files only",
                ".gitlab-ci.yml:5:6: include:component needs a GitLab server; "
                "cicd includes local files only",
                ".gitlab-ci.yml:6:6: include:artifact needs a GitLab server; "
                "cicd includes local files only",
            ]
        ),
    ),
    Case(
        "global/include:integrity",
        REFUSED,
        """
        include:
          - remote: "https://example.com/ci.yml"
            integrity: sha256-L3/GAoKaw0Arw6hDCKeKQlV1QPEgHYxGBHsH4zG1IY8=
        job: {script: x}
        """,
        error=".gitlab-ci.yml:2:5: include:remote needs a GitLab server; "
        "cicd includes local files only",
    ),
    Case(
        "global/include:rules, include:inputs",
        REFUSED,
        """
        include:
          - local: ci/a.yml
            rules: [{if: $X}]
          - local: ci/b.yml
            inputs: {stage: test}
        job: {script: x}
        """,
        files={"ci/a.yml": "a: {script: a}\n", "ci/b.yml": "b: {script: b}\n"},
        error=".gitlab-ci.yml:3:5: include:rules is not supported yet\n"
        ".gitlab-ci.yml:5:5: include:inputs is not supported yet",
    ),
    Case(
        "global/stages",
        SUPPORTED,
        """
        stages: [build, test, deploy]
        ship: {stage: deploy, script: x}
        make: {stage: build, script: x}
        """,
        got=lambda p: [(s.name, [j.name for j in s.jobs]) for s in p.stages],
        want=[("build", ["make"]), ("deploy", ["ship"])],
    ),
    Case(
        "global/types",
        SUPPORTED,
        """
        types: [build, test]
        unit: {stage: test, script: x}
        make: {stage: build, script: x}
        """,
        got=lambda p: [s.name for s in p.stages],
        want=["build", "test"],
    ),
    Case(
        "global/variables",
        SUPPORTED,
        """
        variables: {RAILS_ENV: test, DB: "${RAILS_ENV}_db"}
        job: {script: x}
        """,
        got=lambda p: job(p).variables,
        want={"RAILS_ENV": "test", "DB": "test_db"},
    ),
    Case(
        "global/variables:value, variables:description",
        SUPPORTED,
        """
        variables: {ENV: {value: staging, description: where}}
        job: {script: x}
        """,
        got=lambda p: job(p).variables,
        want={"ENV": "staging"},
    ),
    Case(
        "global/variables:options",
        SUPPORTED,
        """
        variables:
          ENV: {value: staging, options: [staging, prod]}
          BAD: {value: test, options: [staging, prod]}
        job: {script: x}
        """,
        error=".gitlab-ci.yml:3:16: variable 'BAD': value 'test' must be one of its 'options'",
    ),
    Case(
        "global/variables:expand",
        SUPPORTED,
        """
        variables:
          b: B
          PASS: {value: "a$b", expand: false}
          OTHER: "a$b"
        job: {script: x}
        """,
        got=lambda p: job(p).variables,
        want={"b": "B", "PASS": "a$b", "OTHER": "aB"},
    ),
    Case(
        "global/workflow",
        SUPPORTED,
        """
        workflow: {rules: [{if: $CI_COMMIT_TAG, when: never}, {when: always}]}
        job: {script: x}
        """,
        context=GitlabContext(branch=None, tag="v1"),
        error=".gitlab-ci.yml:1:20: workflow:rules: this pipeline does not run for tag 'v1' "
        "(rule 1 says never)",
    ),
    Case(
        "global/workflow:rules",
        SUPPORTED,
        """
        workflow:
          rules: [{if: $CI_COMMIT_TAG}]
        job: {script: x}
        """,
        error=".gitlab-ci.yml:2:3: workflow:rules: this pipeline does not run for "
        "branch 'main' (no rule matched)",
    ),
    Case(
        "global/workflow:rules:if, workflow:rules:exists, workflow:rules:when, "
        "workflow:rules:variables",
        SUPPORTED,
        """
        workflow:
          rules:
            - {if: $CI_COMMIT_TAG, when: never}
            - if: $CI_COMMIT_BRANCH == "main"
              exists: [Dockerfile]
              when: always
              variables: {DEPLOY: "1"}
        job: {script: x}
        """,
        files={"Dockerfile": "FROM alpine\n"},
        got=lambda p: job(p).variables,
        want={"DEPLOY": "1"},
    ),
    Case(
        "global/workflow:rules:changes",
        SUPPORTED,
        """
        workflow:
          rules:
            - changes: [src/**/*]
        job: {script: x}
        """,
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "global/workflow:rules:auto_cancel, workflow:auto_cancel",
        IGNORED,
        """
        workflow:
          auto_cancel: {on_new_commit: interruptible}
          rules:
            - {when: always, auto_cancel: {on_new_commit: none}}
        job: {script: x}
        """,
        ignored=("workflow:auto_cancel",),
    ),
    Case(
        "global/workflow:name",
        IGNORED,
        """
        workflow: {name: "Pipeline for $CI_COMMIT_REF_NAME"}
        job: {script: x}
        """,
        ignored=("workflow:name",),
    ),
    Case(
        "global/spec",
        REFUSED,
        """
        spec:
          inputs: {stage: {default: test}}
        ---
        job: {script: x}
        """,
        error=".gitlab-ci.yml:1:1: job 'spec' has no script, run or trigger\n"
        ".gitlab-ci.yml:3:1: invalid YAML: expected a single document, found another",
    ),
    Case(
        "global/image, services, cache, before_script, after_script (top level)",
        SUPPORTED,
        """
        image: alpine:3.20
        services: [postgres:16]
        cache: {key: gems, paths: [vendor/]}
        before_script: [cd app]
        after_script: [rm -rf tmp]
        job: {script: x}
        """,
        got=lambda p: (
            job(p).image,
            [s.name for s in job(p).services],
            [(c.key, c.paths) for c in job(p).cache],
            job(p).before_script,
            job(p).after_script,
        ),
        want=("alpine:3.20", ["postgres:16"], [("gems", ["vendor/"])], ["cd app"], ["rm -rf tmp"]),
    ),
    # -- Job keywords --------------------------------------------------------------------------
    Case(
        "job/script",
        SUPPORTED,
        """
        job:
          script: [bundle install, [rake test, [rake lint]]]
        """,
        got=lambda p: job(p).script,
        want=["bundle install", "rake test", "rake lint"],
    ),
    Case(
        "job/before_script",
        SUPPORTED,
        "job: {before_script: [cd app], script: x}\n",
        got=lambda p: job(p).before_script,
        want=["cd app"],
    ),
    Case(
        "job/after_script",
        SUPPORTED,
        "job: {after_script: [rm -rf tmp], script: x}\n",
        got=lambda p: job(p).after_script,
        want=["rm -rf tmp"],
    ),
    Case(
        "job/stage",
        SUPPORTED,
        """
        job: {stage: build, script: x}
        other: {script: x}
        """,
        got=lambda p: [(j.name, j.stage) for j in p.jobs],
        want=[("job", "build"), ("other", "test")],
    ),
    Case(
        "job/image",
        SUPPORTED,
        """
        variables: {PY: "3.12"}
        job: {image: "python:$PY", script: x}
        """,
        got=lambda p: job(p).image,
        want="python:3.12",
    ),
    Case(
        "job/image:name",
        SUPPORTED,
        "job: {image: {name: python:3.12}, script: x}\n",
        got=lambda p: job(p).image,
        want="python:3.12",
    ),
    Case(
        "job/image:entrypoint",
        SUPPORTED,
        'job: {image: {name: x, entrypoint: [""]}, script: x}\n',
        got=lambda p: job(p).image_entrypoint,
        want=[""],
    ),
    Case(
        "job/image:pull_policy",
        SUPPORTED,
        "job: {image: {name: x, pull_policy: [always, if-not-present]}, script: x}\n",
        got=lambda p: job(p).pull_policy,
        want=["always", "if-not-present"],
    ),
    Case(
        "job/image:docker, image:kubernetes",
        IGNORED,
        """
        job:
          image:
            name: x
            docker: {platform: arm64/v8, user: dave}
            kubernetes: {user: "1001"}
          script: x
        """,
        ignored=("image:docker", "image:kubernetes"),
    ),
    Case(
        "job/services",
        SUPPORTED,
        "job: {services: [postgres:16], script: x}\n",
        got=lambda p: [s.name for s in job(p).services],
        want=["postgres:16"],
    ),
    Case(
        "job/services:name, services:alias, services:entrypoint, services:command, "
        "services:variables",
        SUPPORTED,
        """
        job:
          services:
            - name: postgres:16
              alias: db
              entrypoint: [docker-entrypoint.sh]
              command: [postgres, -c, fsync=off]
              variables: {POSTGRES_DB: test}
          script: x
        """,
        got=lambda p: [s.model_dump() for s in job(p).services],
        want=[
            {
                "name": "postgres:16",
                "alias": "db",
                "entrypoint": ["docker-entrypoint.sh"],
                "command": ["postgres", "-c", "fsync=off"],
                "variables": {"POSTGRES_DB": "test"},
                "pull_policy": [],
            }
        ],
    ),
    Case(
        "job/services:pull_policy",
        SUPPORTED,
        "job: {services: [{name: redis:7, pull_policy: never}], script: x}\n",
        got=lambda p: [s.pull_policy for s in job(p).services],
        want=[["never"]],
    ),
    Case(
        "job/services:docker, services:kubernetes",
        IGNORED,
        """
        job:
          services:
            - name: postgres:16
              docker: {platform: arm64/v8}
              kubernetes: {user: "1001"}
          script: x
        """,
        ignored=("services:docker", "services:kubernetes"),
    ),
    Case(
        "job/variables",
        SUPPORTED,
        """
        variables: {GIT_DEPTH: "10", URL: "http://$HOST"}
        job:
          variables: {GIT_DEPTH: "1", HOST: example.com}
          script: x
        """,
        got=lambda p: job(p).variables,
        want={"GIT_DEPTH": "1", "URL": "http://example.com", "HOST": "example.com"},
    ),
    Case(
        "job/rules",
        SUPPORTED,
        """
        job: {rules: [{if: $CI_COMMIT_BRANCH == "main"}], script: x}
        other: {rules: [{if: $CI_COMMIT_BRANCH == "dev"}], script: x}
        """,
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "job/rules:if",
        SUPPORTED,
        """
        job:
          rules: [{if: '$CI_COMMIT_TAG =~ /^v\\d+/i && ($X == null || $X != "1")'}]
          script: x
        other:
          rules: [{if: '$CI_COMMIT_TAG !~ /^V\\d+/'}]
          script: x
        """,
        context=GitlabContext(branch=None, tag="V2"),
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "job/rules:exists",
        SUPPORTED,
        """
        variables: {DIR: docker}
        job: {rules: [{exists: [$DIR/Dockerfile]}], script: x}
        other: {rules: [{exists: [Gemfile]}], script: x}
        """,
        files={"docker/Dockerfile": "FROM alpine\n"},
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "job/rules:exists:paths",
        SUPPORTED,
        """
        job: {rules: [{exists: {paths: [Gemfile]}}], script: x}
        other: {rules: [{exists: {paths: [setup.py]}}], script: x}
        """,
        files={"Gemfile": "source 'x'\n"},
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "job/rules:exists:project",
        REFUSED,
        """
        job:
          rules: [{exists: {paths: [Gemfile], project: group/other}}]
          script: x
        """,
        error=".gitlab-ci.yml:2:39: job 'job': rules:exists:project needs a GitLab server; "
        "cicd sees this repository only",
    ),
    Case(
        "job/rules:exists:ref",
        IGNORED,
        """
        job:
          rules: [{exists: {paths: [Gemfile], ref: main}}]
          script: x
        """,
        files={"Gemfile": "source 'x'\n"},
        ignored=("rules:exists:ref",),
    ),
    Case(
        "job/rules:changes",
        SUPPORTED,
        "job: {rules: [{changes: [src/**/*]}], script: x}\n",
        got=lambda p: [(j.name, j.run) for j in p.jobs],
        want=[("job", True)],
    ),
    Case(
        "job/rules:changes:paths, rules:changes:compare_to",
        SUPPORTED,
        """
        job:
          rules: [{changes: {paths: [src/**/*], compare_to: refs/heads/main}}]
          script: x
        """,
        got=lambda p: [(j.name, j.run) for j in p.jobs],
        want=[("job", True)],
    ),
    Case(
        "job/rules:when",
        SUPPORTED,
        """
        job: {rules: [{if: $CI_COMMIT_BRANCH, when: manual}], script: x}
        never: {rules: [{when: never}], script: x}
        """,
        got=lambda p: [(j.name, j.when, j.run) for j in p.jobs],
        want=[("job", "manual", False), ("never", "never", False)],
    ),
    Case(
        "job/rules:allow_failure",
        SUPPORTED,
        """
        job:
          allow_failure: false
          rules: [{when: on_success, allow_failure: true}]
          script: x
        """,
        got=lambda p: job(p).allow_failure,
        want=True,
    ),
    Case(
        "job/rules:variables",
        SUPPORTED,
        """
        job:
          variables: {DEPLOY: "0", KEEP: k}
          rules: [{variables: {DEPLOY: "1"}}]
          script: x
        """,
        got=lambda p: job(p).variables,
        want={"DEPLOY": "1", "KEEP": "k"},
    ),
    Case(
        "job/rules:needs",
        SUPPORTED,
        """
        build: {stage: build, script: x}
        lint: {stage: build, script: x}
        job:
          needs: [lint]
          rules: [{needs: [build]}]
          script: x
        """,
        got=lambda p: (job(p).needs, job(p).dag),
        want=(["build"], True),
    ),
    Case(
        "job/rules:start_in",
        PARSED,
        """
        job:
          rules: [{when: delayed, start_in: 30 minutes}]
          script: x
        """,
        got=lambda p: (job(p).when, job(p).start_in),
        want=("delayed", 1800.0),
    ),
    Case(
        "job/rules:interruptible",
        SUPPORTED,
        """
        job:
          interruptible: false
          rules: [{interruptible: true}]
          script: x
        """,
        got=lambda p: job(p).interruptible,
        want=True,
    ),
    Case(
        "job/only, except",
        SUPPORTED,
        """
        job: {only: [main, tags], script: x}
        other: {except: [main], script: x}
        plain: {script: x}
        """,
        got=lambda p: running(p),
        want=["job", "plain"],
    ),
    Case(
        "job/only:refs, except:refs",
        SUPPORTED,
        """
        job: {only: {refs: [branches]}, except: {refs: [/^wip-/]}, script: x}
        wip: {only: {refs: ["/^wip-/@group/project"]}, script: x}
        fork: {only: {refs: ["/^wip-/@someone/project"]}, script: x}
        tags: {only: {refs: [tags, schedules]}, script: x}
        """,
        context=GitlabContext(branch="wip-1", project_path="group/project"),
        got=lambda p: running(p),
        want=["wip"],
    ),
    Case(
        "job/only:variables, except:variables",
        SUPPORTED,
        """
        variables: {RELEASE: "1"}
        job: {only: {variables: [$RELEASE]}, script: x}
        other: {except: {variables: ['$RELEASE == "1"']}, script: x}
        """,
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "job/only:changes, except:changes",
        SUPPORTED,
        """
        job: {only: {changes: [src/**/*]}, script: x}
        other: {except: {changes: [docs/**/*]}, script: x}
        """,
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "job/only:kubernetes, except:kubernetes",
        SUPPORTED,
        """
        job: {only: {kubernetes: active}, script: x}
        other: {except: {kubernetes: active}, script: x}
        """,
        got=lambda p: running(p),
        want=["other"],
    ),
    Case(
        "job/when",
        SUPPORTED,
        """
        job: {when: manual, script: x}
        never: {when: never, script: x}
        plain: {script: x}
        """,
        got=lambda p: [(j.name, j.when, j.allow_failure, j.run) for j in p.jobs],
        want=[
            ("job", "manual", True, False),
            ("never", "never", False, False),
            ("plain", "on_success", False, True),
        ],
    ),
    Case(
        "job/when: on_failure, when: always",
        SUPPORTED,
        """
        job: {when: on_failure, script: x}
        other: {when: always, script: x}
        """,
        got=lambda p: [(j.name, j.when) for j in p.jobs],
        want=[("job", "on_failure"), ("other", "always")],
    ),
    Case(
        "job/when: delayed",
        PARSED,
        "job: {when: delayed, start_in: 1 hour, script: x}\n",
        got=lambda p: (job(p).when, job(p).start_in),
        want=("delayed", 3600.0),
    ),
    Case(
        "job/start_in",
        PARSED,
        "job: {when: delayed, start_in: 30 minutes, script: x}\n",
        got=lambda p: job(p).start_in,
        want=1800.0,
    ),
    Case(
        "job/allow_failure",
        SUPPORTED,
        """
        job: {allow_failure: true, script: x}
        manual: {when: manual, allow_failure: false, script: x}
        """,
        got=lambda p: [(j.name, j.allow_failure) for j in p.jobs],
        want=[("job", True), ("manual", False)],
    ),
    Case(
        "job/allow_failure:exit_codes",
        SUPPORTED,
        "job: {allow_failure: {exit_codes: [137, 255]}, script: x}\n",
        got=lambda p: job(p).allow_failure_exit_codes,
        want=[137, 255],
    ),
    Case(
        "job/needs",
        SUPPORTED,
        """
        build: {stage: build, script: x}
        lint: {stage: build, script: x}
        job: {stage: deploy, needs: [build], script: x}
        """,
        got=lambda p: (job(p).needs, job(p).dag, plan_pipeline(p).after["job"]),
        want=(["build"], True, ["build"]),
    ),
    Case(
        "job/needs:job, needs:optional",
        SUPPORTED,
        """
        build: {stage: build, script: x}
        lint: {stage: build, script: x, rules: [{when: never}]}
        job: {needs: [{job: build}, {job: lint, optional: true}], script: x}
        """,
        got=lambda p: job(p).needs,
        want=["build"],
    ),
    Case(
        "job/needs:parallel, needs:parallel:matrix",
        SUPPORTED,
        """
        test:
          stage: build
          parallel: {matrix: [{OS: [linux, mac]}]}
          script: x
        job: {needs: [{job: test, parallel: {matrix: [{OS: linux}]}}], script: x}
        """,
        got=lambda p: job(p).needs,
        want=["test: [linux]"],
    ),
    Case(
        "job/needs:artifacts",
        SUPPORTED,
        """
        build: {stage: build, script: x}
        lint: {stage: build, script: x}
        job: {needs: [{job: build, artifacts: false}, {job: lint, artifacts: true}], script: x}
        """,
        got=lambda p: (job(p).needs, job(p).needs_without_artifacts),
        want=(["build", "lint"], ["build"]),
    ),
    Case(
        "job/needs:pipeline, needs:project, needs:ref",
        REFUSED,
        """
        job:
          needs:
            - {pipeline: $PARENT_PIPELINE_ID, job: build}
            - {project: group/other, job: build, ref: main, artifacts: true}
          script: x
        build: {stage: build, script: x}
        """,
        error=".gitlab-ci.yml:3:8: job 'job': needs:pipeline needs a GitLab server\n"
        ".gitlab-ci.yml:4:8: job 'job': needs:project needs a GitLab server",
    ),
    Case(
        "job/dependencies",
        SUPPORTED,
        """
        build: {stage: build, script: x}
        job: {stage: deploy, dependencies: [build], script: x}
        """,
        got=lambda p: job(p).dependencies,
        want=["build"],
    ),
    Case(
        "job/parallel",
        SUPPORTED,
        "job: {parallel: 3, script: x}\n",
        got=lambda p: [(j.name, j.node_index, j.node_total) for j in p.jobs],
        want=[("job 1/3", 1, 3), ("job 2/3", 2, 3), ("job 3/3", 3, 3)],
    ),
    Case(
        "job/parallel:matrix",
        SUPPORTED,
        """
        job:
          parallel: {matrix: [{PY: ["3.11", "3.12"], OS: linux}]}
          script: x
        """,
        got=lambda p: [(j.name, j.variables) for j in p.jobs],
        want=[
            (
                "job: [3.11, linux]",
                {"PY": "3.11", "OS": "linux", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"},
            ),
            (
                "job: [3.12, linux]",
                {"PY": "3.12", "OS": "linux", "CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"},
            ),
        ],
    ),
    Case(
        "job/cache",
        SUPPORTED,
        "job: {cache: {key: gems, paths: [vendor/]}, script: x}\n",
        got=lambda p: [(c.key, c.paths) for c in job(p).cache],
        want=[("gems", ["vendor/"])],
    ),
    Case(
        "job/cache:key, cache:key:files, cache:key:prefix, cache:paths, cache:policy, "
        "cache:when, cache:untracked, cache:fallback_keys",
        SUPPORTED,
        """
        job:
          cache:
            - key: {files: [Gemfile.lock], prefix: ruby}
              paths: [vendor/]
              policy: pull
              when: always
              untracked: true
              fallback_keys: [main-gems]
            - {key: npm, paths: [node_modules/]}
          script: x
        """,
        got=lambda p: [c.model_dump() for c in job(p).cache],
        want=[
            {
                "key": "default",
                "key_files": ["Gemfile.lock"],
                "key_prefix": "ruby",
                "paths": ["vendor/"],
                "policy": "pull",
                "when": "always",
                "untracked": True,
                "fallback_keys": ["main-gems"],
            },
            {
                "key": "npm",
                "key_files": [],
                "key_prefix": None,
                "paths": ["node_modules/"],
                "policy": "pull-push",
                "when": "on_success",
                "untracked": False,
                "fallback_keys": [],
            },
        ],
    ),
    Case(
        "job/cache:unprotect",
        IGNORED,
        "job: {cache: {key: gems, paths: [vendor/], unprotect: true}, script: x}\n",
        ignored=("cache:unprotect",),
    ),
    Case(
        "job/artifacts",
        SUPPORTED,
        "job: {artifacts: {paths: [dist/]}, script: x}\n",
        got=lambda p: job(p).artifacts,
        want=["dist/"],
    ),
    Case(
        "job/artifacts:paths",
        SUPPORTED,
        'job: {artifacts: {paths: ["dist/*.whl", build/]}, script: x}\n',
        got=lambda p: job(p).artifacts,
        want=["dist/*.whl", "build/"],
    ),
    Case(
        "job/artifacts:exclude, artifacts:untracked, artifacts:when",
        SUPPORTED,
        """
        job:
          artifacts: {when: always, untracked: true, paths: [log/], exclude: [log/*.tmp]}
          script: x
        """,
        got=lambda p: (
            job(p).artifacts_options.exclude,
            job(p).artifacts_options.untracked,
            job(p).artifacts_options.when,
        ),
        want=(["log/*.tmp"], True, "always"),
    ),
    Case(
        "job/artifacts:reports",
        SUPPORTED,
        """
        job:
          artifacts: {reports: {junit: [report.xml, more.xml], dotenv: build.env}}
          script: x
        """,
        got=lambda p: job(p).artifacts_options.reports,
        want={"junit": ["report.xml", "more.xml"], "dotenv": ["build.env"]},
    ),
    Case(
        "job/artifacts:expire_in",
        SUPPORTED,
        "job: {artifacts: {paths: [dist/], expire_in: 1 week}, script: x}\n",
        got=lambda p: job(p).artifacts_options.expire_in,
        want="1 week",
    ),
    Case(
        "job/artifacts:name",
        SUPPORTED,
        "job: {artifacts: {paths: [dist/], name: dist}, script: x}\n",
        got=lambda p: (job(p).artifacts_options.name, p.ignored),
        want=("dist", []),
    ),
    Case(
        "job/artifacts:expose_as, artifacts:public, artifacts:access",
        IGNORED,
        """
        job:
          artifacts:
            paths: [dist/]
            name: dist
            expose_as: the dist
            public: false
            access: developer
          script: x
        """,
        ignored=("artifacts:expose_as", "artifacts:public", "artifacts:access"),
    ),
    Case(
        "job/retry",
        SUPPORTED,
        "job: {retry: 2, script: x}\n",
        got=lambda p: job(p).retry,
        want=2,
    ),
    Case(
        "job/retry:max",
        SUPPORTED,
        "job: {retry: {max: 2, when: script_failure}, script: x}\n",
        got=lambda p: job(p).retry,
        want=2,
    ),
    Case(
        "job/retry:when",
        SUPPORTED,
        "job: {retry: {max: 1, when: [script_failure, api_failure]}, script: x}\n",
        got=lambda p: job(p).retry_when,
        want=["script_failure", "api_failure"],
    ),
    Case(
        "job/retry:exit_codes",
        IGNORED,
        "job: {retry: {max: 1, exit_codes: [137]}, script: x}\n",
        ignored=("retry:exit_codes",),
    ),
    Case(
        "job/timeout",
        SUPPORTED,
        """
        job: {timeout: 3h 30m, script: x}
        other: {timeout: "3600", script: x}
        """,
        got=lambda p: [(j.name, j.timeout) for j in p.jobs],
        want=[("job", 12600.0), ("other", 3600.0)],
    ),
    Case(
        "job/interruptible",
        SUPPORTED,
        "job: {interruptible: true, script: x}\n",
        got=lambda p: job(p).interruptible,
        want=True,
    ),
    Case(
        "job/extends",
        SUPPORTED,
        """
        .ruby: {image: ruby:3.3, variables: {A: a, B: b}}
        .tests: {variables: {B: tests}, script: rake}
        job: {extends: [.ruby, .tests], variables: {C: c}}
        """,
        got=lambda p: (job(p).image, job(p).script, job(p).variables),
        want=("ruby:3.3", ["rake"], {"A": "a", "B": "tests", "C": "c"}),
    ),
    Case(
        "job/inherit, inherit:default, inherit:variables",
        SUPPORTED,
        """
        default: {image: ruby:3.3, retry: 1}
        variables: {RAILS_ENV: test, OTHER: o}
        job:
          inherit: {default: [retry], variables: [RAILS_ENV]}
          script: x
        """,
        got=lambda p: (job(p).image, job(p).retry, job(p).variables),
        want=("docker.io/library/ubuntu:latest", 1, {"RAILS_ENV": "test"}),
    ),
    Case(
        "job/run",
        REFUSED,
        """
        job:
          run:
            - name: hello
              script: echo hello
        """,
        error=".gitlab-ci.yml:2:3: job 'job': 'script' is required (a job without 'trigger' "
        "runs a script)\n"
        ".gitlab-ci.yml:3:5: job 'job': 'run' (CI/CD steps) is not supported; use 'script'",
    ),
    Case(
        "job/trigger, trigger:project, trigger:include, trigger:branch, trigger:strategy, "
        "trigger:forward, trigger:inputs",
        IGNORED,
        """
        job:
          trigger:
            project: group/other
            branch: main
            strategy: depend
            forward: {yaml_variables: true, pipeline_variables: false}
        child:
          trigger:
            include: child.yml
            inputs: {stage: test}
        """,
        got=lambda p: [(j.name, j.run) for j in p.jobs],
        want=[("job", False), ("child", False)],
        ignored=("trigger",),
    ),
    Case(
        "job/tags",
        IGNORED,
        "job: {tags: [docker], script: x}\n",
        ignored=("tags",),
    ),
    Case(
        "job/environment",
        IGNORED,
        "job: {environment: {name: production}, script: x}\n",
        got=lambda p: job(p).environment,
        want="production",
        ignored=("environment",),
    ),
    Case(
        "job/environment:name, environment:url, environment:action, environment:on_stop, "
        "environment:auto_stop_in, environment:kubernetes, environment:deployment_tier",
        IGNORED,
        """
        job:
          environment:
            name: review/$CI_COMMIT_REF_SLUG
            url: https://example.com
            action: start
            on_stop: stop
            auto_stop_in: 1 day
            kubernetes: {namespace: review}
            deployment_tier: development
          script: x
        stop: {environment: {name: review, action: stop}, when: manual, script: x}
        """,
        ignored=("environment",),
    ),
    Case(
        "job/coverage",
        IGNORED,
        "job: {coverage: '/TOTAL.*\\s(\\d+%)$/', script: x}\n",
        ignored=("coverage",),
    ),
    Case(
        "job/resource_group",
        IGNORED,
        "job: {resource_group: production, script: x}\n",
        ignored=("resource_group",),
    ),
    Case(
        "job/release, release:tag_name, release:name, release:description, release:ref, "
        "release:milestones, release:released_at, release:assets:links",
        IGNORED,
        """
        job:
          release:
            tag_name: $CI_COMMIT_TAG
            name: Release $CI_COMMIT_TAG
            description: CHANGELOG.md
            ref: $CI_COMMIT_SHA
            milestones: [m1]
            released_at: "2026-01-01T00:00:00Z"
            assets: {links: [{name: bin, url: "https://example.com/bin"}]}
          script: x
        """,
        ignored=("release",),
    ),
    Case(
        "job/pages (the keyword), pages:publish, pages:path_prefix, pages:expire_in, publish",
        IGNORED,
        """
        pages:
          pages: {publish: public, path_prefix: mr, expire_in: 1 week}
          script: x
        docs:
          publish: public
          script: x
        """,
        ignored=("pages", "publish"),
    ),
    Case(
        "job/id_tokens, id_tokens:aud",
        IGNORED,
        "job: {id_tokens: {TOKEN: {aud: https://x}}, script: x}\n",
        ignored=("id_tokens",),
    ),
    Case(
        "job/secrets, secrets:vault, secrets:gcp_secret_manager, secrets:azure_key_vault, "
        "secrets:file, secrets:token",
        IGNORED,
        """
        job:
          secrets:
            DB: {vault: db/pass@ops, file: false, token: $TOKEN}
            GCP: {gcp_secret_manager: {name: pass}, token: $TOKEN}
            AZ: {azure_key_vault: {name: pass}}
          script: x
        """,
        ignored=("secrets",),
    ),
    Case(
        "job/hooks, hooks:pre_get_sources_script",
        IGNORED,
        "job: {hooks: {pre_get_sources_script: [echo hi]}, script: x}\n",
        ignored=("hooks",),
    ),
    Case(
        "job/identity",
        IGNORED,
        "job: {identity: google_cloud, script: x}\n",
        ignored=("identity",),
    ),
    Case(
        "job/dast_configuration, dast_configuration:site_profile, "
        "dast_configuration:scanner_profile",
        IGNORED,
        """
        job:
          dast_configuration: {site_profile: site, scanner_profile: scanner}
          script: x
        """,
        ignored=("dast_configuration",),
    ),
    Case(
        "job/manual_confirmation",
        IGNORED,
        'job: {when: manual, manual_confirmation: "Deploy?", script: x}\n',
        ignored=("manual_confirmation",),
    ),
    # -- YAML features -------------------------------------------------------------------------
    Case(
        "yaml/anchors, aliases, << merge keys",
        SUPPORTED,
        """
        .base: &base {image: ruby:3.3, script: [rake]}
        job:
          <<: *base
          script: [rake test]
        """,
        got=lambda p: (job(p).image, job(p).script),
        want=("ruby:3.3", ["rake test"]),
    ),
    Case(
        "yaml/hidden jobs (.name:)",
        SUPPORTED,
        """
        .hidden: {script: x}
        job: {extends: .hidden}
        """,
        got=lambda p: running(p),
        want=["job"],
    ),
    Case(
        "yaml/!reference [.job, key, ...]",
        SUPPORTED,
        """
        .setup: {script: [cd app, [make]], variables: {A: a}}
        job:
          variables: {A: !reference [.setup, variables, A]}
          script: [!reference [.setup, script], make test]
        """,
        got=lambda p: (job(p).script, job(p).variables),
        want=(["cd app", "make", "make test"], {"A": "a"}),
    ),
]
# -- Predefined variables (CONTEXT: branch feature/X, commit SHA, pipeline #7) ----------------
TAG = GitlabContext(branch=None, tag="v1.0", commit=SHA)
CASES += [
    Case(
        "predefined/CI, GITLAB_CI",
        PREDEFINED,
        context=CONTEXT,
        want={"CI": "true", "GITLAB_CI": "true"},
        **predefined("CI", "GITLAB_CI"),
    ),
    Case(
        "predefined/CI_COMMIT_SHA, CI_COMMIT_SHORT_SHA",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_COMMIT_SHA": SHA, "CI_COMMIT_SHORT_SHA": "01234567"},
        **predefined("CI_COMMIT_SHA", "CI_COMMIT_SHORT_SHA"),
    ),
    Case(
        "predefined/CI_COMMIT_REF_NAME, CI_COMMIT_REF_SLUG",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_COMMIT_REF_NAME": "feature/X", "CI_COMMIT_REF_SLUG": "feature-x"},
        **predefined("CI_COMMIT_REF_NAME", "CI_COMMIT_REF_SLUG"),
    ),
    Case(
        "predefined/CI_COMMIT_BRANCH",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_COMMIT_BRANCH": "feature/X", "CI_COMMIT_TAG": None},
        **predefined("CI_COMMIT_BRANCH", "CI_COMMIT_TAG"),
    ),
    Case(
        "predefined/CI_COMMIT_TAG",
        PREDEFINED,
        context=TAG,
        want={"CI_COMMIT_TAG": "v1.0", "CI_COMMIT_BRANCH": None, "CI_COMMIT_REF_NAME": "v1.0"},
        **predefined("CI_COMMIT_TAG", "CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME"),
    ),
    Case(
        "predefined/CI_COMMIT_MESSAGE, CI_COMMIT_TITLE",
        PREDEFINED,
        context=CONTEXT,
        want={
            "CI_COMMIT_MESSAGE": "Fix the build\n\nLonger text.",
            "CI_COMMIT_TITLE": "Fix the build",
        },
        **predefined("CI_COMMIT_MESSAGE", "CI_COMMIT_TITLE"),
    ),
    Case(
        "predefined/CI_DEFAULT_BRANCH",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_DEFAULT_BRANCH": "main"},
        **predefined("CI_DEFAULT_BRANCH"),
    ),
    Case(
        "predefined/CI_PIPELINE_ID, CI_PIPELINE_IID, CI_PIPELINE_SOURCE",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_PIPELINE_ID": "7", "CI_PIPELINE_IID": "7", "CI_PIPELINE_SOURCE": "push"},
        **predefined("CI_PIPELINE_ID", "CI_PIPELINE_IID", "CI_PIPELINE_SOURCE"),
    ),
    Case(
        "predefined/CI_JOB_ID, CI_JOB_NAME, CI_JOB_NAME_SLUG, CI_JOB_STAGE",
        PREDEFINED,
        context=CONTEXT,
        want={
            "CI_JOB_ID": "1",
            "CI_JOB_NAME": "Unit Tests",
            "CI_JOB_NAME_SLUG": "unit-tests",
            "CI_JOB_STAGE": "build",
        },
        **predefined(
            "CI_JOB_ID",
            "CI_JOB_NAME",
            "CI_JOB_NAME_SLUG",
            "CI_JOB_STAGE",
            doc="Unit Tests: {stage: build, script: x}\n",
            name="Unit Tests",
        ),
    ),
    Case(
        "predefined/CI_NODE_INDEX",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"},
        **predefined(
            "CI_NODE_INDEX", "CI_NODE_TOTAL", doc="job: {parallel: 3, script: x}\n", name="job 2/3"
        ),
    ),
    Case(
        "predefined/CI_NODE_TOTAL",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_NODE_INDEX": None, "CI_NODE_TOTAL": "1"},
        **predefined("CI_NODE_INDEX", "CI_NODE_TOTAL"),
    ),
    Case(
        "predefined/CI_JOB_STATUS",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_JOB_STATUS": None},
        **predefined("CI_JOB_STATUS", doc="job: {script: x, after_script: [echo done]}\n"),
    ),
    Case(
        "predefined/CI_PROJECT_DIR",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_PROJECT_DIR": "/workspace"},
        **predefined("CI_PROJECT_DIR"),
    ),
    Case(
        "predefined/CI_PROJECT_NAME, CI_PROJECT_PATH, CI_PROJECT_PATH_SLUG",
        PREDEFINED,
        context=CONTEXT,
        want={
            "CI_PROJECT_NAME": "My Project",
            "CI_PROJECT_PATH": "group/My Project",
            "CI_PROJECT_PATH_SLUG": "group-my-project",
        },
        **predefined("CI_PROJECT_NAME", "CI_PROJECT_PATH", "CI_PROJECT_PATH_SLUG"),
    ),
    Case(
        "predefined/CI_REPOSITORY_URL",
        PREDEFINED,
        context=CONTEXT,
        want={"CI_REPOSITORY_URL": "https://example.com/group/project.git"},
        **predefined("CI_REPOSITORY_URL"),
    ),
]


def doc_rows() -> dict[str, str]:
    """Every row of docs/gitlab.md's keyword, YAML and predefined tables: row -> status."""
    rows: dict[str, str] = {}
    section = None
    for line in DOCS.read_text().splitlines():
        if line.startswith("## "):
            section = SECTIONS.get(line[3:].strip())
        elif section and line.startswith("| ") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            if cells[0] in ("keyword", "feature", "variable"):
                continue
            status = PREDEFINED if section == PREDEFINED else cells[1]
            rows[f"{section}/{cells[0].replace('`', '')}"] = status
    return rows


def params() -> list[object]:
    """``CASES`` as pytest params, the row as id, xfail where the row's claim is false today."""
    return [
        pytest.param(
            case,
            id=case.row,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [],
        )
        for case in CASES
    ]


def test_keyword_table_covers_every_row() -> None:
    """Each table row has exactly one case, with the row's status, and each case a row."""
    cases = {case.row: case.status for case in CASES}
    assert len(cases) == len(CASES)
    assert cases == doc_rows()


@pytest.mark.parametrize("case", params())
def test_keyword_table_row_holds(case: Case) -> None:
    """The row's status is what the front end does with its example."""
    if case.status == REFUSED or case.error is not None:
        assert case.error, "a refused row names its positioned message"
        with pytest.raises(PipelineInvalid) as raised:
            load(case)
        assert str(raised.value) == case.error
        return
    pipeline = load(case)
    if case.status == IGNORED:
        assert ignored_names(pipeline) == list(case.ignored)
    else:
        assert case.got is not None, "a supported, parsed or predefined row checks the model"
    if case.got is not None:
        assert case.got(pipeline) == case.want
