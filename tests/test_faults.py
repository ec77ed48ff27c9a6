"""Fault injection on the smoke study: each fault ends with tables identical
to an uninterrupted run's, or with a clear error before any work (issue 17).

Faults: a truncated run file, a deleted table, a batch killed in the middle
of writing a run, two instances at once (and a Snakemake killed under a job
that goes on), a study named ``..``, a config with a duplicate key. Each
starts from a copy of the session's finished smoke study (``smoke_study``),
so only what the fault touches runs again.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import yaml
from studies import ROOT, assert_same_tables, copy_study, snakemake, tables, unlock_if_stale

from gradpath.results import check_run, run_files

pytestmark = pytest.mark.slow

STUDY = Path("results") / "smoke"

# Loaded into the batch jobs through PYTHONPATH: at the N-th atomic file write
# of a run_batch job, leave a half-written temporary file and then either die
# (SIGKILL, as the OOM killer would) or wait until a file appears.
SITECUSTOMIZE = '''
import os, sys
if os.environ.get("FAULT_AT_WRITE") and any("run_batch" in a for a in sys.argv):
    import signal, time
    from pathlib import Path
    import gradpath.results as results
    _n, _calls, _write = int(os.environ["FAULT_AT_WRITE"]), [0], results.atomic_write

    def atomic_write(path, write, *args, **kwargs):
        _calls[0] += 1
        if _calls[0] == _n:
            path = Path(path)
            path.with_name(f".{path.name}.tmp-{os.getpid()}-0").write_bytes(b"PAR1 half")
            if os.environ["FAULT"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            paused = Path(os.environ["FAULT_PAUSED"])
            paused.with_name("paused.tmp").write_text(str(os.getpid()))
            os.replace(paused.with_name("paused.tmp"), paused)  # whole, or not there
            while not Path(os.environ["FAULT_RESUME"]).exists():
                time.sleep(0.1)
        return _write(path, write, *args, **kwargs)

    results.atomic_write = atomic_write
'''


def fault_env(tmp_path: Path, fault: str, at_write: int) -> dict:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    # the hook loads numpy before run_batch.py can set one thread: set it here
    threads = dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                             "GRADPATH_NUM_THREADS"), "1")
    return {**os.environ, **threads, "PYTHONPATH": path, "FAULT": fault,
            "FAULT_AT_WRITE": str(at_write),
            "FAULT_PAUSED": str(tmp_path / "paused"), "FAULT_RESUME": str(tmp_path / "resume")}


def a_batch(work: Path, kind: str = "probe") -> tuple[str, list[str]]:
    """A finished batch of the study (the first of ``kind``) and its run ids."""
    marker = sorted((work / STUDY / "batches").glob(f"{kind}-*.json"))[0]
    return marker.stem, sorted(json.loads(marker.read_text())["runs"])


def forget_batch(work: Path, batch: str, runs: list[str]) -> None:
    """As if the batch had never run: its marker and its runs' files gone."""
    (work / STUDY / "batches" / f"{batch}.json").unlink()
    for rid in runs:
        for p in run_files(work / STUDY / "runs", rid):
            p.unlink()


def locked(work: Path) -> bool:
    locks = work / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def wait_for(cond, seconds: float = 240, what: str = "") -> None:
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_truncated_run_file_is_recomputed(smoke_study, tmp_path):
    ref = smoke_study[0]
    work = copy_study(ref, tmp_path / "w")
    rid = tables(ref)["runs"].query("kind == 'train'")["run_id"].iloc[0]
    damaged = work / STUDY / "runs" / f"{rid}.training.parquet"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    # the batch's marker no longer holds: found at start-up (a dry run too), and removed
    dry = snakemake(work, "-n")
    assert "Nothing to be done" not in dry.stdout + dry.stderr
    assert f"run {rid}: {damaged.name} is" in dry.stderr and "runs again" in dry.stderr
    snakemake(work)
    logs = "".join(p.read_text() for p in (work / STUDY / "logs" / "batches").glob("*.log"))
    assert f"run {rid} is not finished: {damaged.name} is" in logs
    assert check_run(work / STUDY / "runs", rid)[1] == ""
    assert_same_tables(ref, work)
    assert "Nothing to be done" in snakemake(work, "-n").stdout


DELETED = ["tables/runs.parquet", "tables/probes.csv", "tables/selection.csv",
           "figures/c_training_curves.png"]


def test_deleted_tables_are_made_again(smoke_study, tmp_path):
    ref = smoke_study[0]
    work = copy_study(ref, tmp_path / "w")
    for table in DELETED:
        (work / STUDY / table).unlink()
    assert "Nothing to be done" not in snakemake(work, "-n").stdout
    snakemake(work)
    assert all((work / STUDY / table).exists() for table in DELETED)
    assert_same_tables(ref, work)
    assert "Nothing to be done" in snakemake(work, "-n").stdout


