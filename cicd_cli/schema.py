"""``cicd schema``: print the JSON Schema of the native pipeline format, for editors."""

from __future__ import annotations

import typer

from backend.pipeline.schema import schema_text


def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of .pipelines/*.yaml files on stdout.

    Editors use it to complete keys and flag mistakes as you type: save it
    (cicd schema > .pipelines/pipeline.schema.json) and start a pipeline file with
    '# yaml-language-server: $schema=pipeline.schema.json'. docs/pipeline-format.schema.json
    holds the same schema.

    It checks keys, types and names; cicd check also checks what a schema cannot (declared
    stages, needs, cycles).
    """
    typer.echo(schema_text(), nl=False)
