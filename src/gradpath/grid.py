"""Grid expansion: a study's axes -> run configurations -> batches of runs.

The workflow (Snakefile) reads and validates a YAML config and hands the
``probe`` and ``train`` sections here as plain dicts; this module turns them
into one configuration per run, each with its stable run id (computed once,
by :class:`gradpath.probe.ProbeConfig` and
:meth:`gradpath.train.TrainConfig.run_id`, and carried by :class:`Run`), and
groups runs into batches so that a job pays process start-up and Numba
cache loading once per batch.

Running a batch skips every run whose files read back as written, so an
interrupted grid resumes without redoing or losing finished runs, and a
damaged run file is recomputed, not read.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath

from .cells import cell_class
from .extras import require
from .probe import ProbeConfig, probe
from .provenance import code_id
from .resources import check_fits, estimate
from .results import (
    check_run,
    probe_tables,
    remove_partial,
    run_files,
    train_tables,
    write_run,
)
from .runid import run_id
from .train import REPORT, SWEEP, SWEPT_FIELDS, TrainConfig, train, with_candidates
from .vocab import MODELS, model_of


@dataclass(frozen=True)
class Run:
    """One run of a grid: its typed configuration, from the grid's expansion to
    :func:`execute`.

    Attributes
    ----------
    spec : ProbeConfig or TrainConfig
        What runs. A reported run that waits for its sweep holds the first
        candidate setting here; :func:`execute` puts in the selected one.
    stage, selection : str
        A training run's stage (:data:`REPORT` or :data:`SWEEP`) and the key
        of the sweep its setting is chosen under ("" without one).
    candidates : tuple of (lr, clip_threshold)
        The settings a reported run waits to be chosen from (empty otherwise).
    source : str
        The config section it comes from (for messages; not part of the id).
    """

    spec: ProbeConfig | TrainConfig
    stage: str = REPORT
    selection: str = ""
    candidates: tuple[tuple[float, float], ...] = ()
    source: str = ""

    @property
    def kind(self) -> str:
        """"probe" or "train"."""
        return "probe" if isinstance(self.spec, ProbeConfig) else "train"

    @functools.cached_property
    def run_id(self) -> str:
        """The run's id: the one recipe of its configuration class
        (:attr:`ProbeConfig.run_id`, :meth:`TrainConfig.run_id`)."""
        if self.kind == "probe":
            return self.spec.run_id
        return self.spec.run_id(self.stage, self.selection, self.candidates)

    @property
    def config(self) -> dict:
        """The configuration as the tables and the jobs see it: the spec's
        fields, and for training its stage and selection (``lr`` and
        ``clip_threshold`` None and ``candidates`` for a run that waits for
        its sweep: :func:`gradpath.train.with_candidates`)."""
        if self.kind == "probe":
            return self.spec.as_dict()
        return with_candidates({**self.spec.as_dict(), "stage": self.stage,
                                "selection": self.selection}, self.candidates)

    def record(self) -> dict:
        """The run as plain data for a job (:meth:`from_record` reads it back)."""
        return {"kind": self.kind, "run_id": self.run_id, "config": self.config}

    @classmethod
    def from_config(cls, kind: str, config: dict, source: str = "") -> Run:
        """The run of a :attr:`config` dict ("probe" or "train")."""
        c = dict(config)
        if kind == "probe":
            return cls(ProbeConfig(**c), source=source)
        stage, selection = c.pop("stage", REPORT), c.pop("selection", "")
        candidates = tuple((float(lr), float(thr)) for lr, thr in c.pop("candidates", None) or ())
        if c.get("lr", 0.0) is None:
            if not candidates:
                raise ValueError("lr: null, and no candidate settings (candidates) given")
            c["lr"], c["clip_threshold"] = candidates[0]
        return cls(TrainConfig(**c), stage, selection, candidates, source)

    @classmethod
    def from_record(cls, record: dict) -> Run:
        """The run of a job's :meth:`record`; ValueError if its configuration
        does not hash to its id (an edited record, or one from other code),
        before anything runs."""
        run = cls.from_config(record["kind"], record["config"])
        if run.run_id != record["run_id"]:
            raise ValueError(f"run {record['run_id']}: its configuration has the id "
                             f"{run.run_id}; refusing to run it under the other")
        return run


def probe_runs(spec: dict) -> list[Run]:
    """Expand a probe section: models x inits x gains x seeds.

    ``spec`` keys: models (labels of :data:`gradpath.vocab.MODELS`), inits,
    gains, seeds, hidden, seq_len, batch, input_std, bias_std, burn_in,
    lyapunov_k. Each run's config is its :class:`ProbeConfig`'s ``as_dict``.
    """
    # JSON Schema's integers include 512.0: as ints, as train_runs passes them
    fixed = {k: int(spec[k]) for k in ("hidden", "seq_len", "batch", "burn_in", "lyapunov_k")}
    runs = []
    for model, init, gain, seed in itertools.product(
            spec["models"], spec["inits"], spec["gains"], spec["seeds"]):
        m = MODELS[model]
        c = ProbeConfig(cell=m.cell, activation=m.activation, init=init, gain=gain,
                        input_std=spec["input_std"], bias_std=spec["bias_std"],
                        seeds=(int(seed),), **fixed)
        runs.append(Run(c, source="probe"))
    return runs


#: Where studies write: ``<RESULTS_ROOT>/<study name>/``.
RESULTS_ROOT = "results"


def study_dir(name: str, root: str = RESULTS_ROOT) -> str:
    """The folder of study ``name``: ``<root>/<name>``, refused (ValueError)
    unless the name is one plain folder name inside ``root``: not empty, no
    leading dot (``.``, ``..``, hidden folders), no path separator, not
    absolute.
    """
    bad = (not isinstance(name, str) or not name or name.startswith(".")
           or "/" in name or "\\" in name or PurePosixPath(name).is_absolute()
           or PureWindowsPath(name).is_absolute() or name != name.strip())
    if not bad:  # one path component, whatever links the folders are
        bad = PurePosixPath(name).name != name or PureWindowsPath(name).name != name
    if bad:
        raise ValueError(f"name: expected a plain folder name for {root}/<name> (letters, "
                         f"digits, '_', '.', '-', not starting with '.'), got {name!r}")
    return f"{root}/{name}"


def train_blocks(section) -> list[dict]:
    """A config's ``train`` section as a list of blocks (one dict = one block)."""
    return [section] if isinstance(section, dict) else list(section)


