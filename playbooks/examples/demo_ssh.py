"""`make demo` for the ssh platform: hello-ssh.yml against a throwaway OpenSSH server.

Starts sshd on 127.0.0.1 with its own keys, runs the recipe twice (the second
run changes nothing), shows the files it made, and stops the server.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.sshd import start_sshd  # noqa: E402

RECIPE = ROOT / "playbooks" / "examples" / "hello-ssh.yml"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="recipe-demo-") as tmp:
        server = start_sshd(Path(tmp) / "sshd")
        prefix = Path(tmp) / "target"
        (prefix / "etc").mkdir(parents=True)   # a real host has /etc already
        args = [str(Path(sys.executable).parent / "recipe"), "run", str(RECIPE),
                "--var", f"port={server.port}", "--var", f"user={server.user}",
                "--var", f"key={server.client_key}", "--var", f"host_key={server.host_public_key}",
                "--var", f"prefix={prefix}"]
        try:
            for attempt in ("first run", "second run: nothing left to change"):
                print(f"\n### {attempt}\n", flush=True)
                if subprocess.run(args).returncode != 0:
                    return 1
        finally:
            server.stop()
        print("\n### files the recipe made (under a temporary prefix)")
        for path in sorted(prefix.rglob("*")):
            if path.is_file():
                print(f"  {path.relative_to(prefix)}: {path.read_text().strip().splitlines()[0][:70]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
