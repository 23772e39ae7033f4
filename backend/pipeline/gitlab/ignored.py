"""GitLab job keywords accepted without a local meaning: checked for their shape, then noted.

Each is listed once in ``Pipeline.ignored`` with the reason in ``IGNORED``. ``environment``
keeps its name (``Job.environment``); a ``trigger`` job is kept in the plan but does not run.
``NO_EFFECT`` gives the reasons for parts of the other keywords that are read (some kept in
the model) but that nothing acts on: they are noted the same way.
"""

from __future__ import annotations

from backend.pipeline.gitlab.spec import KeywordReader
from backend.pipeline.loader import Map, Node, Scalar, describe

IGNORED = {
    "tags": "runner selection has no local meaning",
    "environment": "deployments are tracked by a GitLab server; the name is kept, nothing more",
    "coverage": "coverage is not parsed from job logs",
    "resource_group": "no lock across pipelines; jobs of one run follow needs and stages only",
    "release": "creating a release needs a GitLab server",
    "pages": "publishing GitLab Pages needs a GitLab server",
    "publish": "publishing GitLab Pages needs a GitLab server",
    "id_tokens": "OIDC ID tokens are issued by a GitLab server",
    "secrets": "external secrets are fetched by a GitLab server",
    "hooks": "runner hooks have no local meaning (cicd checks the repository out itself)",
    "identity": "identity federation needs a GitLab server",
    "dast_configuration": "DAST site and scanner profiles live on a GitLab server",
    "manual_confirmation": "manual jobs start only when asked (--manual); nothing to confirm",
    "trigger": "downstream pipelines need a GitLab server; trigger jobs do not run",
}
PULL = "runner settings with no local meaning"
SERVER_FILES = (
    "archive names, merge request links and download permissions belong to a GitLab server"
)
NO_EFFECT = {
    "image:docker": PULL,
    "image:kubernetes": PULL,
    "services:docker": PULL,
    "services:kubernetes": PULL,
    "rules:exists:ref": "the files of the commit run are used",
    "cache:unprotect": "there are no protected branches locally",
    "artifacts:expose_as": SERVER_FILES,
    "artifacts:public": SERVER_FILES,
    "artifacts:access": SERVER_FILES,
    "retry:exit_codes": "every failure is retried",
}
ENVIRONMENT_KEYS = (
    "name",
    "url",
    "action",
    "on_stop",
    "auto_stop_in",
    "kubernetes",
    "deployment_tier",
)


class IgnoredReader(KeywordReader):
    """Reads the keywords of ``IGNORED``."""

    def ignore_key(self, key: str) -> None:
        """Note ``key`` (of ``IGNORED`` or ``NO_EFFECT``) with its reason."""
        self.ignore(key, IGNORED.get(key) or NO_EFFECT[key])

    def k_trigger(self, node: Node) -> None:
        if not isinstance(node, Scalar | Map):
            self.add(node, f"'trigger' must be a project path or a mapping, not {describe(node)}")
        self.spec.trigger = True
        self.ignore_key("trigger")

    def k_tags(self, node: Node) -> None:
        self.strings(node, "'tags'")
        self.ignore_key("tags")

    def k_environment(self, node: Node) -> None:
        if isinstance(node, Map):
            self.mapping(node, "'environment'", ENVIRONMENT_KEYS)
            name = node.get("name")
            if name is None:
                self.add(node, "'environment' is missing required key 'name'")
            else:
                self.spec.environment = self.string(name, "'environment:name'")
        else:
            self.spec.environment = self.string(node, "'environment'")
        self.ignore_key("environment")

    def k_coverage(self, node: Node) -> None:
        self.string(node, "'coverage'")
        self.ignore_key("coverage")

    def k_resource_group(self, node: Node) -> None:
        self.string(node, "'resource_group'")
        self.ignore_key("resource_group")

    def k_identity(self, node: Node) -> None:
        self.string(node, "'identity'")
        self.ignore_key("identity")

    def k_manual_confirmation(self, node: Node) -> None:
        self.string(node, "'manual_confirmation'")
        self.ignore_key("manual_confirmation")

    def k_publish(self, node: Node) -> None:
        self.string(node, "'publish'")
        self.ignore_key("publish")

    def k_pages(self, node: Node) -> None:
        if not (
            isinstance(node, Map) or (isinstance(node, Scalar) and isinstance(node.value, bool))
        ):
            self.add(node, f"'pages' must be a mapping or true/false, not {describe(node)}")
        self.ignore_key("pages")

    def _ignored_mapping(self, key: str, node: Node) -> None:
        if not isinstance(node, Map):
            self.add(node, f"'{key}' must be a mapping, not {describe(node)}")
        self.ignore_key(key)

    def k_release(self, node: Node) -> None:
        self._ignored_mapping("release", node)

    def k_id_tokens(self, node: Node) -> None:
        self._ignored_mapping("id_tokens", node)

    def k_secrets(self, node: Node) -> None:
        self._ignored_mapping("secrets", node)

    def k_hooks(self, node: Node) -> None:
        self._ignored_mapping("hooks", node)

    def k_dast_configuration(self, node: Node) -> None:
        self._ignored_mapping("dast_configuration", node)
