"""Lists of runs and pipelines over real HTTP, a page at a time: ``GET /runs`` across pipelines
with filters, keyset cursors that see every run exactly once (also while runs are added), and
one-line refusals of bad cursors and limits. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from apikit import Api
from pgkit import database_url  # noqa: F401  (a fixture: SQLite, then PostgreSQL)
from sqlalchemy import update

from backend.schemas import Status
from backend.store.tables import pipeline_runs

STAGES = [("build", [("compile", "img", False)])]


@pytest.fixture
def paged(start_api: Callable[..., Api], database_url: str | None) -> Api:  # noqa: F811
    """A server whose store holds 13 runs of three pipelines (see ``fill``)."""
    api = start_api(database_url=database_url)
    fill(api)
    return api


def add_run(api: Api, pipeline: str, branch: str, status: Status, created: datetime) -> str:
    """Record one run straight in the server's store; its NAME#N."""
    store = api.service.store
    run_id, number = store.create_run(
        pipeline, STAGES, repo="r", branch=branch, commit="c" * 40, file="f",
        request_key=uuid.uuid4().hex,
    )
    store.set_run(run_id, status=status)
    with store._engine.begin() as connection:  # a submission time in the past
        connection.execute(
            update(pipeline_runs).where(pipeline_runs.c.id == run_id).values(created_at=created)
        )
    return f"{pipeline}#{number}"


BASE = datetime(2026, 1, 1, tzinfo=UTC)


def fill(api: Api) -> list[str]:
    """13 runs, oldest first: pipelines build/test/deploy in turn, branches main and dev,
    every third FAILED, one a day from 2026-01-01."""
    names = []
    for i in range(13):
        pipeline = ("build", "test", "deploy")[i % 3]
        status = Status.FAILED if i % 3 == 2 else Status.SUCCESS
        names.append(
            add_run(api, pipeline, "main" if i % 2 == 0 else "dev", status, BASE + timedelta(i))
        )
    return names


def get(api: Api, path: str, **params: Any) -> httpx.Response:
    """GET ``path`` of the API with ``params``."""
    with api.client() as client:
        return client.get(path, params=params)


def walk(
    api: Api, path: str, key: str, cursor: str | None = None, **params: Any
) -> tuple[list[str], int]:
    """Every item of a list from ``cursor`` on, following ``next``; (items as NAME#N or
    names, pages read)."""
    seen: list[str] = []
    pages = 0
    while True:
        reply = get(api, path, **params, **({"cursor": cursor} if cursor else {}))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        pages += 1
        seen += [
            f"{item['pipeline']}#{item['run']}" if key == "runs" else item["pipeline"]
            for item in body[key]
        ]
        cursor = body["next"]
        if cursor is None:
            return seen, pages
        assert pages < 100, "the cursor never ends"


def test_list_runs_without_pipeline_lists_every_pipeline_newest_first(paged: Api) -> None:
    body = get(paged, "/runs").json()
    names = [f"{r['pipeline']}#{r['run']}" for r in body["runs"]]
    assert names[:4] == ["build#5", "deploy#4", "test#4", "build#4"]
    assert len(names) == 13
    assert (body["pipeline"], body["next"]) == (None, None)


def test_list_runs_cursor_walk_sees_every_run_exactly_once(paged: Api) -> None:
    every = [f"{r['pipeline']}#{r['run']}" for r in get(paged, "/runs").json()["runs"]]
    seen, pages = walk(paged, "/runs", "runs", limit=4)
    assert seen == every
    assert pages == 4  # 4 + 4 + 4 + 1


def test_list_runs_cursor_walk_ignores_runs_added_meanwhile(paged: Api) -> None:
    first = get(paged, "/runs", limit=5).json()
    add_run(paged, "build", "main", Status.RUNNING, BASE)  # newer than every page's cursor
    rest, _ = walk(paged, "/runs", "runs", limit=5, cursor=first["next"])
    seen = [f"{r['pipeline']}#{r['run']}" for r in first["runs"]] + rest
    assert len(seen) == len(set(seen)) == 13
    assert "build#6" not in seen