def test_a_batch_killed_mid_write_resumes_to_the_same_tables(smoke_study, tmp_path):
    ref = smoke_study[0]
    work = copy_study(ref, tmp_path / "w")
    batch, runs = a_batch(work)
    forget_batch(work, batch, runs)
    # 4 files per run: killed while writing the 2nd file of the batch's 3rd run
    out = snakemake(work, env=fault_env(tmp_path, "kill", 10), check=False)
    assert out.returncode != 0
    runs_dir = work / STUDY / "runs"
    why = {rid: check_run(runs_dir, rid)[1] for rid in runs}
    half = [rid for rid, w in why.items() if w]
    assert len(half) == 1 and "summary" in why[half[0]], why  # files written, no summary
    assert list(runs_dir.glob(f".{half[0]}.*.tmp-*"))  # and a half-written file
    assert sum(check_run(runs_dir, rid)[0] is not None for rid in runs) == 2
    snakemake(work)
    assert not list(runs_dir.glob(".*.tmp-*"))
    log = (work / STUDY / "logs" / "batches" / f"{batch}.log").read_text()
    assert f"run {half[0]} is not finished" in log and log.count("skipped") == 2
    assert_same_tables(ref, work)


def test_two_instances_and_an_orphaned_job(smoke_study, tmp_path):
    """A second Snakemake on a running study is refused before any work; the
    stale-lock remover leaves the lock while Snakemake, or a job it left
    running when it was killed, is alive; the study then finishes to the same
    tables."""
    ref = smoke_study[0]
    work = copy_study(ref, tmp_path / "w")
    batch, runs = a_batch(work)
    forget_batch(work, batch, runs)
    first = snakemake(work, env=fault_env(tmp_path, "pause", 6), popen=True,
                      log=tmp_path / "first.log")
    try:
        wait_for((tmp_path / "paused").exists, what="the first instance's job")
        job = psutil.Process(int((tmp_path / "paused").read_text()))
        assert locked(work)
        before = {p.name: p.stat().st_mtime_ns for p in (work / STUDY / "runs").iterdir()}
        second = snakemake(work, check=False)
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
        after = {p.name: p.stat().st_mtime_ns for p in (work / STUDY / "runs").iterdir()}
        assert after == before  # the second instance did no work
        assert "leaving its lock" in unlock_if_stale(work)
        os.kill(first.pid, signal.SIGKILL)  # Snakemake dies; its job goes on
        first.wait(timeout=60)
        assert job.is_running()
        assert "leaving its lock" in unlock_if_stale(work) and locked(work)
        (tmp_path / "resume").write_text("")
        job.wait(timeout=240)
    finally:
        (tmp_path / "resume").write_text("")
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert "removing a stale lock" in unlock_if_stale(work) and not locked(work)
    snakemake(work)
    assert_same_tables(ref, work)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_a_study_named_dotdot_is_refused_before_any_work(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    for name in ("..", ".", ".hidden"):
        work = tmp_path / "w" / "inner"
        work.mkdir(parents=True, exist_ok=True)
        path = _config(tmp_path, yaml.safe_dump({**cfg, "name": name}))
        out = snakemake(work, "-n", config=path, check=False)
        assert out.returncode != 0
        assert f"'{name}' does not match" in out.stdout + out.stderr, out.stdout[-2000:]
        assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["inner"]
        assert not (work / "results").exists() and not (work / "batches").exists()


def test_a_config_with_a_duplicate_key_is_refused(tmp_path):
    text = (ROOT / "configs" / "smoke.yaml").read_text()
    text = text.replace("    hidden: 12\n", "    hidden: 12\n    hidden: 24\n", 1)
    out = snakemake(tmp_path / "w", "-n", config=_config(tmp_path, text), check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "key 'hidden' is given twice" in text and "study.yaml, line" in text
    assert not (tmp_path / "w" / "results").exists()


def test_a_config_asking_for_yte_templating_is_refused(tmp_path):
    text = "__use_yte__: true\n" + (ROOT / "configs" / "smoke.yaml").read_text()
    out = snakemake(tmp_path / "w", "-n", config=_config(tmp_path, text), check=False)
    assert out.returncode != 0 and "__use_yte__ is not allowed" in out.stdout + out.stderr


def test_lr_beside_lrs_fails_the_dry_run_naming_the_block(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg["train"][0]["lr"] = 0.001
    out = snakemake(tmp_path / "w", "-n", config=_config(tmp_path, yaml.safe_dump(cfg)),
                    check=False)
    assert out.returncode != 0
    assert "train[0] (remedies): gives both lr" in out.stdout + out.stderr
