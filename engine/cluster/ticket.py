"""What travels between `recipe run --cluster` and a worker, as JSON (Celery is set to accept nothing else).

A BuildTicket is a Celery task's only argument: which build of which bundled recipe to run, and how. It may
hold secrets (--var values, RECIPE_VAR_* of the submitter's environment), so it is never logged: the task is
sent with a placeholder for its arguments' repr, and no result backend keeps it.

A BuildResult is what the worker that ran the build leaves in the broker (engine.cluster.keys.result): the
outcome, counts and where its artifacts are. It holds no secret: errors are masked before they are written.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import BuildError

VERSION = 1      # a worker refuses tickets of another version rather than run them half-understood


@dataclass(frozen=True)
class RunSettings:
    """The `recipe run` options a build obeys wherever it runs."""

    check: bool = False
    diff: bool = False
    tags: tuple[str, ...] = ("all",)
    skip_tags: tuple[str, ...] = ()
    force_handlers: bool = False
    no_cache: bool = False
    on_error: str = "cleanup"           # cleanup | abort (abort keeps what failed on the worker, for a look there)
    debug: bool = False


@dataclass(frozen=True)
class BuildTicket:
    run: str                            # the run's id: its events, results and leases are keyed by it
    build: str                          # <recipe>-<source>
    source: str
    build_id: str                       # as the submitter compiled it: the same on every attempt
    started: float                      # the submitter's compile time: {{ build.timestamp }} and the build id
    bundle: str                         # engine.cluster.bundle digest
    recipe: str                         # the recipe file's path in the bundle
    origin: str                         # the bundle root on the submitter: paths in messages are shown under it
    var_assignments: tuple[str, ...] = ()   # --var (may be secret)
    var_files: tuple[str, ...] = ()         # --var-file, as bundle paths
    roles_path: tuple[str, ...] = ()        # --roles-path and RECIPE_ROLES_PATH folders, as bundle paths
    environ: dict[str, str] = field(default_factory=dict)   # the submitter's RECIPE_VAR_* (may be secret)
    settings: RunSettings = field(default_factory=RunSettings)
    needs: tuple[str, ...] = ()
    version: int = VERSION

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "BuildTicket":
        if not isinstance(data, dict):
            raise BuildError(f"a malformed build ticket: a {type(data).__name__}, not a mapping")
        if data.get("version") != VERSION:
            raise BuildError(f"a build ticket of version {data.get('version')!r}; this worker reads version {VERSION}",
                             hint="run the same recipe release on the workers and the submitting machine")
        try:
            fields = dict(data)
            settings = fields.get("settings", {})
            if not isinstance(settings, dict):
                raise TypeError("settings is not a mapping")
            fields["settings"] = RunSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
            for name in ("var_assignments", "var_files", "roles_path", "needs"):
                value = fields.get(name, ())
                if not isinstance(value, (list, tuple)):
                    raise TypeError(f"{name} is not a list")
                fields[name] = tuple(value)
            return cls(**fields)
        except (TypeError, AttributeError, ValueError) as exc:
            raise BuildError(f"a malformed build ticket: {exc}") from None


@dataclass(frozen=True)
class BuildResult:
    build: str
    status: str                         # succeeded | failed | interrupted
    worker: str
    attempt: int
    error: str = ""
    duration: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    location: dict[str, str] | None = None           # engine.cluster.store.Location.as_json()
    files: list[dict[str, Any]] = field(default_factory=list)   # StoredFile fields, relative to the build folder
    manifests: list[dict[str, Any]] = field(default_factory=list)   # {"path": relative to the run's output dir,
                                                                     #  "recipe": {...}, "entry": {...}}
    left_behind: list[str] = field(default_factory=list)
    spool: str = ""                   # the worker's folder of the run: its artifact paths begin with it

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_text(cls, text: str | bytes) -> "BuildResult":
        return cls(**json.loads(text))
