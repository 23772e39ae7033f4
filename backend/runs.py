"""The names of a run, and the small value types a request is made of.

A run is known by four things, each for one purpose:

=================  ===================================  =========================================
name               what it is                           who uses it
=================  ===================================  =========================================
``RunRequest``     what a user asks: pipeline (parsed,  the CLI builds it (``backend.requests``),
(backend/service)  jobs selected), file, repo, branch,  sends it to a server as JSON; the server
                   commit, overrides, env, secrets,     re-reads the committed file into a new one
                   ``--jobs``, ``--pull``, ``--force``
``RunRef``         what a user names: ``NAME#N``        CLI arguments, API paths, events, the
                   (pipeline and number)                Prefect flow run's name
run id             the store's primary key              the store, ``Recorder``, artifacts folder
run key            ``<home hash>-<run id>``             container labels and workspace folder
                   (``Service.run_key``)                (``JobSpec.run_id`` holds it), so whoever
                                                        settles a dead run finds what it left
=================  ===================================  =========================================

and by a fifth, which is not a name but a fingerprint: the *request key* (``Service.request_key``,
a hash of the redacted repo URL, commit, pipeline name, file text, overrides and selected jobs),
with which an identical run still open is found instead of starting a second one.

``Service.start`` turns a request and its ``Source`` into a ``Submission`` (its ``RunRef``, run
id and plan); ``Service.execute`` runs it; ``Store.settle_run`` ends it when it cannot end by
itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from backend.errors import UsageError


class PullPolicy(StrEnum):
    """When an image is pulled."""

    IF_NOT_PRESENT = "if-not-present"
    ALWAYS = "always"
    NEVER = "never"


class RunRef(NamedTuple):
    """A run as users name it: ``NAME#N``, pipeline ``NAME``'s ``N``-th run."""

    pipeline: str
    number: int

    @property
    def name(self) -> str:
        """``NAME#N``."""
        return f"{self.pipeline}#{self.number}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str) -> RunRef:
        """Split ``NAME#N`` (UsageError when it is not of that form)."""
        pipeline, sep, number = name.rpartition("#")
        if not sep or not pipeline or not number.isdigit():
            raise UsageError(f"'{name}' is not a run name: expected NAME#N, e.g. build#3")
        return cls(pipeline, int(number))
