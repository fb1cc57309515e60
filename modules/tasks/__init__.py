"""tasks plug-ins; every submodule is imported by engine.registry."""
