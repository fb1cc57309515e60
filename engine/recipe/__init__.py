"""A recipe file into the frozen model: YAML with positions, includes and roles, Jinja, schemas."""
