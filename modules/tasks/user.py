"""user: make a local user account exist, with the attributes asked for, or not.

One probe reads the passwd entry, the groups (`id -Gn`), the shadow hash when a password is given, and
which tools exist; one action runs useradd/usermod/userdel (or BusyBox's adduser/addgroup/deluser, which
can create and remove users and add them to groups, but change nothing else). A password is given already
hashed and goes to `chpasswd -e` on its stdin: never on a command line, in a message or in the result.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, integer
from modules.tasks._accounts import account_name, entry_sh, fields, tools_sh
from modules.tasks._remote import NamedFreeForm, failure, first, maybe, quiet, tagged, tail, text

TOOLS = ("useradd", "usermod", "userdel", "adduser", "deluser", "addgroup", "chpasswd")
HASH = re.compile(r"^(\$[0-9a-zA-Z]+(\$[^$:\s]*)+|[!*][^:\s]*|[./0-9A-Za-z]{13})$")


def password_hash(value: object) -> str:
    """A crypt(3) hash, or a locked (!, *) one; the value itself never appears in the error."""
    if not isinstance(value, str) or not HASH.match(value):
        raise vol.Invalid("password must be already hashed (crypt format, e.g. from `mkpasswd -m yescrypt`), "
                          "not the password itself")
    return value


def group_list(value: object) -> list[str]:
    """A list of group names, or Ansible's "a,b" string; "" or [] means no supplementary groups."""
    items = value if isinstance(value, list) else text(value).split(",")
    return [account_name(str(item).strip()) for item in items if str(item).strip()]


@dataclass(frozen=True)
class Account:
    """What the probe found: the passwd fields, primary and supplementary group names, the shadow hash."""

    uid: str
    gid: str
    comment: str
    home: str
    shell: str
    primary: str
    groups: tuple[str, ...]
    hash: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, tags: dict[str, list[str]]) -> "Account | None":
        entry = fields(first(tags, "passwd"), 7)
        if entry is None:
            return None
        primary = (first(tags, "primary") or "").strip()
        groups = tuple(g for g in (first(tags, "groups") or "").split() if g != primary)
        return cls(entry[2], entry[3], entry[4], entry[5], entry[6], primary, groups, first(tags, "shadow"))


def _has_group(account: Account, group: str) -> bool:
    return account.gid == group if group.isdigit() else account.primary == group


