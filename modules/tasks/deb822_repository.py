"""deb822_repository: an apt source in deb822 format, /etc/apt/sources.list.d/<slug>.sources, as Ansible writes it.

As Ansible's module: the file is rebuilt from the options given, one field each in the options' alphabetical
order (name is X-Repolib-Name, uris URIs, others Title-Case with dashes; booleans yes/no, lists space-separated),
and replaced when its bytes differ; `mode` (0644) is then applied. `signed_by` is a file on the target (used as
is), a URL (fetched on the target into /etc/apt/keyrings/<slug>.asc or .gpg, mode 0644), or else inline: a key
block written as a multi-line field (blank lines as "."), or a fingerprint. `state: absent` removes the file and
the slug's keyrings. Returns repo (the file's text), dest and key_filename. No cache update: Ansible's module
leaves that to the apt module.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, fields
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, file_mode, integer, string
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import edit_file
from modules.tasks._remote import first, maybe, q, quiet, tagged, tail, temp_path

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def words(value: Any) -> list[str]:
    """Ansible's list of str: a list, or one comma-separated string."""
    items = value if isinstance(value, list) else string(value).split(",")
    return [string(item).strip() for item in items]


def slug_of(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "", re.sub(r"[_\s]+", "-", name.lower()))


def field_name(option: str) -> str:
    return {"name": "X-Repolib-Name", "uris": "URIs"}.get(option) or option.replace("_", "-").title()


def field_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def multiline(value: str) -> str:
    """A value of several lines as deb822 folds it: each stripped line indented, empty ones as "."."""
    return "\n" + "\n".join("    " + (line.strip() or ".") for line in value.strip().splitlines())


def render(options: dict[str, Any]) -> str:
    """The .sources text, as Ansible's Deb822().dump() of the options writes it."""
    out = []
    for option in sorted(options):
        value = options[option]
        if value is None:
            continue
        text = field_value(value)
        text = multiline(text) if "\n" in text else text
        out.append(f"{field_name(option)}:{text}\n" if not text or text[0] == "\n" else f"{field_name(option)}: {text}\n")
    return "".join(out)


