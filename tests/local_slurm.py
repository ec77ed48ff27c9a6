"""A throw-away single-node SLURM cluster for the cluster test.

Debian's ``slurmctld``, ``slurmd`` and ``munge`` (``make slurm`` installs them)
run from a private folder: their own ``slurm.conf``, a private MUNGE socket,
state, logs and pid files, and free TCP ports, so a SLURM already running
elsewhere is left alone. Stopping kills exactly the daemons this started, by
their pid files.

The daemons, and every command run through :meth:`LocalSlurm.command`, live
in a private mount namespace in which the folder's configuration is bound
over ``/etc/slurm``: SLURM's commands inside a job read only that path (the
Snakemake SLURM plugin clears ``SLURM_CONF`` before its ``srun``), and the
machine's own ``/etc/slurm`` stays untouched.

Without accounting (``sacct`` fails), the Snakemake SLURM plugin must query
job states with ``squeue``: the project's profile does so, and ``MinJobAge``
here keeps finished jobs visible to ``squeue`` long enough.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import needs

from gradpath.resources import physical_memory_mb

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "unshare", "nsenter", "mount")


def missing() -> str | None:
    """Why a local SLURM cannot start here, or None if it can (a sentence that
    starts "needs": the cluster test's skip reason, tests/needs.py)."""
    if not needs.is_root():
        return ("needs root to start slurmctld, slurmd and munged for a one-node SLURM: run "
                "`make test` as root (as CI does; it installs them first, `make slurm`)")
    absent = [p for p in DAEMONS + CLIENTS
              if not (shutil.which(p) or shutil.which(p, path="/usr/sbin:/sbin"))]
    if absent:
        return (f"needs SLURM and MUNGE installed ({', '.join(absent)} missing): `make slurm` "
                "as root installs Debian's slurmctld, slurmd, slurm-client and munge")
    if not Path("/etc/slurm").is_dir():
        return "needs /etc/slurm (Debian's slurm-client package creates it): `make slurm` as root"
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        return ("needs a private mount namespace (unshare --mount), which this machine refuses "
                "(a container without CAP_SYS_ADMIN?): run it on a VM or a privileged container")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exe(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") or name


class LocalSlurm:
    """A one-node SLURM cluster in ``root``; use as a context manager.

    ``env`` is the environment in which ``sbatch``, ``squeue`` and Snakemake
    talk to it (``SLURM_CONF``).
    """

    def __init__(self, root: Path, cpus: int | None = None, mem_mb: int | None = None):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.mem_mb = mem_mb or int(physical_memory_mb() * 0.8)
        self.etc = self.root / "etc-slurm"
        self.conf = self.etc / "slurm.conf"
        self.env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
        self.started: list[tuple[str, Path]] = []  # (daemon, pid file)
        self.holder: subprocess.Popen | None = None  # keeps the mount namespace alive

    def command(self, *cmd: str, cwd: str | os.PathLike | None = None) -> list[str]:
        """``cmd`` run inside the cluster's mount namespace, in ``cwd`` (default:
        the current directory; entering a mount namespace would reset it)."""
        assert self.holder is not None, "start the cluster first"
        return ["nsenter", f"--target={self.holder.pid}", "--mount",
                f"--wd={Path(cwd or os.getcwd()).resolve()}", "--", *cmd]

    def _write_conf(self) -> None:
        r = self.root
        for d in ("state", "spool", "logs"):
            (r / d).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/slurm", self.etc, symlinks=True, dirs_exist_ok=True)
        self.conf.write_text(f"""\
ClusterName=gradpath-test
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r / "munge.sock"}
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "logs" / "slurmctld.log"}
SlurmdLogFile={r / "logs" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=300
ReturnToService=2
NodeName=localhost CPUs={self.cpus} RealMemory={self.mem_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")

    def _run(self, *cmd: str) -> None:
        out = subprocess.run(self.command(*cmd), env=self.env, capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr}")

    def _namespace(self) -> None:
        """A process holding a private mount namespace, /etc/slurm bound in it."""
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                        "sleep", "infinity"])
        mine = os.readlink("/proc/self/ns/mnt")
        for _ in range(100):
            try:
                if os.readlink(f"/proc/{self.holder.pid}/ns/mnt") != mine:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("unshare did not create a mount namespace")
        self._run("mount", "--bind", str(self.etc), "/etc/slurm")

    def start(self) -> LocalSlurm:
        """Write the configuration, start munged, slurmctld and slurmd in a
        private mount namespace, and wait until the node is idle."""
        why = missing()
        if why:
            raise RuntimeError(why)
        self._write_conf()
        self._namespace()
        r = self.root
        self._run(_exe("munged"), "--force", f"--socket={r / 'munge.sock'}",
                  f"--pid-file={r / 'munged.pid'}", f"--log-file={r / 'logs' / 'munged.log'}",
                  f"--seed-file={r / 'munged.seed'}")
        self.started.append(("munged", r / "munged.pid"))
        self._run(_exe("slurmctld"), "-f", str(self.conf))
        self.started.append(("slurmctld", r / "slurmctld.pid"))
        # the machine's hostname is not "localhost": name the node explicitly
        self._run(_exe("slurmd"), "-f", str(self.conf), "-N", "localhost")
        self.started.append(("slurmd", r / "slurmd.pid"))
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            out = subprocess.run(self.command(_exe("sinfo"), "-h", "-o", "%T"), env=self.env,
                                 capture_output=True, text=True)
            state = out.stdout.strip()
            if state == "idle":
                return self
            time.sleep(0.25)
        raise RuntimeError(f"the local SLURM node did not become idle (state {state!r}); "
                           f"see {r / 'logs'}")

    def stop(self) -> None:
        """Cancel leftover jobs, then stop the daemons this started, by pid, and
        the namespace's holder."""
        if self.holder is None:
            return
        if any(name == "slurmctld" for name, _ in self.started):
            squeue = self.command(_exe("squeue"), "-h", "-o", "%i")
            subprocess.run(self.command(_exe("scancel"), "--user", "root"), env=self.env,
                           capture_output=True, timeout=30)
            for _ in range(100):  # up to 10 s for the jobs to end before their daemons
                out = subprocess.run(squeue, env=self.env, capture_output=True, text=True,
                                     timeout=30)
                if out.returncode != 0 or not out.stdout.strip():
                    break
                time.sleep(0.1)
        for _daemon, pidfile in reversed(self.started):
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):  # up to 10 s for a clean exit
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started.clear()
        self.holder.kill()
        self.holder.wait()
        self.holder = None

    def __enter__(self) -> LocalSlurm:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
