"""Provenance: the code id (what it covers and what it ignores), the machine
record, stale runs recomputed (or kept) with the reason logged, and the
resource estimates against measured peak memory."""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gradpath import grid, provenance, resources
from gradpath.results import check_run, read_tables

SMALL = dict(task="adding", seq_len=8, cell="rnn", activation="tanh", init="orthogonal",
             gain=1.0, clip="norm", clip_threshold=1.0, optimizer="adam", lr=1e-3, hidden=6,
             batch=4, steps=6, seed=0, eval_every=3, eval_batches=1, ragged=False,
             dtype="float64", stage="report", selection="")


def finished_code_id(out_dir: Path, rid: str) -> str | None:
    """The code id recorded by finished run ``rid`` ("" if none), None if unfinished."""
    summary = check_run(out_dir, rid)[0]
    return None if summary is None else str(summary.get("code_id") or "")


def _run() -> grid.Run:
    return grid.Run.from_config("train", dict(SMALL))


# -- the code id ------------------------------------------------------------------------
def _code_id_of(package: Path) -> str:
    """code_id computed by a fresh interpreter importing ``package``'s copy."""
    out = subprocess.run([sys.executable, "-c", "from gradpath.provenance import code_id; "
                          "print(code_id())"], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(package.parent), "PATH": ""})
    return out.stdout.strip()


