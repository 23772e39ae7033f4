"""The native format's job ``image`` mapping and ``services``, read as GitLab's keywords."""

from __future__ import annotations

from collections.abc import Callable

from backend.pipeline import Pipeline
from backend.pipeline.model import Service

Parse = Callable[..., Pipeline]
Problems = Callable[..., list[str]]
HEAD = "pipeline: {name: p, image: base:1}\njobs:\n"


def test_native_image_mapping_sets_entrypoint_and_pull_policy(parse: Parse) -> None:
    pipeline = parse(
        HEAD
        + "  - name: a\n    stage: test\n    script: x\n"
        + '    image: {name: tool:2, entrypoint: [""], pull_policy: [never, always]}\n'
        + "  - {name: b, stage: test, script: x}\n"
    )

    a, b = pipeline.job("a"), pipeline.job("b")
    assert (a.image, a.image_entrypoint, a.pull_policy) == ("tool:2", [""], ["never", "always"])
    assert (b.image, b.image_entrypoint, b.pull_policy) == ("base:1", None, [])


def test_native_services_strings_and_mappings(parse: Parse) -> None:
    pipeline = parse(
        HEAD
        + "  - name: a\n    stage: test\n    script: x\n    services:\n"
        + "      - redis:7\n"
        + "      - name: postgres:16\n"
        + "        alias: db\n"
        + "        entrypoint: [docker-entrypoint.sh]\n"
        + "        command: [postgres, -c, fsync=off]\n"
        + "        variables: {POSTGRES_PASSWORD: test, PORT: 5432, ON: true}\n"
        + "        pull_policy: if-not-present\n"
    )

    assert pipeline.job("a").services == [
        Service(name="redis:7"),
        Service(
            name="postgres:16",
            alias="db",
            entrypoint=["docker-entrypoint.sh"],
            command=["postgres", "-c", "fsync=off"],
            variables={"POSTGRES_PASSWORD": "test", "PORT": "5432", "ON": "true"},
            pull_policy=["if-not-present"],
        ),
    ]


def test_native_services_bad_entries_are_positioned_errors(problems: Problems) -> None:
    found = problems(
        HEAD
        + "  - name: a\n    stage: test\n    script: x\n    services:\n"
        + "      - 3\n"
        + "      - {alias: db}\n"
        + "      - {name: x, pull_policy: sometimes, port: 80}\n"
    )

    assert found == [
        "ci.yaml:7:9: job 'a': 'services' entries must be a non-empty string, not 3",
        "ci.yaml:8:9: job 'a': 'services' entry is missing required key 'name'",
        "ci.yaml:9:32: job 'a': 'services:pull_policy' must be one of always, "
        "if-not-present, never, not 'sometimes'",
        "ci.yaml:9:43: unknown key 'port' in job 'a': 'services' (allowed: name, alias, "
        "entrypoint, command, variables, pull_policy)",
    ]


def test_native_services_must_be_a_list(problems: Problems) -> None:
    found = problems(HEAD + "  - {name: a, stage: test, script: x, services: redis:7}\n")

    assert found == ["ci.yaml:3:49: job 'a': 'services' must be a list, not 'redis:7'"]


def test_native_image_and_services_names_expand_pipeline_then_job_variables(
    parse: Parse,
) -> None:
    pipeline = parse(
        "pipeline: {name: p, image: 'base:$TAG', variables: {REG: reg.local, TAG: '1'}}\n"
        "jobs:\n"
        "  - {name: a, stage: test, script: x, variables: {TAG: '2'},\n"
        "     services: ['$REG/db:${TAG}', {name: '$REG/cache:$NONE', alias: c}]}\n"
        "  - {name: b, stage: test, script: x, image: 'cost$$:$TAG'}\n"
    )

    a, b = pipeline.job("a"), pipeline.job("b")
    assert a.image == "base:2"  # the pipeline's image, with the job's TAG
    assert [s.name for s in a.services] == ["reg.local/db:2", "reg.local/cache:"]
    assert b.image == "cost$:1"
