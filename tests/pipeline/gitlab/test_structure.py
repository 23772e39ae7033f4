"""From a .gitlab-ci.yml and its includes to concrete jobs: defaults, hidden jobs, globals."""

from __future__ import annotations

import json
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.errors import PipelineInvalid
from backend.pipeline.gitlab.include import DictSource
from backend.pipeline.gitlab.structure import GitlabStructure, resolve_structure
from backend.pipeline.gitlab.tree import plain

MAIN = ".gitlab-ci.yml"


def structure(files: dict[str, str] | str) -> GitlabStructure:
    """Resolve ``files`` (or the text of .gitlab-ci.yml alone), each text dedented."""
    if isinstance(files, str):
        files = {MAIN: files}
    return resolve_structure(
        MAIN, DictSource({p: textwrap.dedent(t).lstrip("\n") for p, t in files.items()})
    )


def jobs(result: GitlabStructure) -> dict[str, object]:
    """The jobs as plain values."""
    return {name: plain(job) for name, job in result.jobs.items()}


def problems(result: GitlabStructure) -> list[str]:
    """The problem lines."""
    return [str(p) for p in result.problems]


def test_resolve_structure_hidden_and_global_keys_are_not_jobs():
    result = structure(
        """
        stages: [build, test]
        variables: {A: "1"}
        workflow: {rules: [{when: always}]}
        .hidden: {script: x}
        pages: {script: publish}
        build: {stage: build, script: make}
        """
    )
    assert problems(result) == []
    assert list(result.jobs) == ["pages", "build"]
    assert plain(result.stages) == ["build", "test"]
    assert plain(result.variables) == {"A": "1"}
    assert plain(result.workflow) == {"rules": [{"when": "always"}]}
    assert jobs(result)["build"] == {"stage": "build", "script": "make", "variables": {"A": "1"}}


def test_resolve_structure_types_are_stages_when_stages_absent():
    result = structure("types: [one]\njob: {script: x}\n")
    assert plain(result.stages) == ["one"]


def test_resolve_structure_default_applied_where_job_does_not_set_it():
    result = structure(
        """
        default:
          image: ruby
          before_script: [setup]
          retry: 2
          tags: [docker]
        a: {script: x}
        b: {script: x, image: alpine, tags: []}
        """
    )
    assert problems(result) == []
    assert jobs(result) == {
        "a": {
            "script": "x",
            "image": "ruby",
            "before_script": ["setup"],
            "retry": 2,
            "tags": ["docker"],
        },
        "b": {"script": "x", "image": "alpine", "tags": [], "before_script": ["setup"], "retry": 2},
    }


def test_resolve_structure_deprecated_globals_are_defaults():
    result = structure("image: ruby\nafter_script: [bye]\njob: {script: x}\n")
    assert problems(result) == []
    assert jobs(result) == {"job": {"script": "x", "image": "ruby", "after_script": ["bye"]}}


def test_resolve_structure_global_and_default_both_set_refused():
    result = structure("image: a\ndefault: {image: b}\njob: {script: x}\n")
    assert problems(result) == [
        ".gitlab-ci.yml:1:1: 'image' is set both at the top level and in default"
    ]


def test_resolve_structure_unknown_default_key():
    result = structure("default: {imag: a}\njob: {script: x}\n")
    assert problems(result) == [
        ".gitlab-ci.yml:1:11: unknown key 'imag' in default (did you mean 'image'?)"
    ]


def test_resolve_structure_inherit_default_false_and_list():
    result = structure(
        """
        default: {image: ruby, retry: 1, tags: [t]}
        variables: {A: "1", B: "2"}
        none:
          script: x
          inherit: {default: false, variables: false}
        some:
          script: x
          inherit: {default: [retry], variables: [B]}
        """
    )
    assert problems(result) == []
    assert jobs(result) == {
        "none": {"script": "x"},
        "some": {"script": "x", "retry": 1, "variables": {"B": "2"}},
    }


def test_resolve_structure_job_variables_win_over_globals():
    result = structure(
        """
        variables: {A: global, B: global}
        job: {script: x, variables: {B: job}}
        """
    )
    assert jobs(result)["job"] == {"script": "x", "variables": {"A": "global", "B": "job"}}


def test_resolve_structure_bad_inherit():
    result = structure(
        """
        default: {image: a}
        a: {script: x, inherit: {default: [imag]}}
        b: {script: x, inherit: yes}
        c: {script: x, inherit: {variables: 3}}
        """
    )
    assert problems(result) == [
        ".gitlab-ci.yml:2:36: job 'a': 'imag' cannot be inherited from default"
        " (did you mean 'image'?)",
        ".gitlab-ci.yml:3:25: job 'b': inherit must be a mapping, not 'yes'",
        ".gitlab-ci.yml:4:37: job 'c': inherit takes true, false or a list of names, not 3",
    ]


