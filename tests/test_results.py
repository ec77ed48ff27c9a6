"""Result tables: stable run ids, documented columns, Parquet round trips,
overwrite-not-duplicate and the finished marker."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gradpath import grid, results, vocab
from gradpath.cells import REGISTRY
from gradpath.probe import ProbeConfig, probe
from gradpath.results import (
    FILES_KEY,
    TABLES,
    check_run,
    is_finished,
    probe_tables,
    read_tables,
    run_id,
    summary_json,
    train_tables,
    write_run,
)
from gradpath.train import TrainConfig, train

# The columns as the results module documents them (its docstring), spelled out
# here so that a change to either side is caught.
RUN_COLUMNS = [
    "run_id", "kind", "model", "task", "cell", "activation", "init", "gain", "clip",
    "clip_threshold", "optimizer", "lr", "momentum", "hidden", "batch", "seq_len", "steps",
    "eval_every", "eval_batches", "seed", "input_std", "bias_std", "burn_in", "lyapunov_k",
    "ragged", "status", "diverged_at", "cause", "final_metric",
    "baseline", "success", "clipped_fraction", "decay_rate", "cell_decay_rate",
    "theory_slope", "lyapunov_1", "horizon", "wall_time_s", "dtype", "stage", "selection",
    "lyapunov", "initial_metric", "w_ih_std", "w_out_std", "forget_bias", "test_correct",
    "lr_orth",
    "version_gradpath", "version_numpy", "version_numba",
    "version_python", "version_scipy", "version_pandas", "code_id", "git_commit", "machine_cpu",
    "machine_blas", "machine_os",
]
CURVE_COLUMNS = ["run_id", "phase", "step", "lag", "log10_grad_norm", "log10_cell_grad_norm"]
TRAINING_COLUMNS = ["run_id", "step", "loss", "metric", "grad_norm_before", "grad_norm_after",
                    "clipped", "eval_metric"]

SMALL = dict(task="adding", seq_len=12, hidden=8, batch=4, steps=12, eval_every=5,
             eval_batches=2)


@pytest.fixture(scope="module")
def train_run():
    return train(TrainConfig(**SMALL))


@pytest.fixture(scope="module")
def lstm_probe():
    return probe(cell="lstm", activation="tanh", init="orthogonal", gain=1.0, hidden=8,
                 seq_len=30, batch=2, input_std=1.0, bias_std=0.1, lyapunov_k=2)


# -- run ids ---------------------------------------------------------------------------
def test_run_id_is_a_stable_hex_hash():
    cfg = TrainConfig(**SMALL).as_dict()
    rid = run_id("train", cfg)
    assert len(rid) == 16 and int(rid, 16) >= 0
    assert run_id("train", dict(reversed(list(cfg.items())))) == rid  # key order is irrelevant
    assert run_id("probe", cfg) != rid  # the kind is part of the id


def test_run_id_is_the_same_in_another_process():
    cfg = TrainConfig(**SMALL).as_dict()
    code = ("import json, sys; from gradpath.results import run_id; "
            "print(run_id('train', json.loads(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip() == run_id("train", cfg)


def test_gain_1_and_1_0_are_one_train_configuration():
    a, b = TrainConfig(**SMALL, gain=1), TrainConfig(**SMALL, gain=1.0)
    assert a == b
    assert run_id("train", a.as_dict()) == run_id("train", b.as_dict())
    c, d = TrainConfig(**SMALL, lr=1, clip_threshold=2), TrainConfig(**SMALL, lr=1.0,
                                                                    clip_threshold=2.0)
    assert run_id("train", c.as_dict()) == run_id("train", d.as_dict())


def test_run_id_hashes_1_and_1_0_alike():
    """results._canonical promises that an integral float and the int hash alike."""
    assert run_id("train", {"gain": 1}) == run_id("train", {"gain": 1.0})
    assert run_id("probe", {"gain": 2, "seeds": [0]}) == run_id("probe", {"gain": 2.0,
                                                                          "seeds": [0]})


_OTHER = dict(task="copy", seq_len=13, cell="lstm", activation="relu", init="identity",
              gain=1.5, clip="value", clip_threshold=0.5, optimizer="sgd", lr=0.01,
              momentum=0.5, hidden=9, batch=5, steps=13, seed=1, eval_every=6,
              eval_batches=3, ragged=True, dtype="float32", lr_orth=1e-4, w_ih_std=0.001,
              w_out_std=0.002, forget_bias=4.0)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(TrainConfig)])
def test_run_id_changes_with_every_field(field):
    base = TrainConfig(**SMALL)
    if field == "activation":  # recorded only for the RNN
        base = dataclasses.replace(base, activation="tanh")
    if field == "lr_orth":  # a field of the cells with a skew matrix only
        cells = [n for n, c in REGISTRY.items() if "lr_orth" in c.lr_groups.values()]
        if not cells:
            with pytest.raises(ValueError, match="^lr_orth"):
                dataclasses.replace(base, lr_orth=_OTHER[field])
            return
        base = dataclasses.replace(base, cell=cells[0],
                                   activation=REGISTRY[cells[0]].fixed_activation)
    if field == "momentum":  # SGD's only
        base = dataclasses.replace(base, optimizer="sgd")
    if field == "forget_bias":  # the LSTM's only
        base = dataclasses.replace(base, cell="lstm")
    changed = dataclasses.replace(base, **{field: _OTHER[field]})
    assert changed.as_dict()[field] != base.as_dict().get(field)
    assert run_id("train", changed.as_dict()) != run_id("train", base.as_dict())


def test_lstm_configs_never_differ_by_activation():
    a = TrainConfig(**SMALL, cell="lstm", activation="relu")
    b = TrainConfig(**SMALL, cell="lstm", activation="tanh")
    assert a.activation == "tanh"
    assert run_id("train", a.as_dict()) == run_id("train", b.as_dict())


def test_probe_run_id_follows_its_configuration(lstm_probe):
    t = probe_tables(lstm_probe)
    assert t["runs"]["run_id"].iloc[0] == run_id("probe", lstm_probe.config)
    assert lstm_probe.run_id == lstm_probe.probe_config.run_id == t["runs"]["run_id"].iloc[0]
    other = probe(cell="lstm", activation="tanh", init="orthogonal", gain=1.0, hidden=8,
                  seq_len=30, batch=2, input_std=1.0, bias_std=0.2, lyapunov_k=2)
    assert probe_tables(other)["runs"]["run_id"].iloc[0] != t["runs"]["run_id"].iloc[0]


# Ids computed by the code before ProbeConfig and TrainConfig.run_id existed (commit
# 81d3a14; the training ids re-pinned when SGD's momentum default became 0 and a
# sweep's candidates became (lr, clip threshold) pairs): a finished run is found by
# its id, so a refactor must keep every id.
PINNED_PROBES = dict(models=["rnn-tanh", "lstm"], inits=["identity", "orthogonal"],
                     gains=[1, 2.5], seeds=[0, 3], hidden=16, seq_len=30, batch=2,
                     input_std=1.0, bias_std=0.1, burn_in=20, lyapunov_k=2)
PINNED_BLOCK = dict(tasks=["adding"], models=["rnn-relu", "lstm"], inits=["identity"],
                    clips=["none", "norm"], seq_lens=[10], steps=20, seeds=[0, 1], gain=1.0,
                    clip_threshold=1.0, optimizer="adam", lr=0.001, lrs=[0.001, 0.01],
                    selection_seeds=[100], sweep_fraction=0.5, hidden=8, batch=4,
                    eval_every=10, eval_batches=1, ragged=False, dtype="float32")


def test_grid_run_ids_are_the_ones_computed_before():
    runs = (grid.probe_runs(PINNED_PROBES) + grid.train_runs([PINNED_BLOCK])
            + grid.train_runs([{**PINNED_BLOCK, "lrs": []}]))  # probes, sweeps, reported
    assert {r.config.get("stage") for r in runs} == {None, "sweep", "report"}
    assert runs[0].run_id == "30433ae247837ebd" and runs[-1].run_id == "2868f728a7f479a4"
    ids = " ".join(r.run_id for r in runs)
    assert len(runs) == 40 and hashlib.sha256(ids.encode()).hexdigest()[:16] == "bf9a35458dd3548b"


def test_probe_config_id_is_the_one_computed_before():
    """`gradpath probe --cell lstm --init orthogonal --gain 1.5 --hidden 16 --seq-len 30
    --batch 2 --bias-std 0.1 --lyapunov-k 2 --seed 1` before ProbeConfig existed."""
    c = ProbeConfig(cell="lstm", activation="relu", init="orthogonal", gain=1.5, hidden=16,
                    seq_len=30, batch=2, bias_std=0.1, seeds=(1,), lyapunov_k=2)
    assert c.run_id == run_id("probe", c.as_dict()) == "96044f4c6f568e7e"


def test_a_reported_train_run_has_one_id_wherever_it_is_run(train_run):
    """The command line's id of a configuration (TrainConfig.run_id, the tables'
    default) is the grid's for the same run of a block without a sweep."""
    c = train_run.config
    block = {**{k + "s": [v] for k, v in c.as_dict().items()
                if k in ("task", "init", "clip", "seq_len", "seed")},
             "models": [vocab.model_of(c.cell, c.activation).label], "lrs": [],
             **{k: getattr(c, k) for k in ("gain", "clip_threshold", "optimizer", "lr",
                                           "hidden", "batch", "steps", "eval_every",
                                           "eval_batches", "ragged", "dtype")}}
    (run,) = grid.train_runs([block])
    assert run.run_id == c.run_id() == train_tables(train_run)["runs"]["run_id"].iloc[0]
    assert c.run_id("sweep", "k") != c.run_id()  # the stage is part of a run's id


