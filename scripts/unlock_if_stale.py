"""Remove a stale Snakemake lock (left by SIGKILL, OOM or a power loss).

Snakemake refuses to start while `.snakemake/locks` holds a lock, and only a
process that dies cleanly removes its own. This unlocks when no other
Snakemake process, and no job of one, is running in this directory, so
`make run` resumes after any kind of interruption; a live run keeps its lock.
A job outlives a Snakemake killed with SIGKILL (it is orphaned, not killed):
while it still writes the study's files, the lock stays.

    python scripts/unlock_if_stale.py [snakemake args...]
"""

import os
import subprocess
import sys
from pathlib import Path

import psutil


def is_snakemake(argv: list[str]) -> bool:
    """Whether a command line runs Snakemake (its script, or ``python -m snakemake``)."""
    names = [Path(a).name for a in argv]
    return "snakemake" in names or any(
        a == "-m" and b == "snakemake" for a, b in zip(argv, argv[1:], strict=False))


def is_workflow_job(argv: list[str]) -> bool:
    """Whether a command line is a script job of a Snakemake workflow: Snakemake
    runs ``python .snakemake/scripts/tmpXXXX.<script>.py`` (every job that
    writes runs or tables is one). A viewer of a log (``tail -f
    .snakemake/log/...``) is not."""
    return bool(argv) and "python" in Path(argv[0]).name and any(
        Path(a).parent.parts[-2:] == (".snakemake", "scripts") for a in argv[1:])


def other_snakemake_here() -> bool:
    """Whether another Snakemake process, or a job of one, runs in this
    directory (psutil: Linux, macOS and Windows alike)."""
    here = Path.cwd().resolve()
    me = {os.getpid(), os.getppid()}
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = proc.info
        if info["pid"] in me or not info.get("cmdline") or not info.get("cwd"):
            continue  # gone, or not ours to inspect
        try:
            if Path(info["cwd"]).resolve() == here and (
                    is_snakemake(info["cmdline"]) or is_workflow_job(info["cmdline"])):
                return True
        except OSError:
            continue
    return False


def main() -> int:
    locks = Path(".snakemake/locks")
    if not locks.is_dir() or not any(locks.iterdir()):
        return 0
    if other_snakemake_here():
        print("unlock_if_stale: a snakemake or one of its jobs runs here; leaving its lock",
              file=sys.stderr)
        return 0
    print("unlock_if_stale: removing a stale lock (interrupted run)", file=sys.stderr)
    return subprocess.call([sys.executable, "-m", "snakemake", "--unlock", *sys.argv[1:]],
                           stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
