"""Whatever a caller sends to any route, the answer is a 2xx or a 4xx with one line, never a 500.

Every route of the app (iterated from ``app.routes``) gets arbitrary path parameters (``/``,
``..``, NUL, huge numbers, unicode, percent-encodings), query strings and bodies (multipart,
urlencoded, raw). The app runs in-process over a ``FakeRunner``, with one finished run
(``demo#1``) so that existing names are among the targets too; it is served by uvicorn on
loopback, so what reaches it is what a real HTTP client can send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from apikit import make_repo, serve
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from starlette.routing import Route

from backend.api import create_app
from backend.events import EventHub
from backend.requests import prepare_run
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.service import Service
from backend.settings import Settings
from backend.source.bundles import make_bundle

SPECIAL = [
    "", "/", "..", "../..", "%2F", "%00", "\x00", "a/b", "demo", "compile", "README", "1", "0",
    "-1", str(10**30), str(2**63), "%", "%ZZ", "deploy/staging", "é", "\u202e", " ", "\n",
    "..%2F..%2Fetc%2Fpasswd", "true", "null", "{}", "[]",
]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
VALUE = st.one_of(
    st.sampled_from(SPECIAL), TEXT, st.integers(-(10**30), 10**30).map(str)
)
QUERY = st.dictionaries(
    st.one_of(st.sampled_from(["job", "path", "follow", "after", "pipeline"]), TEXT),
    VALUE, max_size=3,
)
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
BODY = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"data": st.dictionaries(st.sampled_from(["request", "x"]), VALUE)}),
    st.fixed_dictionaries({
        "data": st.fixed_dictionaries({"request": JSONISH.map(json.dumps)}),
        "files": st.fixed_dictionaries({"bundle": st.tuples(st.just("b"), st.binary(max_size=64))}),
    }),
    st.fixed_dictionaries({
        "content": st.binary(max_size=256),
        "headers": st.fixed_dictionaries({"Content-Type": st.sampled_from([
            "multipart/form-data; boundary=x", "multipart/form-data",
            "application/x-www-form-urlencoded", "application/json", "text/plain",
            "multipart/form-data; boundary=\x7f",
        ])}),
    }),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[httpx.Client]:
    """A client of the app served on loopback, after one successful run ``demo#1``."""
    tmp = tmp_path_factory.mktemp("fuzz")
    settings = Settings(home=tmp / "home")
    runner = FakeRunner(outcomes={"compile": FakeOutcome(lines=["compiling"])})
    service = Service(settings, runner=runner, mode="server")
    app = create_app(service, settings, hub=EventHub(), prefect_url=prefect_api)
    prepared = prepare_run(cwd=make_repo(tmp / "repo"), cache_dir=tmp / "cache")
    url, server, thread = serve(app)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            reply = client.post(
                "/api/v1/runs", data={"request": prepared.request.model_dump_json()},
                files={"bundle": ("b", make_bundle(prepared.source))},
            )
            assert reply.status_code == 202, reply.text
            assert client.get("/api/v1/runs/demo/1/events").text.strip()  # to its end
            yield client
    finally:
        server.should_exit = True
        thread.join(30)


def _routes() -> list[tuple[str, str]]:
    """(method, path template) of every route: the API's from its OpenAPI document (FastAPI
    keeps included routers nested), the documents' own from ``app.routes``."""
    app = create_app(Service(Settings(home=Path("/nonexistent"))), Settings(home=Path("/n")))
    found = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    for route in app.routes:
        if isinstance(route, Route):
            found += [(method, route.path) for method in sorted(route.methods or ()) if
                      method != "HEAD"]
    return found


ROUTES = _routes()


def test_fuzz_covers_every_route() -> None:
    paths = {path for _, path in ROUTES}
    # the API's operations (2 webhooks, flaky tests, 4 for workers, retry), /openapi.json, docs
    assert len(ROUTES) == 24 + 3
    assert "/api/v1/runs/{pipeline}/{number}/jobs/{job}/log" in paths


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_api_any_input_is_answered_without_a_500(
    client: httpx.Client, method: str, template: str, data: st.DataObject
) -> None:
    def fill(match: re.Match[str]) -> str:
        value = data.draw(VALUE, label=match.group(1))
        return quote(value, safe=data.draw(st.sampled_from(["", "/", "/%"]), label="safe"))

    url = re.sub(r"\{(\w+)(?::path)?\}", fill, template)
    params = data.draw(QUERY, label="query")
    body: dict[str, Any] = data.draw(BODY, label="body") if method == "POST" else {}
    try:
        reply = client.request(method, url, params=params, **body)
    except httpx.InvalidURL:
        reject()
    assert reply.status_code < 500, (url, params, reply.text)
    if reply.status_code >= 400:
        detail = reply.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail, detail
