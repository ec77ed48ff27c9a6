"""Tidy result tables and their writers.

Three long tables, one row per observation:

``runs`` (one row per run)
    run_id, kind ("probe" | "train"), model (a label of
    :data:`gradpath.vocab.MODELS`), every configuration field (task, cell, activation, init, gain,
    clip, clip_threshold, optimizer, lr, momentum, hidden, batch, seq_len,
    steps, eval_every, eval_batches, seed, input_std, bias_std, burn_in,
    lyapunov_k, ragged; NaN / -1 / "none" where a field does not apply to
    the kind), status
    ("finished" | "diverged"), diverged_at, cause, final_metric (held-out task
    metric; NaN for probes and diverged runs), baseline, success,
    clipped_fraction, decay_rate (per-step slope of ln||dL_T/dh_t||; for a
    training run, at initialisation), cell_decay_rate (LSTM), theory_slope
    (mean-field 0.5 ln chi, NaN where no theory applies), lyapunov_1,
    horizon (lag, -1 when beyond T), wall_time_s, dtype, stage ("probe" |
    "sweep" | "report": a run of a learning-rate sweep or a reported seed),
    selection (the sweep's key, "" without one) and lyapunov (the probe's
    top-k exponents, descending; for a training run, lambda_1 at
    initialisation), initial_metric (held-out metric before the first update;
    NaN for probes), w_ih_std, w_out_std and forget_bias (what a training
    run's initialisation of the input and read-out weights and of the LSTM's
    forget gate resolved to; NaN where it does not apply), test_correct (the
    share of a per-sequence task's test set within its tolerance, NaN
    otherwise), lr_orth (the learning rate of an orthogonal cell's skew
    matrix, NaN when not set), and the provenance: version_gradpath, version_numpy,
    version_numba, version_python, version_scipy, version_pandas ("unknown"
    without the study extra), code_id (:func:`gradpath.provenance.code_id`),
    git_commit (:func:`gradpath.provenance.git_commit`; "" outside a git
    checkout), machine_cpu, machine_blas and machine_os.
``curves`` (one row per run, phase and lag)
    run_id, phase ("init" | "checkpoint" | "final"), step, lag,
    log10_grad_norm, log10_cell_grad_norm (NaN for a cell without a cell state:
    all but the LSTM).
``training`` (one row per run and update)
    run_id, step, loss (the objective), metric (task units),
    grad_norm_before, grad_norm_after, clipped, eval_metric (NaN between
    evaluations).

Only ``wall_time_s`` depends on anything but the configuration, the code
and the machine: same configuration, seed and code, identical tables
otherwise (the machine columns aside, on another machine, and ``git_commit``
from another commit of the same code).

A run id is a stable hash of the kind and the configuration
(:func:`gradpath.runid.run_id`), computed once by whoever defines the run
(:attr:`gradpath.probe.ProbeConfig.run_id`,
:meth:`gradpath.train.TrainConfig.run_id`, the grid) and carried here, so a
rerun overwrites its files and never duplicates a run. Each run is written as
``<run_id>.{runs,curves,training}.parquet`` plus ``<run_id>.json``, the
summary, each file atomically (temporary file, fsync, rename) and the summary
last, with the size and SHA-256 of each table file: a run is finished when
its files read back as recorded (:func:`check_run`), so a truncated or
half-written file is recomputed, never read as a result.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from .extras import StudyModule
from .probe import ProbeResult, fit_decay_rate, horizon
from .provenance import code_id, git_commit, machine, versions
from .runid import run_id  # noqa: F401 - re-exported: the tables' ids
from .train import TrainResult
from .vocab import model_of

# The tables are pandas frames in Parquet files: the study extra's libraries,
# imported on first use, so that the library and the CLI import this module
# (for the run ids, columns and provenance) without them.
pd = StudyModule("pandas")
pq = StudyModule("pyarrow.parquet")

TABLES: tuple[str, ...] = ("runs", "curves", "training")
#: Columns that record wall time: the only ones that differ between reruns.
WALL_TIME_COLUMNS: tuple[str, ...] = ("wall_time_s",)

RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "kind", "model", "task", "cell", "activation", "init", "gain", "clip",
    "clip_threshold", "optimizer", "lr", "momentum", "hidden", "batch", "seq_len", "steps",
    "eval_every", "eval_batches", "seed", "input_std", "bias_std", "burn_in", "lyapunov_k",
    "ragged", "status", "diverged_at", "cause", "final_metric", "baseline", "success",
    "clipped_fraction", "decay_rate", "cell_decay_rate", "theory_slope", "lyapunov_1",
    "horizon", "wall_time_s", "dtype", "stage", "selection", "lyapunov", "initial_metric",
    "w_ih_std", "w_out_std", "forget_bias", "test_correct", "lr_orth", "version_gradpath",
    "version_numpy", "version_numba", "version_python", "version_scipy", "version_pandas",
    "code_id", "git_commit", "machine_cpu", "machine_blas", "machine_os",
)
#: Provenance columns: which code (``code_id``, the versions, the git commit)
#: and which machine made a run.
PROVENANCE_COLUMNS: tuple[str, ...] = tuple(
    c for c in RUN_COLUMNS
    if c.startswith(("version_", "machine_")) or c in ("code_id", "git_commit"))
CURVE_COLUMNS: tuple[str, ...] = ("run_id", "phase", "step", "lag", "log10_grad_norm",
                                  "log10_cell_grad_norm")
TRAINING_COLUMNS: tuple[str, ...] = ("run_id", "step", "loss", "metric", "grad_norm_before",
                                     "grad_norm_after", "clipped", "eval_metric")


def run_provenance() -> dict:
    """The code id, the versions it covers, and the machine (:mod:`gradpath.provenance`)."""
    return {**{f"version_{k}": v for k, v in versions().items()}, "code_id": code_id(),
            "git_commit": git_commit() or "", **machine()}


def _num(v) -> float:
    return math.nan if v is None else float(v)


def _curve_frame(rid: str, phase: str, step: int, log10_h, log10_c) -> pd.DataFrame:
    """Rows of one decay curve, by lag (the cell column is NaN without a cell path)."""
    n = len(log10_h)
    return pd.DataFrame({
        "run_id": rid, "phase": phase, "step": step, "lag": np.arange(n),
        "log10_grad_norm": log10_h,
        "log10_cell_grad_norm": np.full(n, np.nan) if log10_c is None else log10_c,
    })


def probe_tables(res: ProbeResult, wall_time_s: float = 0.0,
                 rid: str | None = None) -> dict[str, pd.DataFrame]:
    """The three tables of one probe run (``training`` is empty); ``rid`` is
    the run's id (default: the one its config computed, :attr:`ProbeResult.run_id`)."""
    cfg = res.config
    rid = res.run_id if rid is None else rid
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(
        run_id=rid, kind="probe", model=model_of(cfg["cell"], cfg["activation"]).label,
        task="probe", cell=cfg["cell"], activation=cfg["activation"],
        init=cfg["init"], gain=cfg["gain"], clip="none", clip_threshold=math.nan,
        optimizer="none", lr=math.nan, momentum=math.nan, hidden=cfg["hidden"],
        batch=cfg["batch"], seq_len=cfg["seq_len"], steps=0, eval_every=-1, eval_batches=-1,
        burn_in=cfg["burn_in"], lyapunov_k=cfg["lyapunov_k"], seed=cfg["seeds"][0],
        input_std=cfg["input_std"],
        bias_std=cfg["bias_std"], ragged=False, status="finished", diverged_at=-1, cause="",
        final_metric=math.nan, baseline=math.nan, success=False, clipped_fraction=0.0,
        decay_rate=_num(res.decay_rate), cell_decay_rate=_num(res.cell_decay_rate),
        theory_slope=_num(res.theory_slope), lyapunov_1=float(res.lyapunov[0]),
        horizon=-1 if res.horizon is None else res.horizon, wall_time_s=wall_time_s,
        dtype="float64", stage="probe", selection="",
        lyapunov=[float(v) for v in res.lyapunov], initial_metric=math.nan,
        w_ih_std=math.nan, w_out_std=math.nan, forget_bias=math.nan, test_correct=math.nan,
        lr_orth=math.nan, **run_provenance(),
    )
    curves = _curve_frame(rid, "init", 0, res.log10_grad_norm, res.log10_cell_grad_norm)
    return _frames(row, curves, _empty_training())