# -- columns -----------------------------------------------------------------------------
def test_train_tables_have_exactly_the_documented_columns(train_run):
    t = train_tables(train_run)
    assert list(t["runs"].columns) == RUN_COLUMNS
    assert list(t["curves"].columns) == CURVE_COLUMNS
    assert list(t["training"].columns) == TRAINING_COLUMNS
    assert results.WALL_TIME_COLUMNS == ("wall_time_s",)
    doc = " ".join(results.__doc__.split())
    for col in RUN_COLUMNS + CURVE_COLUMNS + TRAINING_COLUMNS:
        assert col in doc, col  # documented by name


def test_probe_tables_have_exactly_the_documented_columns(lstm_probe):
    t = probe_tables(lstm_probe, 0.5)
    assert list(t["runs"].columns) == RUN_COLUMNS
    assert list(t["curves"].columns) == CURVE_COLUMNS
    assert list(t["training"].columns) == TRAINING_COLUMNS
    assert len(t["training"]) == 0


def test_train_table_contents(train_run):
    r = train_run
    t = train_tables(r)
    row = t["runs"].iloc[0]
    c = r.config
    for k, v in c.as_dict().items():
        if k in RUN_COLUMNS:  # (momentum, eval_every, eval_batches have no column)
            assert row[k] == v, k
    assert row["kind"] == "train" and row["model"] == "rnn-tanh"
    assert row["status"] == "finished" and row["diverged_at"] == -1
    assert row["final_metric"] == r.final_metric and row["baseline"] == r.baseline
    assert row["decay_rate"] == r.decay_rate_init and row["lyapunov_1"] == r.lyapunov_init
    assert math.isnan(row["input_std"]) and math.isnan(row["theory_slope"])
    tr = t["training"]
    assert list(tr["step"]) == list(range(1, c.steps + 1))
    np.testing.assert_array_equal(tr["loss"], r.records["loss"])
    evals = tr.dropna(subset=["eval_metric"])
    assert list(evals["step"]) == r.evals["step"] == [5, 10, 12]
    np.testing.assert_array_equal(evals["eval_metric"], r.evals["eval_metric"])
    cv = t["curves"]
    assert list(cv.groupby("step", sort=True)["phase"].first()) == ["init", "checkpoint",
                                                                   "checkpoint", "final"]
    assert (cv.groupby("step")["lag"].max() == c.seq_len - 1).all()
    assert cv["log10_cell_grad_norm"].isna().all()


