"""openssh_keypair (community.crypto): an SSH key pair on the target, made with its own ssh-keygen.

Roles that harden sshd (devsec.ssh_hardening) replace the host keys with it. The private key is read with
`ssh-keygen -l` (size, fingerprint, comment, type) and `-y` (the public key); it is made again when it does not
match the type and size asked for, as the module's `regenerate` says (partial_idempotence by default). A
passphrase travels on the script's stdin, never in its text.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, integer, string
from modules.tasks._attrs import STAT_FMT, Attrs, Stat
from modules.tasks._remote import first, maybe, mode_or_preserve, q, quiet, tagged

DEFAULT_SIZE = {"rsa": 4096, "rsa1": 4096, "dsa": 1024, "ecdsa": 256, "ed25519": 256}
REGENERATE = ("never", "fail", "partial_idempotence", "full_idempotence", "always")

# what the key's file says: `<tag> ...` lines (exists, info from ssh-keygen -l, pub from ssh-keygen -y)
PROBE = """\
p={path}
printf 'umask '; umask
if [ -e "$p" ]; then
  echo exists
  printf 'stat '; stat -c '""" + STAT_FMT + """' "$p"
  if info=$(ssh-keygen -l -f "$p" 2>/dev/null); then printf 'info %s\\n' "$info"; fi
  if pub=$(ssh-keygen -y -P "$pass" -f "$p" 2>/dev/null); then printf 'pub %s\\n' "$pub"; fi
