"""What GitLab jobs say about each other: ``needs`` and ``dependencies`` checked across the
whole file (after ``parallel`` fan-out), and cycles among needs.

    links = Links(drafts, stages, fanned, defined, problems, filename)
    links.needs(draft), links.dependencies(draft), links.cycles(needs)

Followed, from ``lib/gitlab/ci/yaml_processor.rb`` (``validate_job_needs!``,
``validate_job_dependency!``) and the pipeline-creation check of ``seed/build.rb``:

* a need or dependency on an undefined job is refused ("undefined need"), unless the need is
  ``optional`` (GitLab cannot tell then whether the job will exist);
* the job needed must be in the same or an earlier stage ("is not defined in current or
  prior stages"); a job needing itself is refused;
* a need on a job the pipeline leaves out (rules, only/except, ``when: never``) is refused
  when the needing job is in the pipeline, in GitLab's words ("'x' job needs 'y' job, but
  'y' does not exist in the pipeline ..."), and dropped when optional; a dependency on such
  a job is dropped;
* ``needs`` and ``dependencies`` naming a parallel job name all its instances
  (``parallel.py``); cycles are refused with their path (``plan.find_cycles``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backend.errors import Problem
from backend.pipeline.gitlab.evaluate import Draft
from backend.pipeline.gitlab.parallel import Instance, expand_dependencies, expand_need
from backend.pipeline.gitlab.tree import problem_at
from backend.pipeline.loader import Node
from backend.pipeline.plan import find_cycles
from backend.pipeline.validate import suggest


class Links:
    """Checks and expands the needs and dependencies of every draft, reporting through ``add``."""

    def __init__(
        self,
        drafts: Sequence[Draft],
        stages: Sequence[str],
        fanned: Mapping[str, list[Instance]],
        defined: set[str],
        problems: list[Problem],
        filename: str,
    ) -> None:
        self.drafts = drafts
        self.by_name = {d.name: d for d in drafts}
        self.stage_of = {d.name: stages.index(d.spec.stage) for d in drafts}
        self.fanned = fanned
        self.defined = defined  # every job of the file, even one whose stage was refused
        self.problems = problems
        self.filename = filename
        self.need_nodes: dict[tuple[str, str], Node] = {}  # (job, need) -> where it is written
        self.no_artifacts: dict[str, list[str]] = {}  # job -> needs given `artifacts: false`

    def add(self, node: Node, message: str) -> None:
        self.problems.append(problem_at(node, message, self.filename))

    def needs(self, draft: Draft) -> list[str]:
        """The names ``draft`` needs, after parallel expansion, each checked."""
        if draft.needs is None:
            return []
        label = f"job '{draft.name}'"
        result: list[str] = []
        for entry in draft.needs:
            if entry.name not in self.defined:
                if not entry.optional:
                    hint = suggest(entry.name, sorted(self.defined))
                    self.add(
                        entry.node, f"{label} needs '{entry.name}', which is not defined{hint}"
                    )
                continue
            file = entry.node.file or self.filename
            names, found = expand_need(entry.name, entry.parallel, self.fanned, file, label + ": ")
            self.problems += found
            for need in names:
                other = self.by_name.get(need)
                if other is None or need in result:
                    continue  # a job refused elsewhere (its stage, its parallel), or a repeat
                if need == draft.name:
                    self.add(entry.node, f"{label} needs itself")
                elif self.stage_of[need] > self.stage_of[draft.name]:
                    self.add(
                        entry.node,
                        f"{label} needs '{need}', which is in the later stage "
                        f"'{other.spec.stage}' (needs name jobs of the same or an earlier stage)",
                    )
                elif other.excluded:
                    if not entry.optional and not draft.excluded:
                        self.add(
                            entry.node,
                            f"'{draft.name}' job needs '{need}' job, but '{need}' does not "
                            f"exist in the pipeline ({other.skip_reason}); to need a job that "
                            "sometimes does not exist in the pipeline, use needs:optional",
                        )
                else:
                    result.append(need)
                    self.need_nodes[(draft.name, need)] = entry.node
                    if not entry.artifacts:
                        self.no_artifacts.setdefault(draft.name, []).append(need)
        return result

    def dependencies(self, draft: Draft) -> list[str] | None:
        """The jobs whose artifacts ``draft`` takes (None: GitLab's default, all earlier)."""
        if draft.spec.dependencies is None:
            return None
        label = f"job '{draft.name}'"
        result: list[str] = []
        for name, node in draft.spec.dependencies:
            if name not in self.defined:
                hint = suggest(name, sorted(self.defined))
                self.add(node, f"{label}: dependency '{name}' is not defined{hint}")
                continue
            for dep in expand_dependencies([name], self.fanned):
                other = self.by_name.get(dep)
                if other is None:
                    continue
                if self.stage_of[dep] > self.stage_of[draft.name]:
                    self.add(
                        node,
                        f"{label}: dependency '{dep}' is in the later stage "
                        f"'{other.spec.stage}' (dependencies name jobs of the same or an "
                        "earlier stage)",
                    )
                elif not other.excluded and dep not in result:
                    result.append(dep)
        return result

    def cycles(self, needs: Mapping[str, list[str]]) -> None:
        """Refuse every cycle among ``needs``, at the need that starts it."""
        for cycle in find_cycles([d.name for d in self.drafts], needs):
            node = self.need_nodes[(cycle[0], cycle[1])]
            self.add(node, f"cyclic dependency: {' -> '.join(cycle)}")