def test_probe_table_contents(lstm_probe):
    t = probe_tables(lstm_probe, 0.25)
    row = t["runs"].iloc[0]
    assert row["kind"] == "probe" and row["model"] == "lstm" and row["task"] == "probe"
    assert row["decay_rate"] == lstm_probe.decay_rate
    assert row["cell_decay_rate"] == lstm_probe.cell_decay_rate
    assert math.isnan(row["theory_slope"])
    assert row["lyapunov_1"] == lstm_probe.lyapunov[0]
    assert row["horizon"] == (-1 if lstm_probe.horizon is None else lstm_probe.horizon)
    assert row["wall_time_s"] == 0.25
    np.testing.assert_array_equal(t["curves"]["log10_cell_grad_norm"],
                                  lstm_probe.log10_cell_grad_norm)
    assert list(t["curves"]["lag"]) == list(range(30))


# -- writing and reading -------------------------------------------------------------------
def test_write_and_read_round_trip(tmp_path, train_run, lstm_probe):
    tt, pt = train_tables(train_run), probe_tables(lstm_probe, 0.1)
    write_run(tmp_path, tt)
    write_run(tmp_path, pt)
    for t in (tt, pt):
        rid = t["runs"]["run_id"].iloc[0]
        back = read_tables(tmp_path, [rid])
        for name in results.TABLES:
            if len(t[name]) == 0:  # a probe's training table: no rows to type
                assert len(back[name]) == 0
                assert list(back[name].columns) == list(t[name].columns)
                continue
            pd.testing.assert_frame_equal(back[name], t[name])
    both = read_tables(tmp_path)
    assert sorted(both["runs"]["run_id"]) == list(both["runs"]["run_id"])
    assert set(both["runs"]["kind"]) == {"train", "probe"}
    assert len(both["curves"]) == len(tt["curves"]) + len(pt["curves"])
    assert len(both["training"]) == len(tt["training"])
    assert list(both["runs"].columns) == RUN_COLUMNS