class Deb822Repository(TaskModule, name="deb822_repository"):
    description = "Add or remove an apt source in deb822 format (sources.list.d/<name>.sources)"
    # where Ansible writes; tests move them
    sources_dir = "/etc/apt/sources.list.d"
    keyrings_dir = "/etc/apt/keyrings"
    schema = {
        vol.Required("name"): string,
        vol.Optional("allow_downgrade_to_insecure", default=None): maybe(boolean),
        vol.Optional("allow_insecure", default=None): maybe(boolean),
        vol.Optional("allow_weak", default=None): maybe(boolean),
        vol.Optional("architectures", default=None): maybe(words),
        vol.Optional("by_hash", default=None): maybe(boolean),
        vol.Optional("check_date", default=None): maybe(boolean),
        vol.Optional("check_valid_until", default=None): maybe(boolean),
        vol.Optional("components", default=None): maybe(words),
        vol.Optional("date_max_future", default=None): maybe(integer),
        vol.Optional("enabled", default=None): maybe(boolean),
        vol.Optional("inrelease_path", default=None): maybe(string),
        vol.Optional("languages", default=None): maybe(words),
        vol.Optional("pdiffs", default=None): maybe(boolean),
        vol.Optional("signed_by", default=None): maybe(string),
        vol.Optional("suites", default=None): maybe(words),
        vol.Optional("targets", default=None): maybe(words),
        vol.Optional("trusted", default=None): maybe(boolean),
        vol.Optional("types", default=["deb"]): vol.All(words, [vol.In(["deb", "deb-src"])]),
        vol.Optional("uris", default=None): maybe(words),
        vol.Optional("mode", default="0644"): file_mode,
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        allow_downgrade_to_insecure: bool | None = None
        allow_insecure: bool | None = None
        allow_weak: bool | None = None
        architectures: list[str] | None = None
        by_hash: bool | None = None
        check_date: bool | None = None
        check_valid_until: bool | None = None
        components: list[str] | None = None
        date_max_future: int | None = None
        enabled: bool | None = None
        inrelease_path: str | None = None
        languages: list[str] | None = None
        pdiffs: bool | None = None
        signed_by: str | None = None
        suites: list[str] | None = None
        targets: list[str] | None = None
        trusted: bool | None = None
        types: tuple[str, ...] | list[str] = ("deb",)
        uris: list[str] | None = None
        mode: str = "0644"
        state: str = "present"

        def fields(self) -> dict[str, Any]:
            """The options that become the file's fields."""
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("mode", "state")}

    def keyring(self, slug: str, ext: str) -> str:
        return posixpath.join(self.keyrings_dir, f"{slug}.{ext}")

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        slug = slug_of(p.name)
        dest = posixpath.join(self.sources_dir, f"{slug}.sources")
        if p.state == "absent":
            return await self.remove(ctx, dest, slug)
        options = {**p.fields(), "types": list(p.types)}
        key_changed, key_filename = False, None
        if p.signed_by is not None:
            signed = await self.signed_by(ctx, p.signed_by, slug)
            if isinstance(signed, Result):
                return signed
            key_changed, key_filename, options["signed_by"] = signed
        repo = render(options)
        data = {"repo": repo, "dest": dest, "key_filename": key_filename}
        result = await edit_file(ctx, dest, lambda old: (repo, f"{dest} written"), Attrs(mode=p.mode))
        if result.failed:
            return result.replace(data=data)
        changed = result.changed or key_changed
        return result.replace(changed=changed, msg=result.msg if result.changed else
                              (f"{key_filename} written" if key_changed else f"{dest} is up to date"), data=data)

    async def remove(self, ctx: TaskContext, dest: str, slug: str) -> Result:
        paths = [dest, self.keyring(slug, "asc"), self.keyring(slug, "gpg")]
        res = await quiet(ctx, "".join(f"[ -e {q(path)} ] && printf 'there %s\\n' {q(path)}\n" for path in paths)
                          + "exit 0")
        there = tagged(res.stdout)[0].get("there", [])
        data = {"repo": None, "dest": dest, "key_filename": paths[2]}
        if there and not ctx.check:
            res = await quiet(ctx, "rm -f " + " ".join(q(path) for path in there))
            if not res.ok:
                return Result(failed=True, msg=f"could not remove {', '.join(there)}: {tail(res.stderr)}", data=data)
        return Result(changed=bool(there), msg=f"removed {', '.join(there)}" if there else f"{dest} is absent",
                      data=data)

    async def signed_by(self, ctx: TaskContext, value: str, slug: str) -> tuple[bool, str | None, str] | Result:
        """(changed, key_filename, the field's value): Ansible's write_signed_by_key."""
        res = await quiet(ctx, f"[ -f {q(value)} ] && echo file; exit 0" if "\n" not in value else "exit 0")
        if "file" in res.stdout:
            return False, value, value
        if not SCHEME.match(value) or "\n" in value:
            return False, None, value
        return await self.fetch_key(ctx, value, slug)

    async def fetch_key(self, ctx: TaskContext, url: str, slug: str) -> tuple[bool, str | None, str] | Result:
        """Download the key on the target; install it as <slug>.asc (armored) or .gpg when its bytes differ."""
        tmp = temp_path()
        armored = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
        mkdir = f"mkdir -m 0755 {q(self.keyrings_dir)}"
        script = (f"u={shlex.quote(url)}; t={tmp}; trap 'rm -f \"$t\"' EXIT; umask 022\n"
                  "if command -v curl >/dev/null 2>&1; then curl -fsSL -o \"$t\" \"$u\" || exit 1\n"
                  "else wget -q -O \"$t\" \"$u\" || exit 1; fi\n"
                  "[ -s \"$t\" ] || { echo empty; exit 0; }\n"
                  f"if grep -q -e {shlex.quote(armored)} \"$t\"; then f={q(self.keyring(slug, 'asc'))}; "
                  f"else f={q(self.keyring(slug, 'gpg'))}; fi\n"
                  "printf 'key %s\\n' \"$f\"\n"
                  f"[ -d {q(self.keyrings_dir)} ] || {{ echo changed; {'true' if ctx.check else mkdir}; }}\n"
                  "if ! cmp -s \"$t\" \"$f\"; then echo changed; "
                  + ("" if ctx.check else "cp \"$t\" \"$f.new\" && chmod 0644 \"$f.new\" && mv -f \"$f.new\" \"$f\"; ")
                  + "fi\n"
                  "[ -f \"$f\" ] && [ \"$(stat -c %a \"$f\")\" != 644 ] && { echo changed; "
                  + ("" if ctx.check else "chmod 0644 \"$f\"; ") + "}\nexit 0\n")
        res = await quiet(ctx, script)
        if not res.ok:
            return Result(failed=True, msg=f"Could not fetch signed_by key: {tail(res.stderr) or res.rc}")
        tags, _ = tagged(res.stdout)
        if "empty" in tags:
            return False, url, url
        key = first(tags, "key") or ""
        return "changed" in tags, key, key