def train_tables(res: TrainResult, rid: str | None = None, stage: str = "report",
                 selection: str = "") -> dict[str, pd.DataFrame]:
    """The three tables of one training run.

    ``rid`` is the run's id (default: :meth:`TrainConfig.run_id` of its
    config, stage and selection); ``stage`` ("report" or "sweep") and
    ``selection`` (the key of the learning-rate sweep it belongs to) are
    recorded in the runs row.
    """
    c = res.config.as_dict()
    rid = res.config.run_id(stage, selection) if rid is None else rid
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(c)
    row["model"] = model_of(c["cell"], c["activation"]).label
    horizon_lag = horizon(np.asarray(res.curves[0]["log10_grad_norm"]))
    row.update(
        run_id=rid, kind="train", input_std=math.nan, bias_std=math.nan, burn_in=-1,
        lyapunov_k=1,
        status=res.status, diverged_at=-1 if res.diverged_at is None else res.diverged_at,
        cause=res.cause or "", final_metric=_num(res.final_metric), baseline=res.baseline,
        success=bool(res.success), clipped_fraction=res.clipped_fraction,
        decay_rate=_num(res.decay_rate_init), cell_decay_rate=_cell_rate(res.curves[0]),
        theory_slope=math.nan, lyapunov_1=_num(res.lyapunov_init),
        horizon=-1 if horizon_lag is None else horizon_lag, wall_time_s=res.wall_time_s,
        stage=stage, selection=selection, lyapunov=[_num(res.lyapunov_init)],
        initial_metric=_num(res.initial_metric), **res.config.init_settings(),
        test_correct=_num(res.test_correct), lr_orth=_num(res.config.lr_orth), **run_provenance(),
    )
    parts = [_curve_frame(rid, cv["phase"], cv["step"], cv["log10_grad_norm"],
                          cv["log10_cell_grad_norm"]) for cv in res.curves]
    training = pd.DataFrame({"run_id": rid, **res.records})
    ev = pd.Series(res.evals["eval_metric"], index=res.evals["step"], dtype=float)
    training["eval_metric"] = training["step"].map(ev).astype(float)
    return _frames(row, pd.concat(parts, ignore_index=True), training)


