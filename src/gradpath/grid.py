"""Grid expansion: a study's axes -> run configurations -> batches of runs.

The workflow (Snakefile) reads and validates a YAML config and hands the
``probe`` and ``train`` sections here as plain dicts; this module turns them
into one configuration per run, each with its stable run id
(:func:`gradpath.results.run_id`), and groups runs into batches so that a
job pays process start-up and Numba cache loading once per batch.

Running a batch skips every run whose files already exist, so an interrupted
grid resumes without redoing or losing finished runs.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .probe import probe
from .results import is_finished, probe_tables, run_id, train_tables, write_run
from .train import TrainConfig, train

#: "model" labels of the grid and the (cell, activation) they stand for.
MODELS: dict[str, tuple[str, str]] = {
    "rnn-tanh": ("rnn", "tanh"),
    "rnn-relu": ("rnn", "relu"),
    "lstm": ("lstm", "tanh"),
}


@dataclass(frozen=True)
class Run:
    """One run of a grid: its kind ("probe" | "train"), id and configuration."""

    kind: str
    run_id: str
    config: dict


def probe_runs(spec: dict) -> list[Run]:
    """Expand a probe section: models x inits x gains x seeds.

    ``spec`` keys: models, inits, gains, seeds, hidden, seq_len, batch,
    input_std, bias_std, burn_in, lyapunov_k.
    """
    runs = []
    for model, init, gain, seed in itertools.product(
            spec["models"], spec["inits"], spec["gains"], spec["seeds"]):
        cell, activation = MODELS[model]
        cfg = dict(cell=cell, activation=activation, init=init, gain=float(gain),
                   hidden=int(spec["hidden"]), seq_len=int(spec["seq_len"]),
                   batch=int(spec["batch"]), input_std=float(spec["input_std"]),
                   bias_std=float(spec["bias_std"]), seeds=[int(seed)],
                   burn_in=int(spec["burn_in"]), lyapunov_k=int(spec["lyapunov_k"]))
        runs.append(Run("probe", run_id("probe", cfg), cfg))
    return runs


def train_runs(spec: dict) -> list[Run]:
    """Expand a training section: tasks x models x inits x clips x seq_lens x seeds.

    ``spec`` keys: tasks, models, inits, clips, seq_lens, seeds, and the
    fixed settings gain, clip_threshold (a number, or a mapping clip mode ->
    threshold), optimizer, lr, hidden, batch, steps, eval_every,
    eval_batches, ragged, dtype.
    """
    runs = []
    thresholds = spec["clip_threshold"]
    for task, model, init, clip, seq_len, seed in itertools.product(
            spec["tasks"], spec["models"], spec["inits"], spec["clips"], spec["seq_lens"],
            spec["seeds"]):
        cell, activation = MODELS[model]
        thr = thresholds[clip] if isinstance(thresholds, dict) else thresholds
        c = TrainConfig(task=task, seq_len=int(seq_len), cell=cell, activation=activation,
                        init=init, gain=float(spec["gain"]), clip=clip,
                        clip_threshold=float(thr if clip != "none" else 1.0),
                        optimizer=spec["optimizer"], lr=float(spec["lr"]),
                        hidden=int(spec["hidden"]), batch=int(spec["batch"]),
                        steps=int(spec["steps"]), seed=int(seed),
                        eval_every=int(spec["eval_every"]),
                        eval_batches=int(spec["eval_batches"]), ragged=bool(spec["ragged"]),
                        dtype=spec["dtype"])
        runs.append(Run("train", run_id("train", c.as_dict()), c.as_dict()))
    return runs


def _cost(run: Run) -> float:
    """Rough relative cost of a run, used to balance batches."""
    c = run.config
    if run.kind == "probe":
        return ((c["seq_len"] + c["burn_in"]) * (c["batch"] + c["lyapunov_k"])
                * c["hidden"] ** 2 * (16 if c["cell"] == "lstm" else 1) * 1e-9 + 0.2)
    steps = c["steps"] * c["seq_len"] * c["batch"] * c["hidden"] ** 2 * (
        4 if c["cell"] == "lstm" else 1)
    return steps * 1e-9 + 0.2


def batches(runs: Iterable[Run], target_seconds: float) -> dict[str, list[Run]]:
    """Group runs into batches of roughly ``target_seconds`` of estimated work.

    Runs are ordered by id, so a batch's membership depends only on the set
    of runs; the batch id is a hash of its members' ids.
    """
    out: dict[str, list[Run]] = {}
    cur: list[Run] = []
    acc = 0.0
    scale = 0.25  # calibrated seconds per unit of _cost on a 2-core machine (order of magnitude)

    def flush():
        if cur:
            key = hashlib.sha256(" ".join(r.run_id for r in cur).encode()).hexdigest()[:12]
            out[f"{cur[0].kind}-{key}"] = list(cur)

    for r in sorted(runs, key=lambda r: (r.kind, r.run_id)):
        if cur and (r.kind != cur[0].kind or acc + scale * _cost(r) > target_seconds):
            flush()
            cur, acc = [], 0.0
        cur.append(r)
        acc += scale * _cost(r)
    flush()
    return out


def execute(run: Run, out_dir: str | Path) -> str:
    """Run one configuration and write its tables; skip it if already finished.

    Returns "skipped", or the run's status ("finished" | "diverged").
    """
    if is_finished(out_dir, run.run_id):
        return "skipped"
    c = dict(run.config)
    t0 = time.perf_counter()
    if run.kind == "probe":
        res = probe(c["cell"], c["activation"], c["init"], c["gain"], c["hidden"], c["seq_len"],
                    c["batch"], c["input_std"], c["bias_std"], c["seeds"], c["burn_in"],
                    c["lyapunov_k"])
        tables = probe_tables(res, time.perf_counter() - t0)
    else:
        res = train(TrainConfig(**c))
        tables = train_tables(res)
    if tables["runs"]["run_id"].iloc[0] != run.run_id:  # the id is part of the contract
        raise RuntimeError(f"run id mismatch for {run.config}")
    write_run(out_dir, tables)
    return str(tables["runs"]["status"].iloc[0])