def test_resolve_structure_scripts_and_rules_flattened():
    result = structure(
        """
        .setup:
          script: [a, [b, [c]]]
        .rules:
          rules: [{if: $A}, {if: $B}]
        job:
          before_script: [!reference [.setup, script], d]
          script: !reference [.setup, script]
          rules:
            - !reference [.rules, rules]
            - when: never
        """
    )
    assert problems(result) == []
    assert jobs(result)["job"] == {
        "before_script": ["a", "b", "c", "d"],
        "script": ["a", "b", "c"],
        "rules": [{"if": "$A"}, {"if": "$B"}, {"when": "never"}],
    }


def test_resolve_structure_script_nested_more_than_ten_levels_refused():
    # GitLab's own example (spec/lib/gitlab/ci/config/entry/commands_spec.rb): 11 levels
    script = "[l0, " * 10 + "[l10]" + "]" * 10
    result = structure(f"job: {{script: {script}}}\n")
    assert problems(result) == [
        ".gitlab-ci.yml:1:65: job 'job': script nests lists more than 10 levels"
    ]


def test_resolve_structure_stages_flattened():
    result = structure(
        """
        .s: {stages: [build, test]}
        stages: [!reference [.s, stages], deploy]
        job: {script: x}
        """
    )
    assert problems(result) == []
    assert plain(result.stages) == ["build", "test", "deploy"]


def test_resolve_structure_workflow_rules_flattened():
    result = structure(
        """
        .r: {rules: [{if: $A}]}
        workflow: {rules: [!reference [.r, rules], {when: never}]}
        job: {script: x}
        """
    )
    assert plain(result.workflow) == {"rules": [{"if": "$A"}, {"when": "never"}]}


def test_resolve_structure_bad_jobs():
    result = structure(
        """
        a: [1]
        b: {stage: test}
        c: {trigger: other}
        d: {run: [{name: s, script: x}]}
        """
    )
    assert problems(result) == [
        ".gitlab-ci.yml:1:4: job 'a' must be a mapping, not a list",
        ".gitlab-ci.yml:2:1: job 'b' has no script, run or trigger",
    ]
    assert list(result.jobs) == ["c", "d"]


def test_resolve_structure_no_visible_job():
    result = structure(".a: {script: x}\n")
    assert problems(result) == [
        ".gitlab-ci.yml:1:1: no visible job: every job is hidden or there is none"
    ]


def test_resolve_structure_empty_file():
    assert problems(structure("# nothing\n")) == [
        ".gitlab-ci.yml:1:1: the file is empty: it defines no job"
    ]


def test_resolve_structure_all_steps_in_gitlab_order():
    # extends sees the included template; !reference sees the template once extended
    result = structure(
        {
            MAIN: """
                include: ci/templates.yml
                test:
                  extends: .python
                  script:
                    - !reference [.python, before_script]
                    - pytest
            """,
            "ci/templates.yml": """
                .base: {image: python, before_script: [pip install .]}
                .python: {extends: .base, variables: {PIP: quiet}}
            """,
        }
    )
    assert problems(result) == []
    assert jobs(result) == {
        "test": {
            "image": "python",
            "before_script": ["pip install ."],
            "variables": {"PIP": "quiet"},
            "script": ["pip install .", "pytest"],
        }
    }


def test_resolve_structure_problems_from_every_step_at_once():
    result = structure(
        {
            MAIN: """
                include: ci/a.yml
                job: {extends: .nope, script: !reference [.a, scrip]}
            """,
            "ci/a.yml": ".a: {script: x}\nbad: {extends: .zzz, script: y}\n",
        }
    )
    assert problems(result) == [
        ".gitlab-ci.yml:2:16: 'job' extends unknown '.nope'",
        ".gitlab-ci.yml:2:31: !reference [.a, scrip] could not be found:"
        " '.a' has no key 'scrip' (did you mean 'script'?)",
        "ci/a.yml:2:16: 'bad' extends unknown '.zzz'",
    ]


