"""Running jobs: the runner interface, the Docker runner, workspaces and artifacts."""
