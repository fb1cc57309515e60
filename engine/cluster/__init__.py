"""Builds on a Celery cluster: `recipe worker` and `recipe run --cluster` (README "Cluster")."""