# A realistic file in the shape of a large Ruby project's pipeline: the root includes every
# file of .gitlab/ci/ by wildcard; templates combine YAML anchors, extends and !reference rules.
RAILS_APP = {
    MAIN: """
        stages: [prepare, test, post-test]
        workflow:
          rules:
            - if: $CI_MERGE_REQUEST_IID
            - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
        default:
          image: ruby:3.2
          tags: [gitlab-org]
          interruptible: true
        variables:
          RAILS_ENV: test
          BUNDLE_PATH: vendor
        include:
          - local: .gitlab/ci/rules.gitlab-ci.yml
          - local: '.gitlab/ci/jobs/*.gitlab-ci.yml'
    """,
    ".gitlab/ci/rules.gitlab-ci.yml": """
        .if-merge-request: &if-merge-request
          if: $CI_MERGE_REQUEST_IID
        .if-default-branch: &if-default-branch
          if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
        .rules:code:
          rules:
            - <<: *if-merge-request
              changes: ["app/**/*", "lib/**/*"]
            - *if-default-branch
        .rules:docs:
          rules:
            - <<: *if-merge-request
              changes: ["doc/**/*"]
    """,
    ".gitlab/ci/jobs/setup.gitlab-ci.yml": """
        .bundle:
          before_script:
            - bundle config set path vendor
            - bundle install --jobs 4
          cache:
            key: gems
            paths: [vendor/]
        setup-test-env:
          extends: .bundle
          stage: prepare
          script: [bin/setup]
          rules: [!reference [.rules:code, rules]]
    """,
    ".gitlab/ci/jobs/test.gitlab-ci.yml": """
        .rspec-base:
          extends: .bundle
          stage: test
          needs: [setup-test-env]
          variables: {RSPEC_FLAGS: --fail-fast}
          script:
            - !reference [.bundle, before_script]
            - bin/rspec $RSPEC_FLAGS
        rspec unit:
          extends: [.rspec-base, .rules:code]
          variables: {SUITE: unit}
        rspec docs-lint:
          extends: .rspec-base
          rules: !reference [.rules:docs, rules]
          image: ruby:3.2-slim
          inherit: {default: [tags], variables: [RAILS_ENV]}
        coverage:
          stage: post-test
          needs: ["rspec unit"]
          script: [bin/coverage]
          after_script: !reference [.bundle, before_script]
    """,
}


