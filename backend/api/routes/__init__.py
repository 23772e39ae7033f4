"""One routes module per resource: health, pipelines, runs, logs (and events), artifacts."""
