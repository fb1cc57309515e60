"""locale_gen (community.general): generate locales, or remove them, with the distribution's locale-gen.

As Ansible: a locale is there when `locale -a` lists it (.utf8 and .UTF-8 alike), and the task acts only when
"all of them there" differs from the state asked (so `absent` with some there and some not does nothing, as in
Ansible). A locale must be available: listed, enabled or commented out, in /etc/locale.gen (Ubuntu: in
/usr/share/i18n/SUPPORTED), or already generated. Debian's way uncomments (or comments) its line in
/etc/locale.gen and runs `locale-gen`; Ubuntu's (where /var/lib/locales/supported.d/ exists) runs
`locale-gen <names>`, and for absent drops the names from supported.d/local and runs `locale-gen --purge`.
Check mode changes nothing and, as Ansible's module, reports ok: it re-reads the state it did not change.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._conffile import edit_file
from modules.tasks._remote import q, quiet, tagged, tail, text

NORMALIZE = {".utf8": ".UTF-8", ".eucjp": ".EUC-JP", ".iso885915": ".ISO-8859-15", ".cp1251": ".CP1251",
             ".koi8r": ".KOI8-R", ".armscii8": ".ARMSCII-8", ".euckr": ".EUC-KR", ".gbk": ".GBK",
             ".gb18030": ".GB18030", ".euctw": ".EUC-TW"}
AVAILABLE = re.compile(r"^#?\s*(?P<locale>\S+[\._\S]+) (?P<charset>\S+)\s*$")


def names(value: object) -> tuple[str, ...]:
    """Ansible's list of str: one name, a list, or a comma-separated string."""
    items = value if isinstance(value, list) else text(value).split(",")
    found = tuple(text(item).strip() for item in items)
    if not found or not all(found):
        raise vol.Invalid("expected one or more locale names, e.g. de_CH.UTF-8")
    return found


def fix_case(name: str) -> str:
    for short, long in NORMALIZE.items():
        name = name.replace(short, long)
    return name


def missing(wanted: tuple[str, ...] | list[str], generated: list[str]) -> list[str]:
    """The names `locale -a` does not list."""
    have = {fix_case(line) for line in generated}
    return [name for name in wanted if fix_case(name) not in have]


def unavailable(wanted: tuple[str, ...], listed: list[str], generated: list[str]) -> list[str]:
    found = {match.group("locale") for match in map(AVAILABLE.match, listed) if match}
    return missing([name for name in wanted if name not in found], generated)


def set_locales(old: str, wanted: tuple[str, ...], enabled: bool) -> str:
    """Ansible's set_locale: each name's line, commented or not, becomes `name charset` (or `# name charset`)."""
    rules = [(re.compile(rf"^#?\s*{re.escape(name)} (?P<charset>.+)"), f"{'' if enabled else '# '}{name} \\g<charset>")
             for name in wanted]
    lines = old.splitlines(True)
    for index, line in enumerate(lines):
        for search, replacement in rules:
            lines[index] = search.sub(replacement, lines[index])
    return "".join(lines)


def without(old: str, wanted: tuple[str, ...]) -> str:
    """supported.d/local without the lines of the names removed."""
    return "".join(line for line in old.splitlines(True) if line.split(" ")[0] not in wanted)


class LocaleGen(TaskModule, name="locale_gen"):
    description = "Generate or remove locales (/etc/locale.gen and locale-gen)"
    # the files Ansible reads; tests move them
    locale_gen = "/etc/locale.gen"
    supported_dir = "/var/lib/locales/supported.d"
    supported = "/usr/share/i18n/SUPPORTED"
    schema = {
        vol.Required("name"): names,
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
    }

    @dataclass(frozen=True)
    class Params:
        name: tuple[str, ...]
        state: str = "present"

    def probe(self) -> str:
        return (f"if [ -d {q(self.supported_dir)} ]; then echo ubuntu; f={q(self.supported)}\n"
                f"elif [ -e {q(self.locale_gen)} ]; then f={q(self.locale_gen)}; else echo none; exit 0; fi\n"
                "[ -r \"$f\" ] && sed 's/^/avail /' \"$f\"\n"
                "locale -a 2>/dev/null | sed 's/^/have /'\n")

    async def generated(self, ctx: TaskContext) -> tuple[dict[str, list[str]], Result | None]:
        res = await quiet(ctx, self.probe())
        if not res.ok:
            return {}, Result(failed=True, msg=f"could not list the locales: {tail(res.stderr) or res.rc}")
        return tagged(res.stdout)[0], None

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        data = {"name": list(p.name)}
        tags, failed = await self.generated(ctx)
        if failed:
            return failed.replace(data=data)
        if "none" in tags:
            return Result(failed=True, data=data, msg=f"{self.supported_dir}/ and {self.locale_gen} are missing. "
                                                      'Is the package "locales" installed?')
        generated = tags.get("have", [])
        absent = unavailable(p.name, tags.get("avail", []), generated)
        if absent:
            return Result(failed=True, data=data, msg="The following locales you've entered are not available on "
                                                      f"your system: {', '.join(absent)}")
        before = "absent" if missing(p.name, generated) else "present"
        if before == p.state or ctx.check:
            return Result(msg=f"{', '.join(p.name)}: {before}", data=data)
        done = await (self.ubuntu(ctx, p) if "ubuntu" in tags else self.debian(ctx, p))
        if done.failed:
            return done.replace(data=data)
        tags, failed = await self.generated(ctx)
        if failed:
            return failed.replace(data=data)
        after = "absent" if missing(p.name, tags.get("have", [])) else "present"
        return done.replace(changed=after != before, msg=f"{', '.join(p.name)}: {before} -> {after}", data=data)

    async def debian(self, ctx: TaskContext, p: Params) -> Result:
        edited = await edit_file(ctx, self.locale_gen, lambda old: (set_locales(old or "", p.name,
                                                                                p.state == "present"), ""),
                                 create=False)
        return edited if edited.failed else await locale_gen(ctx, "locale-gen", edited.diff)

    async def ubuntu(self, ctx: TaskContext, p: Params) -> Result:
        if p.state == "present":
            return await locale_gen(ctx, "locale-gen " + " ".join(shlex.quote(name) for name in p.name))
        edited = await edit_file(ctx, f"{self.supported_dir}/local", lambda old: (without(old or "", p.name), ""),
                                 create=False)
        return edited if edited.failed else await locale_gen(ctx, "locale-gen --purge", edited.diff)


async def locale_gen(ctx: TaskContext, command: str, diff: str = "") -> Result:
    """Run locale-gen; Ansible returns none of its output, so only a failure keeps it."""
    res = await ctx.sh(command)
    if res.ok:
        return Result(diff=diff)
    return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr, diff=diff,
                  msg=f"{command} failed (rc={res.rc}): {tail(res.stderr or res.stdout)}")