def test_rewriting_a_run_overwrites_it(tmp_path, train_run):
    t = train_tables(train_run)
    write_run(tmp_path, t)
    files = sorted(p.name for p in tmp_path.iterdir())
    rerun = train_tables(train(TrainConfig(**SMALL)))  # same config: same id
    write_run(tmp_path, rerun)
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no temporaries left either
    back = read_tables(tmp_path)
    assert len(back["runs"]) == 1
    assert len(back["training"]) == SMALL["steps"]
    assert back["runs"]["wall_time_s"].iloc[0] == rerun["runs"]["wall_time_s"].iloc[0]


def test_is_finished(tmp_path, train_run):
    t = train_tables(train_run)
    rid = t["runs"]["run_id"].iloc[0]
    assert not is_finished(tmp_path, rid)
    path = write_run(tmp_path, t)
    assert path == tmp_path / f"{rid}.json"
    assert is_finished(tmp_path, rid)
    (tmp_path / f"{rid}.curves.parquet").unlink()
    assert not is_finished(tmp_path, rid)
    write_run(tmp_path, t)
    path.unlink()  # the summary marks a finished run
    assert not is_finished(tmp_path, rid)


def test_summary_is_strict_json(tmp_path, train_run, lstm_probe):
    for t in (train_tables(train_run), probe_tables(lstm_probe)):
        path = write_run(tmp_path, t)

        def no_nan(name):
            raise AssertionError(f"non-standard JSON constant {name}")

        summary = json.loads(path.read_text(), parse_constant=no_nan)
        files = summary.pop(FILES_KEY)
        assert summary == summary_json(t)
        assert set(summary) == set(RUN_COLUMNS)
        assert set(files) == set(TABLES)
    assert summary["theory_slope"] is None  # NaN becomes null