def _block_name(i: int, block: dict) -> str:
    """How messages name a training block: ``train[i]`` and its name, if any."""
    return f"train[{i}]" + (f" ({block['name']})" if block.get("name") else "")


def check_raw_train(section) -> None:
    """Checks of a ``train`` section as written, before the schema fills in
    its defaults (after which a default ``lr`` cannot be told from a given one).

    Raises ValueError naming the block that gives both ``lr`` and a non-empty
    ``lrs``, or both ``clip_threshold`` and a non-empty ``clip_thresholds``:
    one would silently override the other.
    """
    if section is None:
        return
    for i, block in enumerate(train_blocks(section)):
        if not isinstance(block, dict):
            continue
        for one, grid in (("lr", "lrs"), ("clip_threshold", "clip_thresholds")):
            if one in block and block.get(grid):
                raise ValueError(
                    f"{_block_name(i, block)}: gives both {one} ({block[one]}) and {grid} "
                    f"({block[grid]}); give {one} for one value, or {grid} for a sweep, "
                    "not both")


#: What identifies a reported configuration and seed in the study's tables
#: (the summary aggregates a configuration's reported seeds by these keys).
REPORT_KEYS: tuple[str, ...] = ("task", "model", "init", "gain", "clip", "seq_len", "dtype")


def _cell_lrs(block: dict, cell: str) -> dict:
    """The block's learning rates of a cell's own parameter groups (``lr_orth``)
    that this cell has: a block of several cells sets them for those it concerns."""
    fields = set(cell_class(cell).lr_groups.values())
    return {f: block[f] for f in fields if block.get(f) is not None}


