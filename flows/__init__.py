"""The only place that imports Prefect: the pipeline flow, its server, and state mirroring.

Import ``flows.prefect_api`` (cheap, no Prefect) to configure the environment *before* anything
imports ``prefect``; import ``flows.pipeline`` for the flow itself.
"""