def _cell_rate(curve: dict) -> float:
    """Fitted decay rate of the cell-path curve (LSTM), NaN without one."""
    cell = curve.get("log10_cell_grad_norm")
    return math.nan if cell is None else fit_decay_rate(np.asarray(cell) * math.log(10.0))


def _empty_training() -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(dtype="float64") for k in TRAINING_COLUMNS}).astype(
        {"run_id": "string", "step": "int64", "clipped": "bool"})


def _frames(row: dict, curves: pd.DataFrame, training: pd.DataFrame) -> dict[str, pd.DataFrame]:
    runs = pd.DataFrame([row], columns=list(RUN_COLUMNS))
    runs = runs.astype({"diverged_at": "int64", "horizon": "int64", "steps": "int64",
                        "seed": "int64", "hidden": "int64", "batch": "int64",
                        "seq_len": "int64", "eval_every": "int64", "eval_batches": "int64",
                        "burn_in": "int64", "lyapunov_k": "int64", "ragged": "bool",
                        "success": "bool"})
    for col in ("gain", "clip_threshold", "lr", "momentum", "input_std", "bias_std",
                "final_metric",
                "baseline", "clipped_fraction", "decay_rate", "cell_decay_rate",
                "theory_slope", "lyapunov_1", "wall_time_s", "initial_metric", "w_ih_std",
                "w_out_std", "forget_bias", "test_correct", "lr_orth"):
        runs[col] = runs[col].astype("float64")
    curves = curves[list(CURVE_COLUMNS)].astype({"step": "int64", "lag": "int64"})
    training = training[list(TRAINING_COLUMNS)].astype({"step": "int64", "clipped": "bool"})
    return {"runs": runs, "curves": curves, "training": training}


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write, sync_dir: bool = True) -> None:
    """Write ``path`` through a temporary file in the same folder: ``write(tmp)``
    writes it, it is flushed to disk (fsync), then renamed over ``path``. A
    reader sees the old file or the whole new one, never a part, even after a
    crash. ``sync_dir=False`` leaves the folder's fsync (which makes the
    rename durable) to a later write in the same folder."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        _fsync_dir(path.parent)


def _digest(data: bytes) -> dict:
    """Size and SHA-256 of a file's content, as a finished run records them."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


