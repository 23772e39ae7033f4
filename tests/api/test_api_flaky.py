"""``GET /api/v1/pipelines/{name}/flaky`` over real HTTP, and ``RemoteBackend.flaky``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from apikit import Api

from backend.errors import NotFound
from backend.service import Service
from cicd_cli.flaky import flaky_view
from cicd_cli.render import table_console


class FlakyService(Service):
    """``Service`` with ``flaky`` as the lead adds it to backend/service.py (delegating)."""

    def flaky(self, pipeline: str, last: int = 50):  # type: ignore[no-untyped-def]
        """The store's answer, as Service.flaky gives it."""
        return self.store.flaky_tests(pipeline, last)


SERVICE = Service if hasattr(Service, "flaky") else FlakyService


def history(api: Api, outcomes: list[str], commit: str = "c1") -> None:
    """Runs of pipeline ``demo`` whose job ``unit`` ran test ``t.maybe`` with ``outcomes``."""
    store = api.service.store
    for i, outcome in enumerate(outcomes):
        run_id, _ = store.create_run(
            "demo", [("test", [("unit", "busybox", False)])],
            repo="r", branch="main", commit=commit, file="f", request_key=f"k{i}",
        )  # fmt: skip
        store.add_test_cases(run_id, "unit", [("t.maybe", outcome), ("t.sure", "passed")])


@pytest.fixture
def flaky_api(start_api: Callable[..., Api]) -> Api:
    """A server whose service answers ``flaky``."""
    return start_api(service_class=SERVICE)


def test_flaky_route_lists_test_that_passed_and_failed(flaky_api: Api) -> None:
    history(flaky_api, ["passed", "failed", "passed"])

    with flaky_api.client() as client:
        reply = client.get("/pipelines/demo/flaky", params={"last": 10})

    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "pipeline": "demo", "last": 10, "runs": 3,
        "tests": [{"job": "unit", "name": "t.maybe", "passed": 2, "failed": 1, "flips": 2,
                   "same_commit": ["c1"], "last_run": 3, "last_outcome": "passed"}],
    }  # fmt: skip


def test_flaky_route_default_last_is_50(flaky_api: Api) -> None:
    history(flaky_api, ["passed"])

    with flaky_api.client() as client:
        assert client.get("/pipelines/demo/flaky").json()["last"] == 50


@pytest.mark.parametrize("last", ["0", "1001", "lots"])
def test_flaky_route_bad_last_422(flaky_api: Api, last: str) -> None:
    history(flaky_api, ["passed"])

    with flaky_api.client() as client:
        reply = client.get("/pipelines/demo/flaky", params={"last": last})

    assert reply.status_code == 422


def test_flaky_route_unknown_pipeline_404(flaky_api: Api) -> None:
    with flaky_api.client() as client:
        reply = client.get("/pipelines/nope/flaky")

    assert reply.status_code == 404
    assert "no runs of pipeline 'nope'" in reply.text


def test_remote_backend_flaky_same_as_store(flaky_api: Api) -> None:
    history(flaky_api, ["failed", "passed"])

    found = flaky_api.backend().flaky("demo", 5)

    assert found == flaky_api.service.store.flaky_tests("demo", 5)
    assert [t.name for t in found.tests] == ["t.maybe"]


def test_remote_backend_flaky_unknown_pipeline_not_found(flaky_api: Api) -> None:
    with pytest.raises(NotFound, match="no runs of pipeline 'ghost'"):
        flaky_api.backend().flaky("ghost")


def test_flaky_view_hostile_names_escaped(flaky_api: Api) -> None:
    store = flaky_api.service.store
    for i, outcome in enumerate(["passed", "failed"]):
        run_id, _ = store.create_run(
            "demo", [("test", [("unit", "busybox", False)])],
            repo="r", branch="main", commit="c1", file="f", request_key=f"h{i}",
        )  # fmt: skip
        store.add_test_cases(run_id, "unit", [("t.\x1b[31mred\x1b]0;x\x07", outcome)])
    console = table_console()

    with console.capture() as captured:
        console.print(flaky_view(store.flaky_tests("demo")))

    shown = captured.get()
    assert "\x1b" not in shown and "\x07" not in shown
    assert "flaky tests over the last 2 runs" in shown
