"""GitLab and GitHub webhooks over real HTTP: a signed push starts every pipeline of the pushed
commit of an allowed repository (a local bare repository named by a file:// URL), with
CI_PIPELINE_SOURCE set; a wrong signature, an unallowed repository, a branch delete, a repeated
delivery and an oversized body start nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from apikit import IMAGE, Api, git, make_repo
from pgkit import database_url  # noqa: F401  (a fixture: SQLite, then PostgreSQL)

from backend.requests import PreparedRun
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.source.bundles import make_bundle
from backend.webhooks import github_signature

SECRET = "hook-secret-1234"
GITLAB_CI = f"""\
image: {IMAGE}
on-push:
  script: [echo push]
  rules:
    - if: $CI_PIPELINE_SOURCE == "push"
on-merge-request:
  script: [echo merge request]
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
on-api:
  script: [echo api]
  rules:
    - if: $CI_PIPELINE_SOURCE == "api"
"""
ZEROS = "0" * 40


class Remote:
    """A bare repository under an allowed folder, and the work tree that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.work = make_repo(root / "work")
        (self.work / ".gitlab-ci.yml").write_text(GITLAB_CI)
        git(self.work, "add", ".")
        git(self.work, "commit", "-q", "-m", "gitlab file")
        self.bare = root / "allowed" / "proj.git"
        self.bare.parent.mkdir()
        git(root, "clone", "-q", "--bare", str(self.work), str(self.bare))
        self.url = self.bare.as_uri()

    def push(self, message: str = "change") -> str:
        """Commit a change, push it to ``main`` of the bare repository; the new commit's id."""
        (self.work / "README").write_text(message + "\n")
        git(self.work, "commit", "-q", "-am", message)
        git(self.work, "push", "-q", str(self.bare), "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    """A bare repository at ``tmp_path/allowed/proj.git`` with the demo pipeline and a
    ``.gitlab-ci.yml`` whose jobs depend on CI_PIPELINE_SOURCE."""
    return Remote(tmp_path)


@pytest.fixture
def hooked(start_api: Callable[..., Api], prefect_api: str, tmp_path: Path) -> Api:
    """A server with a webhook secret that may fetch ``tmp_path/allowed/*``, and a token."""
    return start_api(
        token="api-token", webhook_secret=SECRET, allowed_repos=f"{tmp_path.as_uri()}/allowed/*",
        runner=FakeRunner(outcomes={"unit": FakeOutcome(lines=["3 passed"])}),
    )


def github_push(url: str, commit: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    """The fields of a GitHub push event cicd reads."""
    return {"ref": ref, "before": "1" * 40, "after": commit, "deleted": commit == ZEROS,
            "repository": {"clone_url": url, "full_name": "team/proj"}}


def gitlab_push(url: str, commit: str) -> dict[str, Any]:
    """The fields of a GitLab push event cicd reads."""
    return {"object_kind": "push", "ref": "refs/heads/main", "before": "1" * 40,
            "after": commit, "checkout_sha": None if commit == ZEROS else commit,
            "project": {"git_http_url": url, "path_with_namespace": "team/proj"}}


def to_github(
    api: Api, payload: dict[str, Any], *, event: str = "push", delivery: str | None = None,
    secret: str = SECRET, body: bytes | None = None,
) -> httpx.Response:
    """Deliver ``payload`` as GitHub does: signed body, event and delivery headers, no token."""
    data = body if body is not None else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json", "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(data, secret),
    }
    with httpx.Client(base_url=api.api, timeout=60) as client:
        return client.post("/hooks/github", content=data, headers=headers)


def to_gitlab(
    api: Api, payload: dict[str, Any], *, event: str = "Push Hook", delivery: str | None = None,
    token: str = SECRET,
) -> httpx.Response:
    """Deliver ``payload`` as GitLab does: the secret in X-Gitlab-Token, no bearer token."""
    headers = {"X-Gitlab-Event": event, "X-Gitlab-Token": token,
               "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4())}
    with httpx.Client(base_url=api.api, timeout=60) as client:
        return client.post("/hooks/gitlab", json=payload, headers=headers)


def finished(api: Api, names: list[str]) -> None:
    """Wait until every run of ``names`` has finished executing."""
    launcher = api.app_state("launcher")
    for name in names:
        assert launcher.wait(name, 60), f"{name} did not finish"


def sources(api: Api) -> dict[str, str]:
    """CI_PIPELINE_SOURCE each GitLab job the runner ran was given, by job name."""
    runner = api.runner
    assert isinstance(runner, FakeRunner)
    return {call.spec.job: call.spec.env.get("CI_PIPELINE_SOURCE", "") for call in runner.calls
            if "CI_PIPELINE_SOURCE" in call.spec.env}


def recorded(api: Api) -> list[str]:
    """Every run the store holds, NAME#N."""
    return sorted(f"{r.pipeline}#{r.run}" for r in api.service.runs(None).runs)


def test_github_push_starts_every_pipeline_at_the_pushed_commit(
    hooked: Api, remote: Remote
) -> None:
    commit = remote.push()
    reply = to_github(hooked, github_push(remote.url, commit))
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert (body["provider"], body["event"], body["duplicate"]) == ("github", "push", False)
    assert sorted(body["runs"]) == ["demo#1", "proj#1"]
    finished(hooked, body["runs"])
    for name in body["runs"]:
        pipeline, number = name.split("#")
        run = hooked.service.run(pipeline, int(number))
        assert (run.commit, run.branch, run.status.value) == (commit, "main", "SUCCESS")
    assert sources(hooked) == {"on-push": "push"}  # the merge-request job's rule is false


def test_gitlab_push_with_token_starts_runs_without_a_bearer_token(
    hooked: Api, remote: Remote
) -> None:
    commit = remote.push()
    reply = to_gitlab(hooked, gitlab_push(remote.url, commit))
    assert reply.status_code == 202, reply.text
    finished(hooked, reply.json()["runs"])
    assert hooked.service.run("demo", 1).commit == commit
    with httpx.Client(base_url=hooked.api) as client:  # the rest of the API keeps its token
        assert client.get("/runs").status_code == 401


def test_gitlab_merge_request_runs_with_merge_request_event_source(
    hooked: Api, remote: Remote
) -> None:
    git(remote.work, "checkout", "-q", "-b", "feature")
    (remote.work / "feature.txt").write_text("new\n")
    git(remote.work, "add", ".")
    git(remote.work, "commit", "-q", "-m", "feature")
    git(remote.work, "push", "-q", str(remote.bare), "HEAD:feature")
    commit = git(remote.work, "rev-parse", "HEAD")
    payload = {
        "object_kind": "merge_request",
        "project": {"git_http_url": remote.url},
        "object_attributes": {
            "action": "open", "source_branch": "feature", "target_branch": "main",
            "last_commit": {"id": commit}, "source": {"git_http_url": remote.url},
        },
    }
    reply = to_gitlab(hooked, payload, event="Merge Request Hook")
    assert reply.status_code == 202, reply.text
    finished(hooked, reply.json()["runs"])
    assert hooked.service.run("proj", 1).branch == "feature"
    assert sources(hooked) == {"on-merge-request": "merge_request_event"}


def test_github_bad_signature_is_401_and_records_nothing(hooked: Api, remote: Remote) -> None:
    commit = remote.push()
    payload = github_push(remote.url, commit)
    delivery = str(uuid.uuid4())
    wrong = to_github(hooked, payload, delivery=delivery, secret="not-the-secret")
    assert wrong.status_code == 401
    assert "X-Hub-Signature-256" in wrong.json()["detail"]
    data = json.dumps(payload).encode()
    with httpx.Client(base_url=hooked.api) as client:
        unsigned = client.post("/hooks/github", content=data, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
        })
        tampered = client.post("/hooks/github", content=data.replace(b"main", b"mainx"), headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": github_signature(data, SECRET),
        })
    assert (unsigned.status_code, tampered.status_code) == (401, 401)
    assert recorded(hooked) == []
    assert hooked.runner.calls == []  # type: ignore[attr-defined]
    # the refused deliveries were not remembered: the genuine one with that id runs
    genuine = to_github(hooked, payload, delivery=delivery)
    assert genuine.status_code == 202, genuine.text
    finished(hooked, genuine.json()["runs"])


def test_gitlab_wrong_token_is_401_and_records_nothing(hooked: Api, remote: Remote) -> None:
    reply = to_gitlab(hooked, gitlab_push(remote.url, remote.push()), token="guess")
    assert reply.status_code == 401
    assert reply.json()["detail"] == (
        "missing or wrong X-Gitlab-Token: it must be the webhook's secret"
    )
    assert recorded(hooked) == []


def test_hook_repeated_delivery_is_a_duplicate_not_a_second_run(
    start_api: Callable[..., Api], prefect_api: str, tmp_path: Path, remote: Remote,
    database_url: str | None,  # noqa: F811
) -> None:
    hooked = start_api(
        webhook_secret=SECRET, allowed_repos=f"{tmp_path.as_uri()}/allowed/*",
        database_url=database_url,
    )
    payload = github_push(remote.url, remote.push())
    first = to_github(hooked, payload, delivery="d-1")
    assert first.status_code == 202, first.text
    finished(hooked, first.json()["runs"])
    again = to_github(hooked, payload, delivery="d-1")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert sorted(again.json()["runs"]) == sorted(first.json()["runs"])
    assert recorded(hooked) == ["demo#1", "proj#1"]
    # GitHub's signature does not cover the delivery id: the same signed body replayed under a
    # new id is caught by its hash
    replayed = to_github(hooked, payload, delivery="d-2")
    assert (replayed.status_code, replayed.json()["duplicate"]) == (200, True)
    assert sorted(replayed.json()["runs"]) == sorted(first.json()["runs"])
    assert recorded(hooked) == ["demo#1", "proj#1"]


def test_hook_delivery_is_remembered_after_a_restart(
    start_api: Callable[..., Api], prefect_api: str, tmp_path: Path, remote: Remote
) -> None:
    options = {"webhook_secret": SECRET, "allowed_repos": f"{tmp_path.as_uri()}/allowed/*"}
    first_server = start_api(**options)
    payload = gitlab_push(remote.url, remote.push())
    first = to_gitlab(first_server, payload, delivery="same-uuid")
    assert first.status_code == 202, first.text
    finished(first_server, first.json()["runs"])
    first_server.stop()
    second_server = start_api(**options)  # the same CICD_HOME, so the same store
    again = to_gitlab(second_server, payload, delivery="same-uuid")
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert recorded(second_server) == ["demo#1", "proj#1"]


def test_hook_repository_not_allowed_is_403_and_records_nothing(
    hooked: Api, tmp_path: Path
) -> None:
    other = Remote(tmp_path / "elsewhere")
    reply = to_github(hooked, github_push(other.url, other.push()))
    assert reply.status_code == 403
    assert "not among the repositories this server may fetch" in reply.json()["detail"]
    escape = f"{tmp_path.as_uri()}/allowed/../elsewhere/allowed/proj.git"
    assert to_github(hooked, github_push(escape, other.push("x"))).status_code == 403
    assert recorded(hooked) == []
    assert not (hooked.settings.home / "repos").exists() or not any(
        (hooked.settings.home / "repos").iterdir()
    )


def test_hook_branch_delete_starts_nothing(hooked: Api, remote: Remote) -> None:
    github = to_github(hooked, github_push(remote.url, ZEROS))
    gitlab = to_gitlab(hooked, gitlab_push(remote.url, ZEROS))
    for reply in (github, gitlab):
        assert reply.status_code == 200, reply.text
        assert reply.json()["runs"] == []
        assert reply.json()["ignored"] == "refs/heads/main was deleted: nothing to run"
    tag = to_github(hooked, github_push(remote.url, remote.push(), ref="refs/tags/v1"))
    assert (tag.status_code, tag.json()["runs"]) == (200, [])
    assert recorded(hooked) == []


def test_hook_ping_and_other_events_start_nothing(hooked: Api, remote: Remote) -> None:
    reply = to_github(hooked, {"zen": "Keep it logically awesome."}, event="ping")
    assert (reply.status_code, reply.json()["ignored"]) == (200, "'ping' events start nothing")
    closed = to_github(hooked, {"action": "closed"}, event="pull_request")
    assert (closed.status_code, closed.json()["runs"]) == (200, [])
    assert recorded(hooked) == []


def test_hook_oversized_body_is_413(
    start_api: Callable[..., Api], tmp_path: Path, remote: Remote
) -> None:
    api = start_api(webhook_secret=SECRET, max_upload_bytes=4096,
                    allowed_repos=f"{tmp_path.as_uri()}/allowed/*")
    payload = {**github_push(remote.url, remote.push()), "padding": "x" * 8192}
    reply = to_github(api, payload)
    assert reply.status_code == 413
    assert reply.json()["detail"] == "the delivery is larger than the server takes (4096 bytes)"
    # the same without Content-Length (chunked): refused while reading
    data = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
               "X-GitHub-Delivery": "chunked",
               "X-Hub-Signature-256": github_signature(data, SECRET)}
    with httpx.Client(base_url=api.api) as client:
        chunked = client.post("/hooks/github", content=iter([data[:3000], data[3000:]]),
                              headers=headers)
    assert chunked.status_code == 413
    assert recorded(api) == []


def test_hook_without_a_secret_is_404(start_api: Callable[..., Api], remote: Remote) -> None:
    api = start_api()
    reply = to_github(api, github_push(remote.url, remote.push()))
    assert reply.status_code == 404
    assert reply.json()["detail"] == (
        "webhooks are not enabled on this server (CICD_WEBHOOK_SECRET is unset)"
    )
    assert to_gitlab(api, gitlab_push(remote.url, remote.push("b"))).status_code == 404


def test_hook_malformed_payload_is_400(hooked: Api, remote: Remote) -> None:
    not_json = to_github(hooked, {}, body=b"{not json")
    assert (not_json.status_code, not_json.json()["detail"]) == (400, "the body is not JSON")
    no_commit = to_github(hooked, github_push(remote.url, "main"))
    assert no_commit.status_code == 400
    assert no_commit.json()["detail"] == "'after' is not a commit id"
    assert recorded(hooked) == []


def test_hook_unknown_commit_is_422_and_the_delivery_can_be_retried(
    hooked: Api, remote: Remote
) -> None:
    missing = "ab" * 20
    reply = to_github(hooked, github_push(remote.url, missing), delivery="retry-me")
    assert reply.status_code == 422, reply.text
    assert recorded(hooked) == []
    commit = remote.push()
    again = to_github(hooked, github_push(remote.url, commit), delivery="retry-me")
    assert again.status_code == 202, again.text
    finished(hooked, again.json()["runs"])


def test_hook_pipeline_file_invalid_is_listed_and_others_run(
    hooked: Api, remote: Remote
) -> None:
    (remote.work / ".pipelines" / "broken.yaml").write_text("pipeline: {name: broken}\njobs: 3\n")
    git(remote.work, "add", ".")
    commit = remote.push("with a broken file")
    reply = to_github(hooked, github_push(remote.url, commit))
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert sorted(body["runs"]) == ["demo#1", "proj#1"]
    assert [item["file"] for item in body["skipped"]] == [".pipelines/broken.yaml"]
    finished(hooked, body["runs"])


def test_submit_with_api_source_runs_the_api_rules(
    hooked: Api, remote: Remote, prepare: Callable[..., PreparedRun]
) -> None:
    """POST /runs: `cicd run` submits as push; a request naming source api gets api's jobs."""
    prepared = prepare(remote.work, file=".gitlab-ci.yml", pipeline_source="api")
    assert prepared.request.source == "api"
    assert [job.name for job in prepared.request.pipeline.jobs if job.run] == ["on-api"]
    with hooked.client("api-token") as client:
        reply = client.post(
            "/runs", data={"request": prepared.request.model_dump_json()},
            files={"bundle": ("b", make_bundle(prepared.source))},
        )
    assert reply.status_code == 202, reply.text
    finished(hooked, [reply.json()["name"]])
    assert sources(hooked) == {"on-api": "api"}