def _merge_duplicates(runs: list[Run]) -> list[Run]:
    """One run per run id, whatever the blocks that give it.

    Two blocks that expand to the same run (the id is a hash of its whole
    configuration) give it once, its source naming both. A configuration
    (:data:`REPORT_KEYS`) and seed may be reported at most twice: once at a
    sweep-selected rate and once at a fixed one (a twin such as the other
    precision's; the tables take the sweep-selected runs for the
    configuration, :func:`gradpath.claims.primary`). Two different reported
    runs of one configuration and seed on the same footing would be counted
    twice in the summary (one seed, two settings): refused, naming both
    blocks and what differs.
    """
    by_id: dict[str, Run] = {}
    for r in runs:
        first = by_id.get(r.run_id)
        if first is None:
            by_id[r.run_id] = r
            continue
        if first.config != r.config:  # cannot happen with a sound id: refuse loudly
            raise ValueError(f"run {r.run_id}: {first.source} and {r.source} give it with "
                             "different settings")
        if r.source not in first.source.split(" + "):
            by_id[r.run_id] = replace(first, source=f"{first.source} + {r.source}")
    reported: dict[tuple, Run] = {}
    for r in by_id.values():
        if r.kind != "train" or r.config["stage"] != REPORT:
            continue
        c = r.config
        key = (*(_model_label(c) if k == "model" else c[k] for k in REPORT_KEYS), c["seed"])
        other = reported.setdefault((*key, bool(c["selection"])), r)
        if other is not r:
            diff = ", ".join(f"{k} {other.config.get(k)!r} vs {c.get(k)!r}"
                             for k in sorted(set(c) | set(other.config))
                             if c.get(k) != other.config.get(k))
            what = ", ".join(f"{k}={v}" for k, v in zip((*REPORT_KEYS, "seed"), key,
                                                       strict=True))
            raise ValueError(
                f"{other.source} and {r.source} both report {what} "
                f"{'at a swept rate' if c['selection'] else 'at a fixed rate'} with different "
                f"settings ({diff}): the tables would count that seed twice; drop one of "
                f"them, or make the blocks differ in {', '.join(REPORT_KEYS)}")
    return list(by_id.values())


def _model_label(config: dict) -> str:
    """The model label of a run config (cell and activation)."""
    return model_of(config["cell"], config["activation"]).label


def _block_steps(block: dict) -> dict[int, int]:
    """Updates per sequence length: one number for all, or one per seq_len."""
    steps, lens = block["steps"], [int(t) for t in block["seq_lens"]]
    if isinstance(steps, int | float):
        return dict.fromkeys(lens, int(steps))
    if len(steps) != len(lens):
        raise ValueError(f"train.steps: expected one number per seq_len ({len(lens)}), "
                         f"got {len(steps)}")
    return {t: int(n) for t, n in zip(lens, steps, strict=True)}


#: Block keys that set a TrainConfig field only where given (None: the default).
OPTIONAL_BLOCK_KEYS: tuple[str, ...] = ("w_ih_std", "w_out_std", "forget_bias")


