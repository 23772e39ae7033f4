"""GitLab CI compatibility: the pure pieces that read teams' .gitlab-ci.yml files."""