#: Key of the run summary (``<run_id>.json``) that records the size and
#: SHA-256 of each table file, so a damaged file is found before it is read.
FILES_KEY = "files"


def write_run(out_dir: str | os.PathLike, tables: dict[str, pd.DataFrame]) -> Path:
    """Write one run's tables; return the path of its ``.json`` summary.

    Every file is written atomically (:func:`atomic_write`), the summary
    last: it records each table file's size and SHA-256 (under
    :data:`FILES_KEY`), so an interrupted write never leaves a run that looks
    finished, and a file damaged later is found (:func:`check_run`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rid = tables["runs"]["run_id"].iloc[0]
    files = {}
    for name in TABLES:
        buf = io.BytesIO()
        tables[name].to_parquet(buf, index=False)
        data = buf.getvalue()
        files[name] = _digest(data)
        atomic_write(out / f"{rid}.{name}.parquet", lambda p, d=data: p.write_bytes(d),
                     sync_dir=False)
    summary = {k: _jsonable(v) for k, v in tables["runs"].iloc[0].items()}
    summary[FILES_KEY] = files
    path = out / f"{rid}.json"
    atomic_write(path, lambda p: p.write_text(json.dumps(summary, indent=1, sort_keys=True)))
    return path


def run_files(out_dir: str | os.PathLike, rid: str) -> list[Path]:
    """The files of run ``rid``: its table files and its summary (written last)."""
    out = Path(out_dir)
    return [out / f"{rid}.{name}.parquet" for name in TABLES] + [out / f"{rid}.json"]


def check_run(out_dir: str | os.PathLike, rid: str) -> tuple[dict | None, str]:
    """Whether run ``rid`` is finished in ``out_dir``: its files read back.

    Returns
    -------
    (summary, why)
        ``(summary dict, "")`` for a finished run; ``(None, "")`` for a run
        with no files (not started); ``(None, reason)`` for a run with files
        that do not read back: a missing or unreadable summary or table file,
        or a table file whose size or SHA-256 differs from what the summary
        recorded (truncated or overwritten). A summary without the record (a
        run from before it) is checked by reading each table file's Parquet
        footer.
    """
    summary, _, why = _read_run(Path(out_dir), rid)
    return summary, why


def _read_run(out: Path, rid: str) -> tuple[dict | None, dict[str, bytes], str]:
    """:func:`check_run`, also returning the table files' contents it checked
    (by table name), so that a reader parses the bytes it verified."""
    if not any(p.exists() for p in run_files(out, rid)):
        return None, {}, ""
    path = out / f"{rid}.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        return None, {}, f"its summary {path.name} is missing (interrupted before it finished)"
    except (OSError, ValueError) as exc:
        return None, {}, f"its summary {path.name} does not read back ({exc})"
    if not isinstance(summary, dict):
        return None, {}, f"its summary {path.name} is not a JSON object"
    recorded = summary.get(FILES_KEY) or {}
    contents = {}
    for name in TABLES:
        table = out / f"{rid}.{name}.parquet"
        try:
            data = table.read_bytes()
        except FileNotFoundError:
            return None, {}, f"{table.name} is missing"
        want = recorded.get(name)
        if want is None:  # a run from before the record: its Parquet footer must read
            try:
                pq.read_metadata(io.BytesIO(data))
            except Exception as exc:  # noqa: BLE001 - any failure to read is "damaged"
                return None, {}, f"{table.name} does not read back ({exc})"
        elif (got := _digest(data)) != want:
            return None, {}, (f"{table.name} is {got['bytes']} bytes with SHA-256 "
                              f"{got['sha256'][:12]}, its summary recorded {want['bytes']} "
                              f"bytes and {want['sha256'][:12]} (truncated or overwritten)")
        contents[name] = data
    return summary, contents, ""


def is_finished(out_dir: str | os.PathLike, rid: str) -> bool:
    """Whether run ``rid`` is finished in ``out_dir`` (by any code): its files
    read back (:func:`check_run`)."""
    return check_run(out_dir, rid)[0] is not None


def remove_partial(out_dir: str | os.PathLike, rid: str) -> None:
    """Remove what an interrupted write of run ``rid`` left: its temporary files."""
    for tmp in Path(out_dir).glob(f".{rid}.*.tmp-*"):
        tmp.unlink(missing_ok=True)


def read_tables(out_dir: str | os.PathLike, run_ids=None) -> dict[str, pd.DataFrame]:
    """Concatenate the per-run files of ``out_dir`` into the three tables.

    Parameters
    ----------
    out_dir : path
    run_ids : iterable of str, optional
        Only these runs (default: every run with a summary in the folder).

    Returns
    -------
    dict of str to DataFrame, sorted by run id (and phase/step/lag).

    Raises
    ------
    ValueError
        If a run id is given twice (it would be counted twice), or a run is
        not finished or its files do not read back (:func:`check_run`),
        naming the run and why.
    """
    out = Path(out_dir)
    ids = sorted(run_ids) if run_ids is not None else sorted(
        p.name[: -len(".json")] for p in out.glob("*.json"))
    twice = sorted(rid for rid, n in Counter(ids).items() if n > 1)
    if twice:
        raise ValueError(f"run ids given more than once: {', '.join(twice[:5])}"
                         + (" ..." if len(twice) > 5 else ""))
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for rid in ids:  # each run's files read once: verified, then parsed from those bytes
        summary, contents, why = _read_run(out, rid)
        if summary is None:
            raise ValueError(f"run {rid} in {out}: " + (why or "not computed") + "; run the "
                             "workflow again to recompute it")
        for name in TABLES:
            parts[name].append(pd.read_parquet(io.BytesIO(contents[name])))
    tables = {}
    for name in TABLES:
        frames = [f for f in parts[name] if len(f)]
        if frames:
            tables[name] = pd.concat(frames, ignore_index=True)
        elif parts[name]:  # keep the dtypes of the schema even with no rows
            tables[name] = parts[name][0]
        else:
            cols = {"runs": RUN_COLUMNS, "curves": CURVE_COLUMNS,
                    "training": TRAINING_COLUMNS}[name]
            tables[name] = pd.DataFrame(columns=list(cols))
    return tables


def summary_json(tables: dict[str, pd.DataFrame]) -> dict:
    """The runs row as a JSON-ready dict (non-finite numbers become None)."""
    return {k: _jsonable(v) for k, v in tables["runs"].iloc[0].items()}


def _jsonable(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
