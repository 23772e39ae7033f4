"""Git sources: resolving a repository and ref, checking a commit out, bundles and committed files.

- ``backend.source.git`` runs git itself (hardened environment, locks, slugs);
- ``backend.source.urls`` splits URLs from their credentials and redacts them;
- ``backend.source.workspace`` resolves a source (``resolve_source``), checks a commit out
  (``checkout``) and removes trees (``remove_tree``);
- ``backend.source.bundles`` carries a local commit to a remote server as a git bundle;
- ``backend.source.gitfiles`` reads files as committed (``CommitSource``), without a checkout.

Nothing here imports the docker SDK: ``backend.runner`` stays the only place that does.
"""
