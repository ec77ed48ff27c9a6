"""Running the workflow from tests: Snakemake as `make run` calls it, the
study's tables, and their comparison (shared by the workflow and fault tests;
the session's smoke study is the ``smoke_study`` fixture in conftest.py)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from gradpath import grid as gpgrid
from gradpath.results import WALL_TIME_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SCHEMA = ROOT / "configs" / "schema.yaml"
TABLES = ("runs", "curves", "training")
#: Snakemake's target of the grid and its run tables (the Snakefile's rule
#: ``tables``), short of the figures: for the tests of resuming and of faults,
#: whose subject is the runs; the study end to end builds everything.
UP_TO_TABLES = ("tables",)


def _sigint_as_at_a_terminal() -> None:
    """A shell that starts a job in the background (``make test &``, nohup, some
    CI runners) sets SIGINT to ignored, and children inherit that: Ctrl-C would
    then never reach Snakemake. Restore the default, as at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def snakemake(workdir: Path, *extra: str, config: str | Path = "smoke", check=True, env=None,
              **kw):
    """Snakemake as `make run` calls it (the local profile), on ``workdir``;
    ``config`` is a shipped config's name or a config file's path. With
    ``popen=True`` it runs in the background in a session of its own (output
    to ``log``, a path, if given)."""
    path = Path(config) if isinstance(config, Path) else ROOT / "configs" / f"{config}.yaml"
    cmd = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--profile",
           str(ROOT / "profiles" / "local"), "--configfile", str(path), "--cores", "2", *extra]
    if kw.pop("popen", False):
        log = kw.pop("log", None)
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - the child's
        try:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True,
                                    preexec_fn=_sigint_as_at_a_terminal)
        finally:
            if log:
                out.close()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def tables(work: Path, name: str = "smoke") -> dict[str, pd.DataFrame]:
    res = work / "results" / name / "tables"
    return {n: pd.read_parquet(res / f"{n}.parquet") for n in TABLES}


def assert_same_tables(ref: Path, work: Path, name: str = "smoke") -> None:
    """The run tables of two executions agree exactly, wall-time columns aside."""
    a, b = tables(ref, name), tables(work, name)
    for t in a:
        x = a[t].drop(columns=[c for c in WALL_TIME_COLUMNS if c in a[t]])
        y = b[t].drop(columns=[c for c in WALL_TIME_COLUMNS if c in b[t]])
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=t)


def unlock_if_stale(work: Path) -> str:
    """What `make run` does first: drop a stale lock (SIGKILL leaves one);
    returns what it said."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "unlock_if_stale.py"), "-s",
                          str(ROOT / "Snakefile"), "--configfile",
                          str(ROOT / "configs" / "smoke.yaml")],
                         cwd=work, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stderr


def copy_study(ref: Path, dest: Path) -> Path:
    """A copy of a finished study's working directory (results and Snakemake's
    records, modification times kept), to damage without touching ``ref``."""
    shutil.copytree(ref, dest, symlinks=True, ignore=shutil.ignore_patterns("report.html"))
    return dest


def load(name: str) -> dict:
    """A shipped config (``configs/<name>.yaml``), as written."""
    return yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())


def spec(name: str = "smoke") -> dict:
    """A shipped config validated against the schema, its defaults filled in
    (as the Snakefile sees it)."""
    cfg = load(name)
    validate(cfg, str(SCHEMA))
    return cfg


def stage_batches(name: str = "smoke") -> dict:
    """The batches the workflow plans for a shipped config, by stage."""
    cfg = spec(name)
    return gpgrid.stage_batches(gpgrid.probe_runs(cfg["probe"]) + gpgrid.train_runs(cfg["train"]),
                                cfg["batch_seconds"])
