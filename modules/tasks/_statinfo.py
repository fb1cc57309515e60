"""What Ansible's stat and find report about a path, read from one `stat -c` line.

The line's fields are raw numbers; the dict Ansible users register (mode
"0644", isreg, rusr, atime as a float...) is built here, on the controller,
exactly as Python's os.stat would give it on the target.
"""
from __future__ import annotations

import os
import stat as st_mod
from typing import Any

# raw mode (hex), links, uid, gid, size, inode, device, rdev major and minor (hex), blocks, I/O block size,
# atime, mtime, ctime (with nanoseconds), user, group. find appends the name (%n) after them.
STATINFO_FMT = "%f %h %u %g %s %i %d %t %T %b %o %.9X %.9Y %.9Z %U %G"
FIELDS = STATINFO_FMT.count("%")
UNKNOWN = "UNKNOWN"     # what GNU stat prints for a uid or gid without a name

CHECKSUM_TOOLS = {"md5": "md5sum", "sha1": "sha1sum", "sha224": "sha224sum", "sha256": "sha256sum",
                  "sha384": "sha384sum", "sha512": "sha512sum"}

PERMISSION_BITS = (("wusr", st_mod.S_IWUSR), ("rusr", st_mod.S_IRUSR), ("xusr", st_mod.S_IXUSR),
                   ("wgrp", st_mod.S_IWGRP), ("rgrp", st_mod.S_IRGRP), ("xgrp", st_mod.S_IXGRP),
                   ("woth", st_mod.S_IWOTH), ("roth", st_mod.S_IROTH), ("xoth", st_mod.S_IXOTH),
                   ("isuid", st_mod.S_ISUID), ("isgid", st_mod.S_ISGID))


def seconds(stamp: str) -> float:
    """"1795788511.668006721" as CPython's st_atime computes it (sec + nsec * 1e-9), to the last digit."""
    sec, _, nsec = stamp.partition(".")
    return int(sec) + int(nsec or 0) * 1e-9


def split_line(line: str) -> tuple[list[str], str]:
    """The stat fields of a line, and what follows them (find's file name)."""
    parts = line.split(" ", FIELDS)
    return parts[:FIELDS], parts[FIELDS] if len(parts) > FIELDS else ""


def statinfo(fields: list[str]) -> dict[str, Any]:
    """Ansible's keys for one path; pw_name and gr_name are None where the target has no such name."""
    raw, nlink, uid, gid, size, inode, dev, _, _, _, _, atime, mtime, ctime, user, group = fields
    mode = int(raw, 16)
    info: dict[str, Any] = {
        "mode": f"{st_mod.S_IMODE(mode):04o}",
        "isdir": st_mod.S_ISDIR(mode), "ischr": st_mod.S_ISCHR(mode), "isblk": st_mod.S_ISBLK(mode),
        "isreg": st_mod.S_ISREG(mode), "isfifo": st_mod.S_ISFIFO(mode), "islnk": st_mod.S_ISLNK(mode),
        "issock": st_mod.S_ISSOCK(mode),
        "uid": int(uid), "gid": int(gid), "size": int(size), "inode": int(inode), "dev": int(dev),
        "nlink": int(nlink), "atime": seconds(atime), "mtime": seconds(mtime), "ctime": seconds(ctime),
        "pw_name": None if user == UNKNOWN else user, "gr_name": None if group == UNKNOWN else group,
    }
    info.update((name, bool(mode & bit)) for name, bit in PERMISSION_BITS)
    return info


def linux_extras(fields: list[str]) -> dict[str, Any]:
    """What stat (not find) adds on Linux from os.stat: st_blocks, st_blksize, st_rdev."""
    major, minor, blocks, blksize = fields[7:11]
    return {"blocks": int(blocks), "block_size": int(blksize),
            "device_type": os.makedev(int(major, 16), int(minor, 16))}