def train_runs(section) -> list[Run]:
    """Expand the training blocks: tasks x models x inits x clips x seq_lens x seeds.

    A block's keys: tasks, models, inits, clips, seq_lens, seeds, and the
    fixed settings gain, clip_threshold (a number, or a mapping clip mode ->
    threshold) or clip_thresholds (a grid), optimizer, momentum (SGD), lr or
    lrs (a grid), hidden, batch, steps (a number, or one per seq_len),
    eval_every, eval_batches, ragged, dtype, the initialisation's w_ih_std,
    w_out_std and forget_bias (the LSTM's), lr_orth, and for a sweep
    selection_seeds and sweep_fraction.

    With several candidate settings (``lrs`` x ``clip_thresholds``; the
    thresholds only for clipped runs), every configuration first runs the
    sweep: each setting on each selection seed (disjoint from the reported
    seeds), for ``sweep_fraction`` of the updates; its reported runs then use
    the setting whose sweep runs end with the lowest held-out metric
    (:func:`select_settings`). Each run's config carries its ``stage`` and,
    for a sweep, the ``selection`` key its setting is chosen under; a
    reported run of a sweep has ``lr`` and ``clip_threshold`` None until the
    selection fills them in (its id covers the candidates instead).
    """
    runs = []
    for i, block in enumerate(train_blocks(section)):
        source = _block_name(i, block)
        thresholds = block["clip_threshold"]
        if isinstance(thresholds, dict):
            missing = [c for c in block["clips"] if c != "none" and c not in thresholds]
            if missing:
                raise ValueError(
                    f"{source}.clip_threshold: no threshold for clip mode "
                    f"{', '.join(map(repr, missing))} (give one number, or one per clip "
                    f"mode of clips other than none: {sorted(thresholds)} given)")
        lrs = [float(v) for v in (block.get("lrs") or [block["lr"]])]
        steps_for = _block_steps(block)
        optional = {k: float(block[k]) for k in OPTIONAL_BLOCK_KEYS if block.get(k) is not None}
        for task, model, init, clip, seq_len in itertools.product(
                block["tasks"], block["models"], block["inits"], block["clips"],
                block["seq_lens"]):
            m = MODELS[model]
            # unclipped runs get one value (unused), so their ids do not depend on it
            if clip == "none":
                thrs = [1.0]
            elif block.get("clip_thresholds"):
                thrs = [float(v) for v in block["clip_thresholds"]]
            else:
                thrs = [float(thresholds[clip] if isinstance(thresholds, dict) else thresholds)]
            settings = [(lr, thr) for lr in lrs for thr in thrs]
            steps = steps_for[int(seq_len)]
            fixed = dict(task=task, seq_len=int(seq_len), cell=m.cell, activation=m.activation,
                         init=init, gain=float(block["gain"]), clip=clip,
                         optimizer=block["optimizer"], momentum=float(block.get("momentum", 0.0)),
                         hidden=int(block["hidden"]),
                         batch=int(block["batch"]), eval_every=int(block["eval_every"]),
                         eval_batches=int(block["eval_batches"]), ragged=bool(block["ragged"]),
                         dtype=block["dtype"], **_cell_lrs(block, m.cell),
                         **{k: v for k, v in optional.items()
                            if k != "forget_bias" or m.cell == "lstm"})
            if len(settings) == 1:
                for seed in block["seeds"]:
                    c = TrainConfig(**fixed, lr=lrs[0], clip_threshold=thrs[0], steps=steps,
                                    seed=int(seed))
                    runs.append(Run(c, REPORT, source=source))
                continue
            if set(block["selection_seeds"]) & set(block["seeds"]):
                raise ValueError(f"{source}.selection_seeds: must be disjoint from seeds, got "
                                 f"{block['selection_seeds']} and {block['seeds']}")
            sweep_steps = max(1, round(steps * float(block["sweep_fraction"])))
            key = run_id("selection", {**fixed, "candidates": [list(x) for x in settings],
                                       "steps": sweep_steps,
                                       "seeds": [int(s) for s in block["selection_seeds"]]})
            for lr, thr in settings:
                for seed in block["selection_seeds"]:
                    c = TrainConfig(**fixed, lr=lr, clip_threshold=thr, steps=sweep_steps,
                                    seed=int(seed))
                    runs.append(Run(c, SWEEP, key, source=source))
            for seed in block["seeds"]:
                # its setting awaits the sweep: the id covers the candidates
                c = TrainConfig(**fixed, lr=lrs[0], clip_threshold=thrs[0], steps=steps,
                                seed=int(seed))
                runs.append(Run(c, REPORT, key, tuple(settings), source))
    return _merge_duplicates(runs)


def planned_table(runs: Iterable[Run]):
    """The configuration columns of the runs table for runs not yet run (the
    training runs of a grid): each run's fields, its model label, stage and
    selection, and what its initialisation resolves to
    (:meth:`gradpath.train.TrainConfig.init_settings`), as
    :func:`gradpath.results.train_tables` records them; a run awaiting its
    sweep shows its first candidate setting. For describing a study's
    protocols before it runs (:func:`gradpath.claims.describe`)."""
    pd = require("pandas")

    rows = []
    for r in runs:
        if r.kind != "train":
            continue
        c = r.spec
        rows.append({**c.as_dict(), "kind": "train", "model": _model_label(r.config),
                     "stage": r.stage, "selection": r.selection, "run_id": r.run_id,
                     "lr_orth": math.nan if c.lr_orth is None else c.lr_orth,
                     **c.init_settings()})
    return pd.DataFrame(rows)


def select_settings(runs) -> dict[str, dict[str, float]]:
    """The selected setting of each sweep, from the runs table of its sweep
    runs: the (lr, clip_threshold) with the lowest mean final held-out metric
    over the selection seeds (a diverged run counts as infinitely bad; ties
    go to the smaller rate, then the smaller threshold). Returns {selection
    key: {"lr": ..., "clip_threshold": ...}}."""
    sw = runs[runs["stage"] == SWEEP]
    out = {}
    for key, g in sw.groupby("selection"):
        metric = g["final_metric"].where(g["status"] == "finished", float("inf"))
        mean = metric.fillna(float("inf")).groupby([g[f] for f in SWEPT_FIELDS]).mean()
        best = min(mean[mean == mean.min()].index)
        out[str(key)] = {f: float(v) for f, v in zip(SWEPT_FIELDS, best, strict=True)}
    return out


