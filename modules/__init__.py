"""Plug-ins: platforms, task modules and exports. Each registers itself by name."""
