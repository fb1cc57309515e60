"""The `recipe` command: verbs, exit codes, and what render and inspect print."""