def sweep_table(runs, settings: dict[str, dict[str, float]]):
    """One row per sweep configuration and candidate setting (lr,
    clip_threshold): the mean held-out metric over the selection seeds (and
    relative to the baseline), the diverged runs, and whether it was selected."""
    pd = require("pandas")

    keys = ["selection", "task", "model", "init", "clip", "seq_len", "optimizer", "lr",
            "clip_threshold"]
    cols = [*keys, "seeds", "mean_final_metric", "mean_final_over_baseline", "diverged",
            "selected"]
    sw = runs[runs["stage"] == SWEEP]
    if sw.empty:
        return pd.DataFrame(columns=cols)
    sw = sw.assign(diverged=sw["status"] == "diverged",
                   over=sw["final_metric"] / sw["baseline"])
    out = sw.groupby(keys, as_index=False).agg(
        seeds=("seed", "nunique"), mean_final_metric=("final_metric", "mean"),
        mean_final_over_baseline=("over", "mean"), diverged=("diverged", "sum"))
    out["selected"] = [settings.get(k) == {"lr": lr, "clip_threshold": thr}
                       for k, lr, thr in zip(out["selection"], out["lr"], out["clip_threshold"],
                                             strict=True)]
    return out[cols].round(4)


def check_memory(runs: Iterable[Run], limit_mb: float | None,
                 limit_name: str = "max_mem_mb") -> None:
    """Raise ValueError naming the config section and shape keys of the first
    run whose estimated memory (:func:`gradpath.resources.estimate`) exceeds
    ``limit_mb`` (described as ``limit_name``); None skips the check."""
    key = {"probe": "seq_len", "train": "seq_lens"}
    for r in runs:
        check_fits(r.kind, r.config, limit_mb, where=f"{r.source or r.kind}.{key[r.kind]}: ",
                   limit_name=limit_name)


#: Safety factor of a batch's runtime request over its estimate: the estimate
#: is an order of magnitude, and a job killed at its time limit loses its
#: current run.
RUNTIME_SAFETY = 4.0


def batch_resources(runs: Iterable[Run]) -> dict[str, int]:
    """What one batch job needs from a scheduler: ``mem_mb`` (its largest
    run's estimate: runs of a batch run one after another) and ``runtime``
    (minutes: the summed estimate times :data:`RUNTIME_SAFETY`, at least 10)."""
    est = [estimate(r.kind, r.config) for r in runs]
    seconds = sum(e.seconds for e in est)
    return {"mem_mb": math.ceil(max(e.mem_mb for e in est)),
            "runtime": max(10, math.ceil(RUNTIME_SAFETY * seconds / 60))}


def batches(runs: Iterable[Run], target_seconds: float) -> dict[str, list[Run]]:
    """Group runs into batches of roughly ``target_seconds`` of estimated work
    (:func:`gradpath.resources.estimate`), so that a job pays process start-up
    and Numba cache loading once per batch.

    Runs are ordered by id, so a batch's membership depends only on the set
    of runs; the batch id is a hash of its members' ids.
    """
    out: dict[str, list[Run]] = {}
    cur: list[Run] = []
    acc = 0.0

    def flush():
        if cur:
            key = hashlib.sha256(" ".join(r.run_id for r in cur).encode()).hexdigest()[:12]
            out[f"{cur[0].kind}-{key}"] = list(cur)

    for r in sorted(runs, key=lambda r: (r.kind, r.run_id)):
        seconds = estimate(r.kind, r.config).seconds
        if cur and (r.kind != cur[0].kind or acc + seconds > target_seconds):
            flush()
            cur, acc = [], 0.0
        cur.append(r)
        acc += seconds
    flush()
    return out


#: The two stages of a grid's jobs, which are also their job groups on a
#: cluster: batches that need nothing but the warm-up, and batches of reported
#: runs that wait for their sweep's rate selection.
STAGES: tuple[str, ...] = ("runs", "selected")


def stage_batches(runs: Iterable[Run], target_seconds: float) -> dict[str, dict[str, list[Run]]]:
    """The grid's batches by stage (:data:`STAGES`): ``{"runs": {batch id:
    runs}, "selected": {"selected-<id>": runs}}``. Batches of one stage never
    depend on each other."""
    runs = list(runs)
    waiting = [r for r in runs if r.kind == "train" and r.config["lr"] is None]
    free = [r for r in runs if not (r.kind == "train" and r.config["lr"] is None)]
    selected = batches(waiting, target_seconds)
    return {"runs": batches(free, target_seconds),
            "selected": {f"selected-{k}": v for k, v in selected.items()}}


