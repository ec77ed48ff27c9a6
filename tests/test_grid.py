"""Grid expansion refuses or repairs configs that would give wrong tables:
a run given by two blocks, a seed reported twice, a per-mode clip threshold
with an unclipped mode, lr beside lrs, study names outside results/
(issue 17: D2, D3, D8, D9)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from gradpath import grid
from gradpath.results import read_tables

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "configs" / "schema.yaml")


def smoke() -> dict:
    return yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


def expand(cfg: dict) -> list[grid.Run]:
    grid.check_raw_train(cfg.get("train"))
    validate(cfg, SCHEMA)
    return grid.train_runs(cfg["train"])


def block(cfg: dict, name: str) -> dict:
    return next(b for b in cfg["train"] if b.get("name") == name)


# -- D2: a run id appears once, whatever the blocks ------------------------------------------
def test_a_run_given_by_two_blocks_is_one_run_naming_both():
    cfg = smoke()
    ref = expand(copy.deepcopy(cfg))
    extra = {**copy.deepcopy(block(cfg, "exploding")), "name": "copy", "clips": ["none"]}
    new = len(cfg["train"])  # the appended block's index
    cfg["train"].append(extra)
    runs = expand(cfg)
    ids = [r.run_id for r in runs]
    assert len(ids) == len(set(ids)) == len(ref)
    assert {r.run_id for r in runs} == {r.run_id for r in ref}
    merged = [r for r in runs if " + " in r.source]
    assert len(merged) == 3  # the three unclipped seeds
    assert all(r.source == f"train[1] (exploding) + train[{new}] (copy)" for r in merged)
    assert all(r.config["clip"] == "none" for r in merged)


def test_one_seed_reported_twice_with_other_settings_is_refused_naming_both_blocks():
    cfg = smoke()
    extra = {**copy.deepcopy(block(cfg, "exploding")), "name": "faster", "clips": ["none"],
             "lr": 0.02}
    new = len(cfg["train"])  # the appended block's index
    cfg["train"].append(extra)
    with pytest.raises(ValueError) as info:
        expand(cfg)
    text = str(info.value)
    for word in ("train[1] (exploding)", f"train[{new}] (faster)", "lr 0.01 vs 0.02", "seed=0",
                 "clip=none", "twice"):
        assert word in text, (word, text)


def test_a_fixed_rate_twin_of_a_swept_configuration_is_allowed():
    """The default study trains one configuration at its swept rate and, in the
    other precision's twin block, at a fixed one: one run of each per seed."""
    cfg = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    runs = expand(cfg)
    assert len({r.run_id for r in runs}) == len(runs)


# -- D3: per-mode thresholds with clips: [none, ...] -----------------------------------------
def test_per_mode_thresholds_with_an_unclipped_mode_expand():
    cfg = smoke()
    block(cfg, "exploding")["clip_threshold"] = {"norm": 2.0, "value": 0.5}
    runs = [r for r in expand(cfg) if r.source == "train[1] (exploding)"]
    thr = {r.config["clip"]: r.config["clip_threshold"] for r in runs}
    assert thr == {"none": 1.0, "norm": 2.0, "value": 0.5}


def test_a_clip_mode_without_its_threshold_is_named():
    cfg = smoke()
    block(cfg, "exploding")["clip_threshold"] = {"norm": 2.0}
    with pytest.raises(ValueError, match=r"train\[1\] \(exploding\)\.clip_threshold: no "
                                         r"threshold for clip mode 'value'"):
        expand(cfg)


# -- D9: lr beside lrs -------------------------------------------------------------------------
def test_lr_and_lrs_together_are_refused_naming_the_block():
    cfg = smoke()
    block(cfg, "remedies")["lr"] = 0.001
    with pytest.raises(ValueError, match=r"train\[0\] \(remedies\): gives both lr \(0.001\) "
                                         r"and lrs \(\[0.001, 0.01\]\)"):
        expand(cfg)
    one = smoke()
    del block(one, "exploding")["lr"]
    block(one, "exploding")["lrs"] = [0.05]  # one rate: no sweep, that rate
    runs = [r for r in expand(one) if r.source == "train[1] (exploding)"]
    assert {r.config["lr"] for r in runs} == {0.05}


# -- D8: study names stay inside results/ ----------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", ".hidden", "/tmp/abs", "a/b", "..\\x", "", " a",
                                  "C:\\x"])
