"""Remove a stale Snakemake lock (left by SIGKILL, OOM or a power loss).

Snakemake refuses to start while `.snakemake/locks` holds a lock, and only a
process that dies cleanly removes its own. This unlocks when no other
Snakemake process is running in this directory, so `make run` resumes after
any kind of interruption; a live run keeps its lock.

    python scripts/unlock_if_stale.py [snakemake args...]
"""

import os
import subprocess
import sys
from pathlib import Path


def other_snakemake_here() -> bool:
    here = Path.cwd().resolve()
    me = {os.getpid(), os.getppid()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in me:
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = (proc / "cwd").resolve()
        except OSError:
            continue
        if cwd == here and any(a.endswith(b"snakemake") or a == b"snakemake" for a in argv):
            return True
    return False


def main() -> int:
    locks = Path(".snakemake/locks")
    if not locks.is_dir() or not any(locks.iterdir()):
        return 0
    if other_snakemake_here():
        print("unlock_if_stale: another snakemake runs here; leaving its lock", file=sys.stderr)
        return 0
    print("unlock_if_stale: removing a stale lock (interrupted run)", file=sys.stderr)
    return subprocess.call([sys.executable, "-m", "snakemake", "--unlock", *sys.argv[1:]],
                           stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