def test_code_id_follows_the_code_not_its_comments(tmp_path):
    pkg = tmp_path / "gradpath"
    shutil.copytree(provenance.PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    assert _code_id_of(pkg) == provenance.code_id()  # same files, same id
    theory = pkg / "theory.py"
    text = theory.read_text()
    # a comment, a docstring and the layout do not change what the code does
    theory.write_text('"""Another docstring."""\n# a comment\n\n\n'
                      + text.split('"""', 2)[2].lstrip("\n"))
    assert _code_id_of(pkg) == provenance.code_id()
    theory.write_text(text + "\n_CHANGED = 1\n")  # a statement does
    assert _code_id_of(pkg) != provenance.code_id()
    theory.write_text(text)
    (pkg / "cli.py").write_text((pkg / "cli.py").read_text() + "\n_CHANGED = 1\n")
    assert _code_id_of(pkg) == provenance.code_id()  # the CLI computes nothing


def test_code_id_covers_the_computing_modules_and_the_versions():
    names = {p.relative_to(provenance.PACKAGE).as_posix() for p in provenance.source_files()}
    for module in ("models.py", "train.py", "probe.py", "tasks.py", "theory.py",
                   "kernels/common.py", "cells/pipeline.py", "cells/rnn.py", "cells/lstm.py"):
        assert module in names
    assert "cli.py" not in names and "grid.py" not in names
    assert set(provenance.versions()) >= {"python", "numpy", "numba", "scipy", "pandas"}
    assert len(provenance.code_id()) == 16 and int(provenance.code_id(), 16) >= 0


def test_machine_names_cpu_and_blas():
    m = provenance.machine()
    assert m["machine_cpu"] and m["machine_blas"] and m["machine_os"] == sys.platform
    assert m["machine_cpu"] == provenance.cpu_model()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.partition(":")[2].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        assert m["machine_cpu"].startswith(names[0] if names else "")
        if "cpu family" in cpuinfo.read_text():  # x86: family and model follow the name
            assert "(family " in m["machine_cpu"] and ", model " in m["machine_cpu"]


def test_the_benchmarks_name_the_cpu_by_the_same_reader():
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    sys.path.insert(0, bench)
    try:
        import gate
        import peers
    finally:
        sys.path.remove(bench)
    assert gate.cpu_model is provenance.cpu_model and peers.cpu_model is provenance.cpu_model


# -- the git commit -----------------------------------------------------------------------
GIT_COMMIT = "from gradpath.provenance import git_commit; print(repr(git_commit()))"


def _git_commit_of(src: Path, path: str | None = None) -> str | None:
    """git_commit() as a fresh interpreter importing gradpath from ``src`` sees it
    (``path``: the PATH it gets; None keeps this one's, where git is)."""
    env = {"PYTHONPATH": str(src), "PATH": os.environ["PATH"] if path is None else path,
           "HOME": os.environ.get("HOME", "/")}
    out = subprocess.run([sys.executable, "-c", GIT_COMMIT], capture_output=True, text=True,
                         check=True, env=env)
    return ast.literal_eval(out.stdout)  # repr of a str or None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A git repository holding a copy of the package at src/gradpath, committed."""
    if shutil.which("git") is None:
        pytest.skip("needs git on PATH (Debian: apt-get install git)")
    repo = tmp_path / "repo"
    shutil.copytree(provenance.PACKAGE, repo / "src" / "gradpath",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "copy")
    return repo


def test_git_commit_names_the_checkout_and_whether_it_is_dirty(checkout):
    head = _git(checkout, "rev-parse", "HEAD")
    src = checkout / "src"
    assert _git_commit_of(src) == head
    (checkout / "results").mkdir()
    (checkout / "results" / "run.json").write_text("{}")  # untracked: still clean
    assert _git_commit_of(src) == head
    theory = src / "gradpath" / "theory.py"
    theory.write_text(theory.read_text() + "\n_CHANGED = 1\n")  # a tracked edit
    assert _git_commit_of(src) == head + "-dirty"


def test_git_commit_is_omitted_without_git_or_outside_a_checkout(checkout, tmp_path):
    assert _git_commit_of(checkout / "src", path="") is None  # no git on PATH
    # an installed copy, even one lying inside some other work tree
    site = checkout / "venv" / "site-packages"
    shutil.copytree(checkout / "src" / "gradpath", site / "gradpath")
    assert _git_commit_of(site) is None
    outside = tmp_path / "plain"
    shutil.copytree(checkout / "src" / "gradpath", outside / "gradpath")
    assert _git_commit_of(outside) is None


# -- stale runs ---------------------------------------------------------------------------
def _stamp(runs_dir: Path, rid: str, code: str) -> None:
    """Make the finished run look computed by other code."""
    path = runs_dir / f"{rid}.json"
    summary = json.loads(path.read_text())
    summary["code_id"] = code
    path.write_text(json.dumps(summary))


def test_stale_run_is_recomputed_and_the_log_says_why(tmp_path, caplog):
    run = _run()
    assert grid.execute(run, tmp_path) == "finished"
    assert finished_code_id(tmp_path, run.run_id) == provenance.code_id()
    assert grid.execute(run, tmp_path) == "skipped"
    _stamp(tmp_path, run.run_id, "feedfacefeedface")
    with caplog.at_level(logging.WARNING, logger="gradpath.grid"):
        assert grid.execute(run, tmp_path) == "finished"
    assert "feedfacefeedface" in caplog.text and provenance.code_id() in caplog.text
    assert "recomputing" in caplog.text
    assert finished_code_id(tmp_path, run.run_id) == provenance.code_id()
    row = read_tables(tmp_path)["runs"].iloc[0]
    assert row["code_id"] == provenance.code_id() and row["machine_cpu"]
    assert row["git_commit"] == (provenance.git_commit() or "")


def test_stale_run_is_kept_when_asked_and_still_logged(tmp_path, caplog):
    run = _run()
    grid.execute(run, tmp_path)
    _stamp(tmp_path, run.run_id, "")  # a run from before code ids were recorded
    with caplog.at_level(logging.WARNING, logger="gradpath.grid"):
        assert grid.execute(run, tmp_path, stale="keep") == "kept-stale"
    assert "unrecorded" in caplog.text and "kept" in caplog.text
    assert finished_code_id(tmp_path, run.run_id) == ""
    with pytest.raises(ValueError, match="stale_runs.*recompute"):
        grid.execute(run, tmp_path, stale="sometimes")


def test_reported_run_is_redone_when_its_sweep_selects_another_rate(tmp_path, caplog):
    """A reported run's id covers its candidate rates, not the chosen one: if
    the selection changes, the finished run is not reused at the old rate."""
    cfg = {**SMALL, "lr": None, "clip_threshold": None, "selection": "k",
           "candidates": [[1e-3, 1.0], [1e-2, 1.0]]}
    run = grid.Run.from_config("train", cfg)
    first, second = ({"k": {"lr": lr, "clip_threshold": 1.0}} for lr in (1e-3, 1e-2))
    assert grid.execute(run, tmp_path, first) == "finished"
    assert grid.execute(run, tmp_path, first) == "skipped"
    with caplog.at_level(logging.WARNING, logger="gradpath.grid"):
        assert grid.execute(run, tmp_path, second) == "finished"
    assert "now selects {'lr': 0.01" in caplog.text
    assert read_tables(tmp_path)["runs"].iloc[0]["lr"] == 1e-2


# -- resource estimates -------------------------------------------------------------------
# Peak resident memory of this process alone: Linux's VmHWM (ru_maxrss would
# carry over the forking pytest process's peak across exec).
PEAK = """
import resource, sys, json
from pathlib import Path
from gradpath import grid
run = grid.Run.from_config(sys.argv[1], json.loads(sys.argv[2]))
grid.execute(run, sys.argv[3])
status = Path("/proc/self/status")
if status.exists():
    hwm = [l for l in status.read_text().splitlines() if l.startswith("VmHWM:")][0]
    print(int(hwm.split()[1]) / 1024)
else:  # macOS: bytes
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""
PROBE = dict(cell="lstm", activation="tanh", init="orthogonal", gain=1.0, hidden=256,
             seq_len=1000, batch=8, input_std=1.0, bias_std=0.1, seeds=[0], burn_in=50,
             lyapunov_k=2)
TRAIN = {**SMALL, "seq_len": 4000, "hidden": 64, "batch": 32, "steps": 2, "eval_every": 2,
         "cell": "lstm", "dtype": "float32"}


#: The later cells, at their own activations.
LATER = {"indrnn": "relu", "exprnn": "modrelu"}


@pytest.mark.parametrize("kind,config", [
    ("probe", PROBE), ("train", TRAIN), ("probe", {**PROBE, "cell": "gru"}),
    ("train", {**TRAIN, "cell": "gru"}),
    *(("probe", {**PROBE, "cell": c, "activation": a}) for c, a in LATER.items()),
    *(("train", {**TRAIN, "cell": c, "activation": a}) for c, a in LATER.items())],
    ids=["lstm-probe", "lstm-train-float32", "gru-probe", "gru-train-float32",
         *(f"{c}-probe" for c in LATER), *(f"{c}-train-float32" for c in LATER)])
def test_memory_estimate_covers_the_measured_peak_without_waste(tmp_path, kind, config):
    """The estimate is at least the measured peak resident memory of the run's
    process, and not more than twice it."""
    out = subprocess.run([sys.executable, "-c", PEAK, kind, json.dumps(config), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    peak = float(out.stdout.split()[-1])
    est = resources.estimate(kind, config)
    assert peak <= est.mem_mb <= 2 * peak, (peak, est.mem_mb)
    assert 0 < est.seconds < 60


def test_estimates_grow_with_the_shape():
    small = resources.estimate("train", TRAIN)
    for key in ("seq_len", "batch", "hidden"):
        big = resources.estimate("train", {**TRAIN, key: TRAIN[key] * 4})
        assert big.mem_mb > small.mem_mb and big.seconds > small.seconds, key
    rnn = resources.estimate("train", {**TRAIN, "cell": "rnn"})
    assert rnn.mem_mb < small.mem_mb and rnn.seconds < small.seconds
    f64 = resources.estimate("train", {**TRAIN, "dtype": "float64"})
    assert f64.mem_mb > small.mem_mb


def test_a_run_that_cannot_fit_names_its_section_and_keys():
    runs = grid.train_runs([{**{k: [v] for k, v in dict(tasks="adding", models="rnn-tanh",
                                                        inits="orthogonal", clips="norm",
                                                        seeds=0).items()},
                             "name": "long", "seq_lens": [100_000_000], "gain": 1.0,
                             "clip_threshold": 1.0, "optimizer": "adam", "lr": 1e-3,
                             "hidden": 64, "batch": 32, "steps": 10, "eval_every": 5,
                             "eval_batches": 1, "ragged": False, "dtype": "float32"}])
    with pytest.raises(ValueError) as info:
        grid.check_memory(runs, 16_000)
    text = str(info.value)
    for word in ("train[0] (long).seq_lens", "seq_len=100000000", "batch=32", "hidden=64",
                 "max_mem_mb", "GiB"):
        assert word in text, (word, text)
    grid.check_memory(runs, None)  # no limit, no check


def test_batch_resources_request_the_largest_run_and_the_summed_time():
    runs = [grid.Run.from_config("train", {**TRAIN, "seq_len": t}) for t in (100, 4000)]
    res = grid.batch_resources(runs)
    est = [resources.estimate("train", r.config) for r in runs]
    assert res["mem_mb"] == math.ceil(max(e.mem_mb for e in est))
    assert res["runtime"] >= max(10, grid.RUNTIME_SAFETY * sum(e.seconds for e in est) / 60)


def test_provenance_table_counts_runs_by_code_and_machine(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    try:
        from summarise import provenance_table
    finally:
        sys.path.pop(0)
    run = _run()
    grid.execute(run, tmp_path)
    runs = read_tables(tmp_path)["runs"]
    table = provenance_table(runs)
    assert len(table) == 1 and table["current_code"].all() and table["runs"].iloc[0] == 1
    # runs kept from before provenance was recorded have no such columns
    old = runs.drop(columns=[c for c in runs if c.startswith(("version_", "machine_"))
                             or c == "code_id"])
    table = provenance_table(pd.concat([runs, old.assign(run_id="old")], ignore_index=True))
    assert sorted(table["runs"]) == [1, 1]
    assert (table.loc[~table["current_code"], "code_id"] == "unrecorded").all()