def test_a_study_name_outside_results_is_refused(name):
    with pytest.raises(ValueError, match="name: expected a plain folder name"):
        grid.study_dir(name)
    cfg = {"name": name}
    with pytest.raises(Exception, match="does not match"):
        validate(cfg, SCHEMA)


@pytest.mark.parametrize("name", ["smoke", "my.study", "a..b", "_x", "T-100"])
def test_plain_study_names_are_kept(name):
    assert grid.study_dir(name) == f"results/{name}"
    validate({"name": name}, SCHEMA)


# -- batch markers ---------------------------------------------------------------------------
def test_a_batch_marker_no_longer_holds_when_a_run_file_changes(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    for n in ("r1.json", "r1.runs.parquet", "r1.curves.parquet", "r1.training.parquet"):
        (runs_dir / n).write_text("x" * 10)
    marker = tmp_path / "b.json"
    marker.write_text(json.dumps(grid.batch_marker({"r1": "finished"}, runs_dir)))
    assert grid.marker_problem(marker, runs_dir) == ""
    os.utime(runs_dir / "r1.runs.parquet", ns=(1, 1))  # rewritten, same size
    assert grid.marker_problem(marker, runs_dir) == (
        "run r1: r1.runs.parquet was modified after its batch finished")
    marker.write_text(json.dumps(grid.batch_marker({"r1": "finished"}, runs_dir)))
    (runs_dir / "r1.curves.parquet").write_text("x" * 4)
    assert grid.marker_problem(marker, runs_dir) == (
        "run r1: r1.curves.parquet is 4 bytes, 10 when its batch finished")
    (runs_dir / "r1.curves.parquet").unlink()
    assert grid.marker_problem(marker, runs_dir) == "run r1: r1.curves.parquet is missing"
    marker.write_text('{"runs": {"r1": "finished"}}')  # a marker from before the records
    assert "written before run files were recorded" in grid.marker_problem(marker, runs_dir)
    marker.write_text('{"runs": ')
    assert "does not read back" in grid.marker_problem(marker, runs_dir)


# -- the tables count each seed once ---------------------------------------------------------
def _made_up_runs(cfg: dict):
    """A runs table with one row per reported run of a study's grid (made-up
    outcomes: every run finished, final metric 0.01 x baseline)."""
    import pandas as pd

    from gradpath.vocab import model_of

    rows = []
    for r in expand(cfg):
        c = r.config
        if c["stage"] != grid.REPORT:
            continue
        rows.append({**c, "run_id": r.run_id, "kind": "train",
                     "model": model_of(c["cell"], c["activation"]).label,
                     "lr": 0.003 if c["lr"] is None else c["lr"], "status": "finished",
                     "final_metric": 0.0017, "baseline": 0.17, "clipped_fraction": 0.0,
                     "decay_rate": -0.1, "lyapunov_1": -0.1})
    return pd.DataFrame(rows)


def test_the_summary_counts_a_configuration_with_a_fixed_rate_twin_once():
    """The default study's IRNN at T = 100 in float32 is trained at its swept
    rate (block relu) and at a fixed one (block precision float32): its
    summary row holds the three swept seeds; the float64 twin keeps its row."""
    import sys

    sys.path.insert(0, str(ROOT / "analysis"))
    try:
        from summarise import summary_table
    finally:
        sys.path.pop(0)
    cfg = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    runs = _made_up_runs(cfg)
    s = summary_table(runs).set_index(["model", "init", "gain", "clip", "seq_len", "dtype"])
    assert len(s) == len(s.index.unique()) == 25
    irnn = s.loc[("rnn-relu", "identity", 1.0, "norm", 100, "float32")]
    assert irnn["seeds"] == 3 and irnn["lr"] == 0.003  # the swept runs, not the fixed 0.001
    assert s.loc[("rnn-relu", "identity", 1.0, "norm", 100, "float64"), "seeds"] == 3
    assert (s["seeds"] == 3).all()


def test_claims_count_fixed_rate_twins_in_two_precisions_once():
    """A configuration trained only at fixed rates in both precisions is judged
    on one precision's seeds (float32), not on both as extra seeds."""
    from gradpath.claims import primary, report_runs

    cfg = smoke()
    for name in ("float64 twin", "float32 twin"):
        block(cfg, name)["seq_lens"] = [30]  # a length the swept block does not train
    runs = _made_up_runs(cfg)
    assert len(report_runs(runs).query("seq_len == 30")) == 6
    p = primary(report_runs(runs))
    twins = p[p["seq_len"] == 30]
    assert len(twins) == 3 and set(twins["dtype"]) == {"float32"}
    assert not p.duplicated(["task", "model", "init", "gain", "clip", "seq_len", "seed"]).any()


def test_a_run_record_reads_back_as_the_same_typed_run_and_an_edited_one_is_refused():
    """The grid hands jobs plain records; a job rebuilds the typed configuration
    and refuses one whose configuration no longer hashes to its id."""
    section = [{"name": "sweep", "tasks": ["adding"], "models": ["rnn-relu"],
                "inits": ["identity"], "clips": ["norm"], "seq_lens": [5], "steps": 4,
                "seeds": [0], "optimizer": "adam", "lrs": [0.001, 0.01],
                "selection_seeds": [100], "sweep_fraction": 0.5, "clip_threshold": 1.0,
                "hidden": 4, "batch": 2, "eval_every": 2, "eval_batches": 1,
                "ragged": False, "dtype": "float64", "gain": 1.0}]
    runs = grid.train_runs(section)
    pending = [r for r in runs if r.candidates]
    assert pending and all(r.config["lr"] is None for r in pending)
    for r in runs:
        back = grid.Run.from_record(r.record())
        assert back.spec == r.spec and back.run_id == r.run_id and back.config == r.config
    # the one recipe: a pending run's id is its TrainConfig's, given the candidates
    r = pending[0]
    assert r.run_id == r.spec.run_id(r.stage, r.selection, r.candidates)
    edited = r.record()
    edited["config"] = {**edited["config"], "hidden": 5}
    with pytest.raises(ValueError, match=f"^run {r.run_id}: its configuration has the id"):
        grid.Run.from_record(edited)


# -- clip-threshold grids and the per-weight initialisation keys ----------------------------
_LE_BLOCK = {"name": "le", "tasks": ["adding"], "models": ["lstm"], "inits": ["orthogonal"],
             "clips": ["norm"], "seq_lens": [6], "steps": 4, "seeds": [0, 1],
             "optimizer": "sgd", "lrs": [0.01, 0.1], "clip_thresholds": [1.0, 100.0],
             "selection_seeds": [100], "sweep_fraction": 0.5, "clip_threshold": 1.0,
             "hidden": 4, "batch": 2, "eval_every": 2, "eval_batches": 1, "ragged": False,
             "dtype": "float64", "gain": 1.0, "w_ih_std": 0.001, "w_out_std": 0.002,
             "forget_bias": 4.0}


def test_a_sweep_over_rates_and_clip_thresholds_runs_every_pair(tmp_path):
    runs = grid.train_runs([_LE_BLOCK])
    sweep = [r for r in runs if r.stage == grid.SWEEP]
    assert {(r.spec.lr, r.spec.clip_threshold) for r in sweep} == {
        (0.01, 1.0), (0.01, 100.0), (0.1, 1.0), (0.1, 100.0)}
    pending = [r for r in runs if r.candidates]
    assert len(pending) == 2 and all(r.config["clip_threshold"] is None for r in pending)
    assert all(r.spec.w_ih_std == 0.001 and r.spec.forget_bias == 4.0 for r in runs)
    # the selected pair is what the reported run trains with, and records
    selection = {pending[0].selection: {"lr": 0.1, "clip_threshold": 100.0}}
    grid.execute(pending[0], tmp_path, selection)
    row = read_tables(tmp_path)["runs"].iloc[0]
    assert (row["lr"], row["clip_threshold"]) == (0.1, 100.0)
    assert (row["w_ih_std"], row["w_out_std"], row["forget_bias"]) == (0.001, 0.002, 4.0)
    assert row["momentum"] == 0.0
    # a changed selection recomputes it
    assert grid.execute(pending[0], tmp_path, selection) == "skipped"
    other = {pending[0].selection: {"lr": 0.1, "clip_threshold": 1.0}}
    assert grid.execute(pending[0], tmp_path, other) != "skipped"


def test_a_threshold_and_a_threshold_grid_together_are_refused():
    with pytest.raises(ValueError, match="clip_threshold .* and clip_thresholds"):
        grid.check_raw_train([_LE_BLOCK])


def test_the_forget_bias_of_a_mixed_block_goes_to_its_lstm_only():
    block = {**_LE_BLOCK, "models": ["lstm", "rnn-tanh"], "lrs": [], "lr": 0.01,
             "clip_thresholds": []}
    runs = grid.train_runs([block])
    fb = {r.spec.cell: r.spec.forget_bias for r in runs}
    assert fb == {"lstm": 4.0, "rnn": None}