class User(NamedFreeForm, TaskModule, name="user"):
    description = "Create, change or remove a local user account (useradd/usermod/userdel or BusyBox)"
    free_form = "name"
    aliases = {"user": "name", "createhome": "create_home"}
    schema = {
        vol.Required("name"): account_name,
        vol.Optional("state", default="present"): vol.In(("present", "absent")),
        vol.Optional("uid", default=None): maybe(vol.All(integer, vol.Range(min=0))),
        vol.Optional("group", default=None): maybe(text),
        vol.Optional("groups", default=None): maybe(group_list),
        vol.Optional("append", default=False): boolean,
        vol.Optional("shell", default=None): maybe(str),
        vol.Optional("home", default=None): maybe(str),
        vol.Optional("create_home", default=True): boolean,
        vol.Optional("system", default=False): boolean,
        vol.Optional("password", default=None): maybe(password_hash),
        vol.Optional("update_password", default="always"): vol.In(("always", "on_create")),
        vol.Optional("comment", default=None): maybe(text),
        vol.Optional("remove", default=False): boolean,
        vol.Optional("force", default=False): boolean,      # state=absent: userdel -f (even when logged in)
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        state: str = "present"
        uid: int | None = None
        group: str | None = None
        groups: list[str] | None = None
        append: bool = False
        shell: str | None = None
        home: str | None = None
        create_home: bool = True
        system: bool = False
        password: str | None = field(default=None, repr=False)
        update_password: str = "always"
        comment: str | None = None
        remove: bool = False
        force: bool = False

        def __post_init__(self) -> None:
            for name in ("shell", "home", "comment"):
                if ":" in (getattr(self, name) or "") or "\n" in (getattr(self, name) or ""):
                    raise vol.Invalid(f"{name} cannot hold ':' or a newline (they separate /etc/passwd fields)",
                                      path=[name])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        n = shlex.quote(p.name)
        probe = entry_sh("passwd", p.name, "passwd",
                         then=f"printf 'groups '; id -Gn {n}\nprintf 'primary '; id -gn {n}\n")
        if p.password is not None and p.state == "present":
            probe += (f"{{ getent shadow {n} 2>/dev/null || awk -F: -v n={n} '$1 == n' /etc/shadow 2>/dev/null; }} "
                      "| awk -F: 'NR == 1 {print \"shadow \" $2}'\n")
        res = await quiet(ctx, probe + tools_sh(*TOOLS) + "exit 0\n")
        if not res.ok:
            return failure(f"could not read user {p.name}", res)
        tags, _ = tagged(res.stdout)
        account = Account.parse(tags)
        try:
            cmds, changes, password = plan_user(p, account, set(tags.get("tool", [])))
        except ValueError as exc:
            return Result(failed=True, msg=f"cannot manage user {p.name}: {exc}", data=_data(p, account))
        if not cmds:
            return Result(msg=f"user {p.name} is as asked", data=_data(p, account))
        msg = (f"user {p.name} {changes[0]}" if changes[0] in ("created", "removed") else
               f"user {p.name}: {', '.join(changes)}")
        if ctx.check:
            return Result(changed=True, msg=msg, data=_data(p, account))
        script = " && ".join(c if c.startswith("chpasswd") else f"{c} </dev/null" for c in cmds)  # stdin: the hash
        if p.state == "present":
            script += " && " + entry_sh("passwd", p.name, "passwd", then=f"printf 'primary '; id -gn {n}\n")
        res = await quiet(ctx, script, stdin=f"{p.name}:{password}\n" if password else None)
        if not res.ok:
            return Result(failed=True, data=_data(p, account),
                          msg=f"could not update user {p.name}: {tail(res.stderr) or f'exit status {res.rc}'}")
        return Result(changed=True, msg=msg, data=_data(p, Account.parse(tagged(res.stdout)[0])))


def _data(p: User.Params, account: Account | None) -> dict:
    """Ansible's user return values: group is the primary group's gid, as there."""
    data: dict = {"name": p.name, "state": "present" if account else "absent"}
    if account:
        number = (lambda value: int(value) if value.isdigit() else value)
        data.update(uid=number(account.uid), group=number(account.gid), home=account.home, shell=account.shell,
                    comment=account.comment, system=p.system)
    return data


def plan_user(p: User.Params, account: Account | None, tools: set[str]) -> tuple[list[str], list[str], str | None]:
    """(commands, what changes in words, the password hash for chpasswd's stdin or None)."""
    n = shlex.quote(p.name)
    if p.state == "absent":
        if account is None:
            return [], [], None
        if "userdel" in tools:
            return [f"userdel {'-r ' if p.remove else ''}{'-f ' if p.force else ''}{n}"], ["removed"], None
        if "deluser" in tools:
            return [f"deluser {'--remove-home ' if p.remove else ''}{n}"], ["removed"], None
        raise ValueError("neither userdel nor deluser is on the target")
    password = p.password
    if account is None:
        cmds = _create(p, tools)
        if password is not None:
            cmds.append(_chpasswd(tools))
        return cmds, ["created"], password
    options, changes = [], []
    if p.uid is not None and account.uid != str(p.uid):
        options += ["-u", str(p.uid)]
        changes.append(f"uid {account.uid} -> {p.uid}")
    if p.group is not None and not _has_group(account, p.group):
        options += ["-g", p.group]
        changes.append(f"group {account.primary} -> {p.group}")
    added: list[str] = []
    if p.groups is not None:
        current = set(account.groups)
        if p.append:
            added = [g for g in p.groups if g not in current and g != account.primary]
            if added:
                options += ["-a", "-G", ",".join(added)]
                changes.append("groups +" + ",".join(added))
        elif set(p.groups) - {account.primary} != current:
            options += ["-G", ",".join(p.groups)]
            changes.append(f"groups {','.join(account.groups) or '(none)'} -> {','.join(p.groups) or '(none)'}")
    for option, flag, have in (("shell", "-s", account.shell), ("home", "-d", account.home),
                               ("comment", "-c", account.comment)):
        want = getattr(p, option)
        if want is not None and want != have:
            options += [flag, want]
            changes.append(f"{option} {have or '(none)'} -> {want}" if option != "comment" else "comment changed")
    cmds = []
    if options:
        if "usermod" in tools:
            cmds.append("usermod " + " ".join(shlex.quote(o) for o in options) + f" {n}")
        elif "addgroup" in tools and options == ["-a", "-G", ",".join(added)]:
            cmds += [f"addgroup {n} {shlex.quote(g)}" for g in added]
        else:
            raise ValueError(f"usermod is not on the target, so {', '.join(changes)} cannot be done")
    if password is not None and p.update_password == "always" and account.hash != password:
        cmds.append(_chpasswd(tools))
        changes.append("password changed")
    else:
        password = None
    return cmds, changes, password


def _create(p: User.Params, tools: set[str]) -> list[str]:
    n = shlex.quote(p.name)
    if "useradd" in tools:
        args = ["-u", str(p.uid)] if p.uid is not None else []
        args += ["-g", p.group] if p.group else []
        args += ["-G", ",".join(p.groups)] if p.groups else []
        args += ["-s", p.shell] if p.shell else []
        args += ["-d", p.home] if p.home else []
        args += ["-m"] if p.create_home else ["-M"]
        args += ["-r"] if p.system else []
        args += ["-c", p.comment] if p.comment is not None else []
        return ["useradd " + " ".join(shlex.quote(a) for a in args) + f" {n}"]
    if "adduser" in tools:   # BusyBox: -G is the primary group there; supplementary ones come after
        args = ["-D"] + (["-u", str(p.uid)] if p.uid is not None else [])
        args += ["-G", p.group] if p.group else []
        args += ["-s", p.shell] if p.shell else []
        args += ["-h", p.home] if p.home else []
        args += [] if p.create_home else ["-H"]
        args += ["-S"] if p.system else []
        args += ["-g", p.comment] if p.comment is not None else []
        return ["adduser " + " ".join(shlex.quote(a) for a in args) + f" {n}",
                *(f"addgroup {n} {shlex.quote(g)}" for g in p.groups or [])]
    raise ValueError("neither useradd nor adduser is on the target")


def _chpasswd(tools: set[str]) -> str:
    if "chpasswd" not in tools:
        raise ValueError("chpasswd is not on the target, so the password cannot be set")
    return "chpasswd -e"