def batch_marker(statuses: dict[str, str], runs_dir: str | Path) -> dict:
    """The completion marker of a batch: each run's status and the size and
    modification time (ns) of each of its files, so that a later change to a
    file (truncated, rewritten, replaced) is seen without reading it
    (:func:`marker_problem`)."""
    def stamp(p: Path) -> list[int]:
        st = p.stat()
        return [st.st_size, st.st_mtime_ns]

    files = {rid: {p.name: stamp(p) for p in run_files(runs_dir, rid)} for rid in statuses}
    return {"runs": statuses, "files": files}


def marker_problem(marker: str | Path, runs_dir: str | Path) -> str:
    """Why a batch's completion marker no longer holds ("" if it does): it
    does not read back or predates the file records, or a file of one of its
    runs is missing, or has another size or modification time than when the
    batch finished. A batch whose marker does not hold must run again (its
    intact runs are skipped, the others recomputed)."""
    try:
        data = json.loads(Path(marker).read_text())
    except (OSError, ValueError) as exc:
        return f"its marker does not read back ({type(exc).__name__}: {exc})"
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return "its marker was written before run files were recorded"
    for rid, stamps in files.items():
        for name, (size, mtime_ns) in stamps.items():
            try:
                st = (Path(runs_dir) / name).stat()
            except OSError:
                return f"run {rid}: {name} is missing"
            if st.st_size != size:
                return f"run {rid}: {name} is {st.st_size} bytes, {size} when its batch finished"
            if st.st_mtime_ns != mtime_ns:
                return f"run {rid}: {name} was modified after its batch finished"
    return ""


#: What to do with a finished run whose ``code_id`` differs from the current
#: code's: recompute it (default) or keep it.
STALE_POLICIES: tuple[str, ...] = ("recompute", "keep")

log = logging.getLogger(__name__)


def execute(run: Run, out_dir: str | Path, rates: dict[str, float] | None = None,
            stale: str = "recompute") -> str:
    """Run one configuration and write its tables; skip it if already finished
    by the current code. A run whose files do not read back (truncated,
    half-written: :func:`gradpath.results.check_run`) is recomputed, and the
    log says why.

    Parameters
    ----------
    run : Run
    out_dir : path
        The runs folder.
    rates : dict, optional
        The selected setting of each sweep (:func:`select_settings`), needed
        by a reported run whose setting a sweep chooses.
    stale : {"recompute", "keep"}
        A finished run computed by other code (its ``code_id`` differs from
        :func:`gradpath.provenance.code_id`) is recomputed, or kept; either
        way the log says so. A finished reported run of a sweep whose
        recorded setting is no longer the selected one is always recomputed.

    Returns
    -------
    str
        "skipped", "kept-stale", or the run's status ("finished" | "diverged").
    """
    if stale not in STALE_POLICIES:
        raise ValueError(f"stale_runs: expected one of {list(STALE_POLICIES)}, got {stale!r}")
    done, damaged = check_run(out_dir, run.run_id)
    if damaged:
        log.warning("run %s is not finished: %s; recomputing it", run.run_id, damaged)
    if done is not None:
        done_by = str(done.get("code_id") or "")
        selected = (rates or {}).get(run.selection) if run.candidates else None
        was = {f: done[f] for f in SWEPT_FIELDS}
        if selected is not None and was != selected:
            # the id of a reported run covers its candidate settings, not the chosen one
            log.warning("run %s was trained at %s, its sweep now selects %s: recomputing it",
                        run.run_id, was, selected)
        elif done_by == code_id():
            return "skipped"
        else:
            why = (f"run {run.run_id} was computed by other code (code_id "
                   f"{done_by or 'unrecorded'}, now {code_id()})")
            if stale == "keep":
                log.warning("%s: kept (stale_runs: keep)", why)
                return "kept-stale"
            log.warning("%s: recomputing it", why)
    remove_partial(out_dir, run.run_id)  # what a killed write of this run left
    t0 = time.perf_counter()
    if run.kind == "probe":  # the id is the run's, carried from the grid's expansion
        tables = probe_tables(probe(run.spec), time.perf_counter() - t0, run.run_id)
    else:
        spec = run.spec
        if run.candidates:
            if not rates or run.selection not in rates:
                raise ValueError(f"run {run.run_id}: no selected setting for sweep "
                                 f"{run.selection!r}; run the sweep first")
            spec = replace(spec, **rates[run.selection])
        tables = train_tables(train(spec), run.run_id, run.stage, run.selection)
    write_run(out_dir, tables)
    return str(tables["runs"]["status"].iloc[0])