def test_resolve_structure_realistic_rails_app():
    result = structure(RAILS_APP)
    assert problems(result) == []
    assert list(result.jobs) == ["setup-test-env", "rspec unit", "rspec docs-lint", "coverage"]
    code_rules = [
        {"if": "$CI_MERGE_REQUEST_IID", "changes": ["app/**/*", "lib/**/*"]},
        {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"},
    ]
    bundle = ["bundle config set path vendor", "bundle install --jobs 4"]
    defaults = {"image": "ruby:3.2", "tags": ["gitlab-org"], "interruptible": True}
    got = jobs(result)
    assert got["setup-test-env"] == {
        "before_script": bundle,
        "cache": {"key": "gems", "paths": ["vendor/"]},
        "stage": "prepare",
        "script": ["bin/setup"],
        "rules": code_rules,
        **defaults,
        "variables": {"RAILS_ENV": "test", "BUNDLE_PATH": "vendor"},
    }
    assert got["rspec unit"] == {
        "before_script": bundle,
        "cache": {"key": "gems", "paths": ["vendor/"]},
        "stage": "test",
        "needs": ["setup-test-env"],
        "variables": {
            "RAILS_ENV": "test",
            "BUNDLE_PATH": "vendor",
            "RSPEC_FLAGS": "--fail-fast",
            "SUITE": "unit",
        },
        "script": [*bundle, "bin/rspec $RSPEC_FLAGS"],
        "rules": code_rules,
        **defaults,
    }
    assert got["rspec docs-lint"]["image"] == "ruby:3.2-slim"  # type: ignore[index]
    assert got["rspec docs-lint"]["tags"] == ["gitlab-org"]  # type: ignore[index]
    assert "interruptible" not in got["rspec docs-lint"]  # type: ignore[operator]
    assert got["rspec docs-lint"]["variables"] == {  # type: ignore[index]
        "RAILS_ENV": "test",
        "RSPEC_FLAGS": "--fail-fast",
    }
    assert got["rspec docs-lint"]["rules"] == [  # type: ignore[index]
        {"if": "$CI_MERGE_REQUEST_IID", "changes": ["doc/**/*"]}
    ]
    assert got["coverage"]["after_script"] == bundle  # type: ignore[index]
    assert plain(result.workflow) == {
        "rules": [
            {"if": "$CI_MERGE_REQUEST_IID"},
            {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"},
        ]
    }


# A realistic file in the shape of a C project's pipeline (a desktop application built for
# several distributions): hidden build templates, a matrix of jobs extending two templates,
# a pages job, anchors for scripts, and nested includes.
C_PROJECT = {
    MAIN: """
        include:
          - ci/build.yml
        stages: [build, test, deploy]
        variables:
          GIT_DEPTH: "1"
          MESON_ARGS: -Dtests=true
        .deps: &deps
          - apt-get update
          - apt-get install -y meson ninja-build
        .build:
          stage: build
          before_script: [*deps]
          script:
            - meson setup build $MESON_ARGS
            - ninja -C build
          artifacts: {paths: [build/], expire_in: 1 week}
        .debian: {image: "debian:12"}
        .ubuntu: {image: "ubuntu:24.04"}
        build:debian:
          extends: [.build, .debian]
        build:ubuntu:
          extends: [.build, .ubuntu]
          variables: {MESON_ARGS: -Dtests=false}
        test:debian:
          extends: .debian
          stage: test
          needs: [build:debian]
          script: [meson test -C build]
        pages:
          stage: deploy
          script: !reference [.docs, script]
          artifacts: {paths: [public]}
          rules: [{if: $CI_COMMIT_TAG}]
    """,
    "ci/build.yml": """
        include: ci/docs.yml
        .build:
          tags: [linux]
    """,
    "ci/docs.yml": """
        .docs:
          script:
            - ninja -C build docs
            - mv build/docs public
    """,
}


def test_resolve_structure_realistic_c_project():
    result = structure(C_PROJECT)
    assert problems(result) == []
    assert list(result.jobs) == ["build:debian", "build:ubuntu", "test:debian", "pages"]
    got = jobs(result)
    deps = ["apt-get update", "apt-get install -y meson ninja-build"]
    assert got["build:debian"] == {
        "tags": ["linux"],
        "stage": "build",
        "before_script": deps,
        "script": ["meson setup build $MESON_ARGS", "ninja -C build"],
        "artifacts": {"paths": ["build/"], "expire_in": "1 week"},
        "image": "debian:12",
        "variables": {"GIT_DEPTH": "1", "MESON_ARGS": "-Dtests=true"},
    }
    assert got["build:ubuntu"]["image"] == "ubuntu:24.04"  # type: ignore[index]
    assert got["build:ubuntu"]["variables"] == {  # type: ignore[index]
        "GIT_DEPTH": "1",
        "MESON_ARGS": "-Dtests=false",
    }
    assert got["pages"]["script"] == ["ninja -C build docs", "mv build/docs public"]  # type: ignore[index]
    assert plain(result.stages) == ["build", "test", "deploy"]


NAMES = ["a", "b", ".t", ".u", "default", "variables", "stages", "include", "image", "pages"]
KEYS = ["script", "extends", "image", "variables", "rules", "inherit", "needs", "default", "x"]


def scalar() -> st.SearchStrategy[str]:
    """Scalars as YAML text: JSON strings are YAML double-quoted strings."""
    return st.one_of(
        st.sampled_from(NAMES + KEYS + ["true", "null", "3", "a.yml", "*.yml", "[]", "{}"]),
        st.text(max_size=8).map(json.dumps),
    )


def value(depth: int = 3) -> st.SearchStrategy[str]:
    """A flow-style YAML value: scalars, lists, mappings and !reference tags."""
    if depth == 0:
        return scalar()
    inner = value(depth - 1)
    return st.one_of(
        scalar(),
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(KEYS + NAMES), inner), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"
        ),
        st.lists(st.sampled_from(NAMES + KEYS), max_size=3).map(
            lambda names: "!reference [" + ", ".join(json.dumps(n) for n in names) + "]"
        ),
    )


def document() -> st.SearchStrategy[str]:
    """A GitLab-ish document: top-level names to values, one per line."""
    return st.lists(st.tuples(st.sampled_from(NAMES), value()), max_size=6).map(
        lambda pairs: "".join(f"{json.dumps(k)}: {v}\n" for k, v in pairs)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    main=document(),
    a=st.one_of(document(), st.text(max_size=40)),
    b=document(),
)
def test_resolve_structure_fuzz_never_raises_unexpectedly(main: str, a: str, b: str) -> None:
    source = DictSource({MAIN: main, "a.yml": a, "b.yml": b})
    try:
        result = resolve_structure(MAIN, source)
    except PipelineInvalid as invalid:
        assert invalid.problems
        return
    for problem in result.problems:
        assert problem.file in (MAIN, "a.yml", "b.yml") and problem.line >= 1
    for job in result.jobs.values():
        plain(job)
