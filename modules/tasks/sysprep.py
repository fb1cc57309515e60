"""sysprep: generalize the machine before it is shut down and snapshotted, as virt-sysprep and Packer's
cleanup scripts do: no machine identity, host keys, build key, logs, caches or history left in the image.

One script does it all, as root; it is built by sysprep_script(params, root), whose root prefix lets the
tests run the very same script against a directory tree. Commands that act on the running system rather
than on files (cloud-init clean, journalctl, the package managers' clean, fstrim) run only when root is /.
Put it last: the SSH session in use survives, but a reboot after it would not let the build back in.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, fields

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.remote.ssh import BUILD_KEY_MARK
from modules.tasks._remote import WHOAMI_SH, failure, not_root, quiet, tagged, tail

HISTORIES = (".bash_history", ".ash_history", ".zsh_history", ".sh_history", ".history", ".python_history",
             ".lesshst", ".viminfo", ".wget-hsts")
KEYGEN_UNIT = """[Unit]
Description=Generate SSH host keys (removed by recipe sysprep)
Before=ssh.service sshd.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""
OPTIONS = ("machine_id", "ssh_host_keys", "cloud_init", "logs", "package_cache", "shell_history", "tmp",
           "build_keys", "zero_free_space")


def _section(name: str, body: str) -> str:
    """Run body; report `done <name>` or `fail <name>` (its stderr tells why) and go on with the next one."""
    return f"if {{\n{body}}}; then echo 'done {name}'; else echo 'fail {name}'; fi\n"


def sysprep_script(p: "Sysprep.Params", root: str = "/", zero_count: int | None = None) -> str:
    """The whole script. Under a root other than / only files are touched, and the zero fill writes
    zero_count MiB (1 unless given) instead of filling the disk: that is how the tests run it."""
    live = root.rstrip("/") == ""
    if not live and zero_count is None:
        zero_count = 1
    script = (WHOAMI_SH + '[ "$(id -u)" = 0 ] || exit 0\n'
              f"R={shlex.quote(root.rstrip('/'))}\n")
    if p.machine_id:   # empty, not absent: systemd makes a new id at the next boot and treats it as the first
        script += _section("machine-id", '[ ! -e "$R/etc/machine-id" ] || : > "$R/etc/machine-id"\n'
                                         'rm -f "$R/var/lib/dbus/machine-id"\n')
    if p.ssh_host_keys:   # and where nothing would make new ones at boot, a unit that does
        unit = "$R/etc/systemd/system/recipe-ssh-keygen.service"
        script += _section("ssh-host-keys", (
            'rm -f "$R"/etc/ssh/ssh_host_*\n'
            'if [ -d "$R/etc/ssh" ] && [ -d "$R/etc/systemd/system" ] && [ ! -e "$R/usr/bin/cloud-init" ] '
            '&& [ ! -e "$R/usr/lib/systemd/system/sshd-keygen@.service" ] '
            '&& [ ! -e "$R/lib/systemd/system/sshd-keygen@.service" ]; then\n'
            f"printf '%s' {shlex.quote(KEYGEN_UNIT)} > \"{unit}\" && "
            'mkdir -p "$R/etc/systemd/system/multi-user.target.wants" && '
            'ln -sf /etc/systemd/system/recipe-ssh-keygen.service '
            '"$R/etc/systemd/system/multi-user.target.wants/recipe-ssh-keygen.service"\nfi\n'))
    if p.cloud_init:   # so the next boot is a new instance: new keys, new network, user-data run again
        offline = ('if [ -d "$R/var/lib/cloud" ]; then find "$R/var/lib/cloud" -mindepth 1 -maxdepth 1 ! -name seed '
                   '-exec rm -rf {} +; fi\nrm -f "$R"/var/log/cloud-init*.log\n')
        script += _section("cloud-init", ("if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs >&2; "
                                          "else\n" + offline + "fi\n") if live else offline)
    if p.package_cache:
        tools = ("command -v apt-get >/dev/null 2>&1 && apt-get clean\n"
                 "if command -v dnf >/dev/null 2>&1; then dnf -q clean all; "
                 "elif command -v yum >/dev/null 2>&1; then yum -q clean all; fi\n"
                 "command -v apk >/dev/null 2>&1 && apk cache clean 2>/dev/null\n"
                 "command -v zypper >/dev/null 2>&1 && zypper -q clean --all\n"
                 "command -v pacman >/dev/null 2>&1 && pacman -Scc --noconfirm >/dev/null\n") if live else ""
        script += _section("package-cache", tools + (
            'rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb '
            '"$R"/var/cache/apt/archives/partial/* "$R"/var/cache/dnf/* "$R"/var/cache/yum/* "$R"/var/cache/apk/* '
            '"$R"/var/cache/zypp/packages/* "$R"/var/cache/pacman/pkg/*\n'))
    if p.shell_history:
        files = " ".join(f'"$h/{name}"' for name in HISTORIES)
        script += _section("shell-history", f'for h in "$R/root" "$R"/home/*; do [ -d "$h" ] && rm -f {files}; done\n'
                                            ": \n")
    if p.tmp:   # systemd-private-* belong to running services, and systemd removes them itself
        script += _section("tmp", 'find "$R/tmp" "$R/var/tmp" -mindepth 1 -maxdepth 1 ! -name "systemd-private-*" '
                                  '-exec rm -rf {} + 2>/dev/null\n: \n')
    if p.build_keys:   # rewritten in place (cat >), so the file keeps its owner, mode and SELinux label
        script += _section("build-keys", (
            '{ echo "$R/root"; for h in "$R"/home/*; do echo "$h"; done\n'
            '  [ -r "$R/etc/passwd" ] && awk -F: -v r="$R" \'$6 != "" && $6 != "/" {print r $6}\' "$R/etc/passwd"; } '
            '| sort -u | while IFS= read -r h; do\n'
            '  for f in "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2"; do\n'
            f'    if [ -f "$f" ] && grep -q -- {BUILD_KEY_MARK} "$f"; then\n'
            f'      grep -v -- {BUILD_KEY_MARK} "$f" > "$f.recipe-tmp"; cat "$f.recipe-tmp" > "$f" && '
            'rm -f "$f.recipe-tmp" && printf \'key %s\\n\' "$f" || exit 1\n'
            '    fi\n  done\ndone\n'))
    if p.logs:   # rotated logs go; the others are emptied in place, as the daemons writing them keep them open
        journal = ("if command -v journalctl >/dev/null 2>&1; then journalctl --rotate >/dev/null 2>&1; "
                   "journalctl --vacuum-time=1s >/dev/null 2>&1; fi\n") if live else \
            'find "$R/var/log/journal" -type f -name "*.journal*" -exec rm -f {} + 2>/dev/null\n'
        script += _section("logs", journal + (
            'if [ -d "$R/var/log" ]; then\n'
            'find "$R/var/log" -path "$R/var/log/journal" -prune -o -type f \\( -name "*.gz" -o -name "*.xz" '
            '-o -name "*.bz2" -o -name "*.zst" -o -name "*.old" -o -name "*.[0-9]" -o -name "*-[0-9]*[0-9]" \\) '
            '-exec rm -f {} + &&\n'
            'find "$R/var/log" -path "$R/var/log/journal" -prune -o -type f -exec truncate -s 0 {} +\nfi\n'))
    if p.zero_free_space:   # so that the exported image compresses: trim, or else write zeros and free them
        fill = (f'dd if=/dev/zero of="$R/var/tmp/recipe-zero" bs=1M{f" count={zero_count}" if zero_count else ""} '
                '2>/dev/null; sync; rm -f "$R/var/tmp/recipe-zero"; sync\n')
        # the zeros go where /var/tmp is, so the trim that matters is /'s (fstrim -a fails when any one fs fails)
        trim = ("t=$(fstrim -av 2>&1); printf '%s\\n' \"$t\" >&2; "
                "printf '%s\\n' \"$t\" | grep -q '^/: .*trimmed'")
        script += _section("zero-free-space", (
            f"if command -v fstrim >/dev/null 2>&1 && {{ {trim}; }}; then :; else\n{fill}fi\n" if live else fill))
    return script + "exit 0\n"