def test_probe_summary_marks_what_does_not_apply_as_na():
    """The report's probe table: theory only for gaussian/orthogonal RNNs, a cell
    decay rate only for the LSTM, "n/a" elsewhere; every model of the study."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    try:
        from summarise import NA, probe_table
    finally:
        sys.path.pop(0)
    kw = dict(init="orthogonal", gain=1.0, hidden=16, seq_len=30, batch=2, burn_in=5,
              lyapunov_k=2, bias_std=0.1)
    runs = pd.concat([results.probe_tables(probe(cell=c, activation=a, **kw))["runs"]
                      for c, a in (("gru", "tanh"), ("rnn", "tanh"), ("lstm", "tanh"))],
                     ignore_index=True)
    t = probe_table(runs).set_index("model")
    assert list(t.index) == ["rnn-tanh", "lstm", "gru"]  # the vocabulary's order
    assert t.loc["gru", "half_ln_chi"] == NA and t.loc["lstm", "half_ln_chi"] == NA
    assert isinstance(t.loc["rnn-tanh", "half_ln_chi"], float)
    assert t.loc["rnn-tanh", "cell_decay_rate"] == NA and t.loc["gru", "cell_decay_rate"] == NA
    assert isinstance(t.loc["lstm", "cell_decay_rate"], float)
    for m in t.index:
        assert math.isfinite(t.loc[m, "decay_rate"]) and math.isfinite(t.loc[m, "lyapunov_1"])


# -- damaged run files are recomputed, never read (issue 17, D5) --------------------------
def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name", TABLES)
def test_a_truncated_table_file_is_not_a_finished_run(tmp_path, train_run, name):
    t = train_tables(train_run)
    write_run(tmp_path, t)
    rid = t["runs"]["run_id"].iloc[0]
    assert check_run(tmp_path, rid)[1] == "" and is_finished(tmp_path, rid)
    _truncate(tmp_path / f"{rid}.{name}.parquet")
    summary, why = check_run(tmp_path, rid)
    assert summary is None and f"{name}.parquet" in why and "truncated" in why
    with pytest.raises(ValueError, match=f"run {rid}.*{name}.parquet"):
        read_tables(tmp_path, [rid])


def test_a_truncated_summary_or_an_old_damaged_run_is_not_finished(tmp_path, train_run):
    t = train_tables(train_run)
    path = write_run(tmp_path, t)
    rid = t["runs"]["run_id"].iloc[0]
    _truncate(path)
    assert check_run(tmp_path, rid)[0] is None and "does not read back" in check_run(
        tmp_path, rid)[1]
    # a run written before the files were recorded: its Parquet footers are read
    write_run(tmp_path, t)
    summary = json.loads(path.read_text())
    del summary[FILES_KEY]
    path.write_text(json.dumps(summary))
    assert is_finished(tmp_path, rid)
    _truncate(tmp_path / f"{rid}.training.parquet")
    assert "training.parquet does not read back" in check_run(tmp_path, rid)[1]
    assert check_run(tmp_path, "0123456789abcdef") == (None, "")  # never started


def test_execute_recomputes_a_truncated_run_and_logs_why(tmp_path, caplog):
    cfg = TrainConfig(task="adding", seq_len=6, cell="rnn", activation="tanh",
                      init="orthogonal", hidden=6, batch=4, steps=4, eval_every=2, seed=0)
    run = grid.Run(cfg)
    assert grid.execute(run, tmp_path) == "finished"
    before = read_tables(tmp_path)
    assert grid.execute(run, tmp_path) == "skipped"
    _truncate(tmp_path / f"{run.run_id}.training.parquet")
    (tmp_path / f".{run.run_id}.runs.parquet.tmp-1-2").write_bytes(b"half")  # a killed write
    with caplog.at_level("WARNING", logger="gradpath.grid"):
        assert grid.execute(run, tmp_path) == "finished"
    assert "training.parquet" in caplog.text and "recomputing" in caplog.text
    assert not list(tmp_path.glob(".*tmp-*"))
    after = read_tables(tmp_path)
    for name in TABLES:
        pd.testing.assert_frame_equal(after[name].drop(columns=["wall_time_s"], errors="ignore"),
                                      before[name].drop(columns=["wall_time_s"],
                                                        errors="ignore"))


def test_a_run_counted_twice_is_refused(tmp_path, train_run):
    t = train_tables(train_run)
    write_run(tmp_path, t)
    rid = t["runs"]["run_id"].iloc[0]
    with pytest.raises(ValueError, match=f"more than once: {rid}"):
        read_tables(tmp_path, [rid, rid])


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "x.txt"
    results.atomic_write(path, lambda p: p.write_text("old"))

    def fails(p):
        p.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        results.atomic_write(path, fails)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]