def test_list_runs_filters_narrow_the_list(paged: Api) -> None:
    def names(**params: Any) -> list[str]:
        return walk(paged, "/runs", "runs", limit=2, **params)[0]

    assert names(pipeline="test") == ["test#4", "test#3", "test#2", "test#1"]
    assert names(status="FAILED") == ["deploy#4", "deploy#3", "deploy#2", "deploy#1"]
    assert names(branch="dev", pipeline="build") == ["build#4", "build#2"]
    since = (BASE + timedelta(days=10)).isoformat()
    assert names(since=since) == ["build#5", "deploy#4", "test#4"]
    assert names(since="2026-01-11T00:00:00") == ["build#5", "deploy#4", "test#4"]  # naive: UTC
    assert names(status="FAILED", branch="main", since=BASE.isoformat()) == [
        "deploy#3", "deploy#1"
    ]
    assert names(status="RUNNING") == []


def test_list_runs_unknown_pipeline_is_404_and_bad_filters_422(paged: Api) -> None:
    missing = get(paged, "/runs", pipeline="nope")
    assert (missing.status_code, missing.json()["detail"]) == (404, "no runs of pipeline 'nope'")
    assert get(paged, "/runs", status="DONE").status_code == 422
    assert get(paged, "/runs", since="yesterday").status_code == 422
    assert get(paged, "/runs", limit=0).status_code == 422
    assert get(paged, "/runs", limit=1001).status_code == 422


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "cGlwZWxpbmVzOmE",  # pipelines:a, a cursor of another list
        "cnVuczp4",  # runs:x
        "cnVuczo",  # runs:
        "cnVuczotMQ",  # runs:-1
        "cnVuczoxMDAwMDAwMDAwMDAwMDAwMDAwMDAw",  # runs:10**23
    ],
)
def test_list_runs_bad_cursor_is_one_line_400(paged: Api, cursor: str) -> None:
    reply = get(paged, "/runs", cursor=cursor)
    assert (reply.status_code, reply.json()["detail"]) == (
        400, "cursor: not a cursor of this list: pass the 'next' of the previous page"
    )


def test_list_runs_overlong_cursor_is_422(paged: Api) -> None:
    assert get(paged, "/runs", cursor="x" * 1300).status_code == 422


def test_pipeline_runs_route_pages_like_runs(paged: Api) -> None:
    seen, pages = walk(paged, "/pipelines/build/runs", "runs", limit=2)
    assert seen == ["build#5", "build#4", "build#3", "build#2", "build#1"]
    assert pages == 3
    whole = get(paged, "/pipelines/build/runs").json()
    assert (whole["pipeline"], len(whole["runs"]), whole["next"]) == ("build", 5, None)


def test_pipelines_route_pages_by_name(paged: Api) -> None:
    seen, pages = walk(paged, "/pipelines", "pipelines", limit=2)
    assert (seen, pages) == (["build", "deploy", "test"], 2)
    whole = get(paged, "/pipelines").json()
    assert [p["pipeline"] for p in whole["pipelines"]] == ["build", "deploy", "test"]
    assert whole["next"] is None
    assert whole["pipelines"][0]["runs"] == 5


def test_list_runs_remote_backend_follows_pages(paged: Api) -> None:
    backend = paged.backend()
    assert len(backend.runs(None).runs) == 13
    three = backend.runs(None, 3, status=Status.SUCCESS)
    assert [f"{r.pipeline}#{r.run}" for r in three.runs] == ["build#5", "test#4", "build#4"]
    since = backend.runs("deploy", since=BASE + timedelta(days=6))
    assert [r.run for r in since.runs] == [4, 3]
    assert len(backend.pipelines(2).pipelines) == 2