class Sysprep(TaskModule, name="sysprep"):
    description = "Generalize the image: machine-id, SSH host keys, cloud-init, logs, caches, history, build key"
    schema = {vol.Optional(option, default=True): vol.Boolean() for option in OPTIONS}

    @dataclass(frozen=True)
    class Params:
        machine_id: bool = True
        ssh_host_keys: bool = True
        cloud_init: bool = True
        logs: bool = True
        package_cache: bool = True
        shell_history: bool = True
        tmp: bool = True
        build_keys: bool = True
        zero_free_space: bool = True

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        chosen = [f.name.replace("_", "-") for f in fields(p) if getattr(p, f.name)]
        if not chosen:
            return Result(msg="nothing to do: every option is false")
        if ctx.check:   # only the check that it would be allowed to
            res = await quiet(ctx, WHOAMI_SH)
            if not res.ok:
                return failure("could not tell which user sysprep runs as", res)
            return not_root(tagged(res.stdout)[0], "sysprep") or \
                Result(changed=True, msg="would clean " + ", ".join(chosen))
        res = await quiet(ctx, sysprep_script(p))
        if not res.ok:
            return failure("sysprep failed", res)
        tags, _ = tagged(res.stdout)
        refusal = not_root(tags, "sysprep")
        if refusal:
            return refusal
        data = {"cleaned": tags.get("done", []), "build_keys_removed_from": tags.get("key", [])}
        if "fail" in tags:
            return Result(failed=True, changed=True, data=data,
                          msg=f"sysprep could not clean {', '.join(tags['fail'])}: {tail(res.stderr) or 'no message'}")
        return Result(changed=True, msg="cleaned " + ", ".join(tags.get("done", [])), data=data)