fi
"""


@dataclass(frozen=True)
class KeyInfo:
    size: int
    fingerprint: str
    comment: str | None
    type: str
    public_key: str

    @classmethod
    def parse(cls, info: str | None, pub: str | None) -> "KeyInfo | None":
        """`3072 SHA256:... comment (RSA)` and `ssh-rsa AAAA... [comment]`; None for a key ssh-keygen cannot
        read (another format, or a passphrase it was not given)."""
        if not info or not pub:
            return None
        size, fingerprint, rest = (info.split(" ", 2) + ["", ""])[:3]
        comment, _, kind = rest.rpartition(" ")
        key_type = kind.strip("()").lower()
        return cls(int(size), fingerprint, comment if comment and comment != "no comment" else None,
                   key_type, " ".join(pub.split()[:2]))


class OpensshKeypair(TaskModule, name="openssh_keypair"):
    description = "an SSH key pair on the target, made with ssh-keygen (community.crypto.openssh_keypair)"
    schema = {
        vol.Required("path"): string,
        vol.Optional("state", default="present"): vol.In(("present", "absent")),
        vol.Optional("type", default="rsa"): vol.In(tuple(DEFAULT_SIZE)),
        vol.Optional("size", default=None): maybe(integer),
        vol.Optional("comment", default=None): maybe(string),
        vol.Optional("passphrase", default=None): maybe(string),
        vol.Optional("force", default=False): boolean,
        vol.Optional("regenerate", default="partial_idempotence"): vol.In(REGENERATE),
        vol.Optional("private_key_format", default="auto"): vol.In(("auto", "opensshbin", "pkcs1", "pkcs8",
                                                                     "ssh")),
        vol.Optional("backend", default="auto"): vol.In(("auto", "cryptography", "opensshbin")),
        vol.Optional("mode", default=None): maybe(mode_or_preserve),
        vol.Optional("owner", default=None): maybe(string),
        vol.Optional("group", default=None): maybe(string),
    }

    @dataclass(frozen=True)
    class Params:
        path: str
        state: str = "present"
        type: str = "rsa"
        size: int | None = None
        comment: str | None = None
        passphrase: str | None = None
        force: bool = False
        regenerate: str = "partial_idempotence"
        private_key_format: str = "auto"
        backend: str = "auto"
        mode: str | None = None
        owner: str | None = None
        group: str | None = None

        @property
        def wanted_size(self) -> int:
            return self.size or DEFAULT_SIZE[self.type]

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        p = params
        secret = (p.passphrase or "") + "\n"
        res = await quiet(ctx, "IFS= read -r pass\n" + PROBE.format(path=q(p.path)), stdin=secret)
        if not res.ok:
            return Result(failed=True, msg=f"could not read {p.path}: {res.stderr.strip()}")
        tags, _ = tagged(res.stdout)
        exists = "exists" in tags
        key = KeyInfo.parse(first(tags, "info"), first(tags, "pub"))
        if p.state == "absent":
            return await self._absent(p, ctx, exists)
        why = self._regenerate_reason(p, exists, key)
        if why.startswith("fail:"):
            return Result(failed=True, msg=why[len("fail:"):], data={"filename": p.path})
        if why:
            if ctx.check:
                return Result(changed=True, msg=f"would make {p.path} ({why})", data={"filename": p.path})
            res = await quiet(ctx, "IFS= read -r pass\n" + self._generate(p), stdin=secret)
            if not res.ok:
                return Result(failed=True, msg=f"ssh-keygen failed: {res.stderr.strip() or res.stdout.strip()}",
                              data={"filename": p.path})
            tags, _ = tagged(res.stdout)
            key = KeyInfo.parse(first(tags, "info"), first(tags, "pub"))
            return self._result(p, key, changed=True, msg=f"{p.path}: {why}")
        settled = await self._settle(p, ctx, key, tags)
        return settled or self._result(p, key, changed=False, msg=f"{p.path} is up to date")

    @staticmethod
    def _regenerate_reason(p: "OpensshKeypair.Params", exists: bool, key: KeyInfo | None) -> str:
        """Why the key is made (again): '' when it stays; 'fail:<message>' when regenerate=fail refuses."""
        if not exists:
            return "made"
        if p.force or p.regenerate == "always":
            return "made again (force)"
        if key is None:
            if p.regenerate in ("full_idempotence",):
                return "made again: the key could not be read"
            if p.regenerate == "fail" or p.regenerate == "partial_idempotence":
                return f"fail:Unable to read the key at {p.path}: a passphrase, or not an OpenSSH key"
            return ""
        mismatch = key.type != p.type or key.size != p.wanted_size
        if not mismatch or p.regenerate == "never":
            return ""
        if p.regenerate == "fail":
            return (f"fail:Key has wrong type and/or size. Will not proceed. To force regeneration, call the "
                    f"module with `generate` set to `partial_idempotence`, `full_idempotence` or `always`, or with "
                    f"`force=yes`.")
        return f"made again: it was {key.type} {key.size}, {p.type} {p.wanted_size} is asked for"

    @staticmethod
    def _generate(p: "OpensshKeypair.Params") -> str:
        size = [] if p.type == "ed25519" else ["-b", str(p.wanted_size)]
        command = ["ssh-keygen", "-q", "-t", p.type, *size, "-C", p.comment or "", "-f", p.path]
        attrs = Attrs(p.mode or "0600", p.owner, p.group)
        return (f"p={q(p.path)}\nrm -f \"$p\" \"$p.pub\"\n"
                f"{shlex.join(command)} -N \"$pass\" </dev/null >/dev/null || exit 1\n"
                + "".join(f"{line}\n" for line in attrs.commands(q(p.path)))
                + PROBE.format(path=q(p.path)))

    async def _settle(self, p: "OpensshKeypair.Params", ctx: TaskContext, key: KeyInfo | None,
                      tags: dict[str, list[str]]) -> Result | None:
        """A key that stays: its comment, mode and owner set as asked. None when nothing changes."""
        commands = []
        if key is not None and p.comment is not None and key.comment != p.comment:
            commands.append(f"ssh-keygen -q -c -C {q(p.comment)} -P \"$pass\" -f {q(p.path)} >/dev/null")
        attrs, st = Attrs(p.mode, p.owner, p.group), Stat.parse(first(tags, "stat"))
        if st is not None and attrs.changes(st, int(first(tags, "umask") or "022", 8)):
            commands += attrs.commands(q(p.path))
        if not commands or ctx.check:
            return None if not commands else Result(changed=True, msg=f"would update {p.path}")
        res = await quiet(ctx, "IFS= read -r pass\n" + "".join(f"{c} || exit 1\n" for c in commands)
                          + PROBE.format(path=q(p.path)), stdin=(p.passphrase or "") + "\n")
        if not res.ok:
            return Result(failed=True, msg=f"could not update {p.path}: {res.stderr.strip()}")
        tags, _ = tagged(res.stdout)
        return self._result(p, KeyInfo.parse(first(tags, "info"), first(tags, "pub")), changed=True,
                            msg=f"{p.path} updated")

    async def _absent(self, p: "OpensshKeypair.Params", ctx: TaskContext, exists: bool) -> Result:
        if not exists:
            return Result(msg=f"{p.path} is absent", data={"filename": p.path})
        if not ctx.check:
            res = await quiet(ctx, f"rm -f {q(p.path)} {q(p.path + '.pub')}")
            if not res.ok:
                return Result(failed=True, msg=f"could not remove {p.path}: {res.stderr.strip()}")
        return Result(changed=True, msg=f"{p.path} removed", data={"filename": p.path})

    @staticmethod
    def _result(p: "OpensshKeypair.Params", key: KeyInfo | None, changed: bool, msg: str) -> Result:
        data = {"filename": p.path, "size": key.size if key else None, "type": key.type if key else None,
                "fingerprint": key.fingerprint if key else None, "public_key": key.public_key if key else None,
                "comment": key.comment if key else None}
        return Result(changed=changed, msg=msg, data=data)
