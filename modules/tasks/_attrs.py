"""File attributes: what stat says a path has, and what chmod/chown would make of it.

Deciding "would this change anything" happens here, on the controller, from
one stat line; the target only ever runs plain chmod and chown.
"""
from __future__ import annotations

import re
import shlex
import stat as st_mod
from dataclasses import dataclass

# raw mode (hex, with the type bits), size, uid, gid, device, inode, user, group
STAT_FMT = "%f %s %u %g %d %i %h %U %G"


@dataclass(frozen=True)
class Stat:
    kind: str          # file, directory, link or other
    mode: int          # permission bits only
    size: int
    uid: int
    gid: int
    dev: int
    inode: int
    user: str
    group: str
    links: int = 1     # hard links: Ansible reports a regular file with more than one as state 'hard'

    @classmethod
    def parse(cls, line: str | None) -> "Stat | None":
        if not line or line == "absent":
            return None
        raw, size, uid, gid, dev, inode, links, user, group = line.split(" ", 8)
        mode = int(raw, 16)
        kind = {st_mod.S_IFREG: "file", st_mod.S_IFDIR: "directory",
                st_mod.S_IFLNK: "link"}.get(st_mod.S_IFMT(mode), "other")
        return cls(kind, st_mod.S_IMODE(mode), int(size), int(uid), int(gid), int(dev), int(inode), user, group,
                   int(links))


def target_mode(spec: str, current: int, is_dir: bool, umask: int) -> int:
    """The mode `chmod spec` gives a file now at `current`, after GNU chmod and Ansible's port of it."""
    if spec[0].isdigit():
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        who, op, perms = re.match(r"^([ugoa]*)([-+=])([rwxXst]*)$", clause).groups()
        masked = who == ""                                  # no who: the umask bits are left alone
        for w in ("ugo" if who in ("", "a") or "a" in who else who):
            shift = {"u": 6, "g": 3, "o": 0}[w]
            bits = sum({"r": 4, "w": 2, "x": 1}[p] for p in perms if p in "rwx") << shift
            if masked:
                bits &= ~umask
            if "X" in perms and (is_dir or mode & 0o111):
                bits |= 1 << shift
            if "s" in perms and w != "o":
                bits |= 0o4000 if w == "u" else 0o2000
            if "t" in perms and w == "o":
                bits |= 0o1000
            if op == "=":   # GNU chmod keeps a directory's set-id bits unless the clause names them
                mode &= ~({"u": 0o4700, "g": 0o2070, "o": 0o1007}[w] & ~(0o6000 if is_dir else 0))
            mode = mode & ~bits if op == "-" else mode | bits
    return mode


def _is(name: str, number: int, named: str) -> bool:
    return int(name) == number if name.isdigit() else name == named


@dataclass(frozen=True)
class Attrs:
    """mode/owner/group as a task asks for them; None leaves that attribute alone."""

    mode: str | None = None
    owner: str | None = None
    group: str | None = None

    def changes(self, st: Stat, umask: int) -> list[str]:
        """What would change on an existing path, in words ("mode 0600 -> 0644")."""
        out = []
        if self.mode:
            want, have = target_mode(self.mode, st.mode, st.kind == "directory", umask), st.mode
            if st.kind == "directory" and self.mode[0].isdigit() and len(self.mode) < 5:
                have &= ~0o6000 | want   # GNU chmod keeps a directory's set-id bits on short numeric modes
            if want != have:
                out.append(f"mode {have:04o} -> {want:04o}")
        if self.owner and not _is(self.owner, st.uid, st.user):
            out.append(f"owner {st.user} -> {self.owner}")
        if self.group and not _is(self.group, st.gid, st.group):
            out.append(f"group {st.group} -> {self.group}")
        return out

    def commands(self, target: str, recurse: bool = False, link: bool = False) -> list[str]:
        """chown before chmod: chown clears set-id bits that chmod may be asked to set."""
        flags = ("-R " if recurse else "") + ("-h " if link else "")
        cmds = []
        if self.owner or self.group:
            spec = (self.owner or "") + (f":{self.group}" if self.group else "")
            cmds.append(f"chown {flags}{shlex.quote(spec)} {target}")
        if self.mode and not link:
            cmds.append(f"chmod {'-R ' if recurse else ''}{shlex.quote(self.mode)} {target}")
        return cmds


def new_mode(attrs: Attrs, existing: Stat | None, umask: int) -> int:
    """The mode a replacement file gets: the asked one, else the replaced file's, else the umask default."""
    base = existing.mode if existing and existing.kind == "file" else 0o666 & ~umask
    return target_mode(attrs.mode, base, False, umask) if attrs.mode else base
