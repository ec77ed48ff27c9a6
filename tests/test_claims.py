"""The claims (gradpath.claims) judged on synthetic runs tables, the learning-rate
sweep's expansion and selection (gradpath.grid), and the reproductions that
need no runs (the cliff)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gradpath import claims, cliff, grid, tasks, vocab

BASE = 1 / 6


def train_row(model="rnn-relu", init="identity", seq_len=100, seed=0, final=0.01, status=None,
              clip="norm", gain=1.0, dtype="float32", selection="k", lr=1e-3, initial=0.2,
              task="adding", stage="report", run_id=None, optimizer="adam", momentum=0.0,
              steps=100, test_correct=math.nan, clip_threshold=1.0):
    return {"run_id": run_id or f"{model}-{init}-{seq_len}-{clip}-{gain}-{dtype}-{seed}-{stage}"
                                f"-{lr}-{selection}",
            "kind": "train", "cell": vocab.MODELS[model].cell, "stage": stage,
            "task": task, "model": model, "init": init,
            "gain": gain, "clip": clip, "seq_len": seq_len, "seed": seed, "dtype": dtype,
            "selection": selection, "lr": lr, "optimizer": optimizer, "momentum": momentum,
            "hidden": 8, "batch": 4, "clip_threshold": clip_threshold,
            "steps": steps, "status": status or ("finished" if math.isfinite(final)
                                                 else "diverged"),
            "diverged_at": -1 if math.isfinite(final) else 7, "cause": "" if math.isfinite(final)
            else "loss", "test_correct": test_correct, "lyapunov_1": 0.05,
            "final_metric": final * BASE, "initial_metric": initial * BASE if initial else
            np.nan, "baseline": BASE}


def runs_of(rows) -> pd.DataFrame:
    return pd.DataFrame(rows)


def verdict(key: str, runs: pd.DataFrame, training=None) -> claims.Verdict:
    claim = {c.key: c for c in claims.FINDINGS}[key]
    return claim.judge({"runs": runs, "training": training})


def test_learning_claim_counts_seeds_below_ten_percent_of_the_baseline():
    rows = [train_row(seed=s, final=f) for s, f in enumerate((0.05, 0.09, 0.5))]
    v = verdict("irnn-learns-100", runs_of(rows))
    assert v.label == claims.HOLDS and v.value.startswith("2 of 3 seeds")
    rows = [train_row(seed=s, final=f) for s, f in enumerate((0.05, 0.11, 0.5))]
    assert verdict("irnn-learns-100", runs_of(rows)).label == claims.FAILS  # 0.11 is not < 0.1


def test_a_diverged_seed_is_never_averaged_away():
    rows = [train_row(seed=s, final=f) for s, f in enumerate((0.05, 0.02, math.nan))]
    v = verdict("irnn-learns-100", runs_of(rows))
    assert v.label == claims.FAILS and "diverged at update 7" in v.value


def _evals(rows, ends):
    """A training table: per run, a metric (x baseline) flat at ``a`` up to
    update 75 of 100, then falling geometrically to ``b`` by update 100,
    with +-5 % alternating noise; (a, b) per run."""
    frames = []
    for r, (a, b) in zip(rows, ends, strict=True):
        steps = np.arange(1, 101)
        trend = np.where(steps <= 75, a, a * (b / a) ** ((steps - 75) / 25))
        noise = np.where(steps % 2 == 0, 1.05, 0.95)
        frames.append(pd.DataFrame({"run_id": r["run_id"], "step": steps,
                                    "metric": trend * noise * BASE, "loss": 0.0}))
    return pd.concat(frames, ignore_index=True)


def test_runs_still_improving_leave_a_learning_claim_undecided():
    """One seed succeeds; another fell from 0.5 to 0.3 x the baseline over the
    last quarter: with more updates it could make the 2 of 3, so undecided."""
    rows = [train_row(seed=s, final=f) for s, f in enumerate((0.05, 0.3, 0.9))]
    improving = _evals(rows, [(0.1, 0.05), (0.5, 0.3), (0.9, 0.9)])
    v = verdict("irnn-learns-100", runs_of(rows), improving)
    assert v.label == claims.UNDECIDED and "1 of 3 seeds still improving" in v.undecided
    # noise of +-5 % around a flat line, or a fall of 5 %, is not progress
    flat = _evals(rows, [(0.1, 0.05), (0.3, 0.3), (0.9, 0.9)])
    assert verdict("irnn-learns-100", runs_of(rows), flat).label == claims.FAILS
    slight = _evals(rows, [(0.1, 0.05), (0.32, 0.3), (0.9, 0.9)])
    assert verdict("irnn-learns-100", runs_of(rows), slight).label == claims.FAILS
    # improving or not, a diverged seed decides
    rows[2] = train_row(seed=2, final=math.nan)
    assert verdict("irnn-learns-100", runs_of(rows), improving).label == claims.FAILS


def test_too_few_seeds_leave_a_claim_undecided():
    rows = [train_row(seed=s, final=0.01) for s in range(2)]
    v = verdict("irnn-learns-100", runs_of(rows))
    assert v.label == claims.UNDECIDED and "too few seeds" in v.undecided


@pytest.mark.parametrize("task", [t for t in vocab.TASKS if tasks.TOLERANCES[t] is None])
def test_claims_count_success_as_the_task_defines_it(task):
    """One success threshold (gradpath.tasks): the claims count a run as a
    success exactly when its task does (Task.success, the criterion training
    records), for every task without a per-sequence criterion (that one:
    test_hochreiter_schmidhuber_count_every_test_sequence); the claims'
    adding-problem share is the task's."""
    t = tasks.make_task(task, 10)
    base = t.baseline()
    ratios = (0.05, 0.099, 0.101, 0.2, 0.249, 0.251, 0.5)
    runs = runs_of([{**train_row(task=task, seed=i), "final_metric": r * base, "baseline": base}
                    for i, r in enumerate(ratios)])
    assert list(claims.successes(runs)) == [t.success(r * base) for r in ratios]
    assert claims.SUCCESS_FRACTION == tasks.make_task("adding", 10).success_fraction == 0.1
    # teeth: the short-memory sine task succeeds below 25 % of its baseline, not 10 %
    assert (task == "sine") == bool(claims.successes(runs.iloc[[3]]).iloc[0])


def test_not_learning_claim_holds_only_with_no_success_and_no_progress():
    rows = [train_row("rnn-tanh", "gaussian", 200, s, f) for s, f in enumerate((1.0, 0.98, 1.1))]
    assert verdict("tanh-fails-200", runs_of(rows)).label == claims.HOLDS
    falling = _evals(rows, [(1.0, 1.0), (1.3, 0.98), (1.1, 1.1)])
    assert verdict("tanh-fails-200", runs_of(rows), falling).label == claims.UNDECIDED
    rows[1] = train_row("rnn-tanh", "gaussian", 200, 1, 0.05)
    assert verdict("tanh-fails-200", runs_of(rows)).label == claims.FAILS


def test_claims_without_their_runs_are_not_applicable():
    v = verdict("lstm-learns-200", runs_of([train_row()]))
    assert v.holds is None and v.label.startswith("n/a")


def test_the_sweep_selected_runs_stand_for_a_configuration():
    """Fixed-rate twins of a configuration (a precision check) are not counted
    when the configuration also has sweep-selected runs."""
    rows = [train_row(seed=s, final=0.01) for s in range(3)]
    rows += [train_row(seed=s, final=0.9, selection="", dtype=d, lr=0.3)
             for s in range(3) for d in ("float32", "float64")]
    v = verdict("irnn-learns-100", runs_of(rows))
    assert v.value.startswith("3 of 3 seeds")
    # fixed-rate runs only, in both precisions: each seed counts once (float32's)
    only_fixed = runs_of([r for r in rows if r["selection"] == ""])
    assert verdict("irnn-learns-100", only_fixed).value.startswith("0 of 3 seeds")


def test_exploding_claim_counts_divergence_of_plain_sgd_by_clip_mode():
    def rows(none_final, norm_final, momentum=0.0):
        return runs_of([train_row(gain=2.0, init="gaussian", clip=c, seed=s, final=f,
                                  selection="", optimizer="sgd", momentum=momentum)
                        for s in range(3)
                        for c, f in (("none", none_final[s]), ("norm", norm_final[s]))])
    nan = math.nan
    v = verdict("clipping", rows([nan, nan, 2.0], [3.0, 1.0, 0.5]))
    assert v.label == claims.HOLDS and "overflowing" in v.detail
    assert verdict("clipping", rows([nan, 2.0, 2.0], [3, 1, 0.5])).label == claims.FAILS
    assert verdict("clipping", rows([nan, nan, nan], [3, nan, 0.5])).label == claims.FAILS
    # SGD with momentum is not the plain SGD the claim is about
    assert verdict("clipping", rows([nan, nan, nan], [3, 1, 0.5], 0.9)).holds is None


def test_precision_pairs_differ_in_the_precision_alone():
    """A float32 run of the same configuration but another initialisation (a
    sweep-selected twin with small input weights) is not the float64 run's pair."""
    rows = [train_row(seed=s, dtype=d, selection="", final=0.05)
            for s in range(2) for d in ("float32", "float64")]
    rows += [{**train_row(seed=s, dtype="float32", final=0.05), "w_ih_std": 0.1}
             for s in range(2)]
    runs = runs_of(rows)
    steps = np.arange(1, claims.PRECISION_STEPS + 1)
    training = pd.concat([pd.DataFrame({"run_id": r["run_id"], "step": steps,
                                        "loss": 1.0 / steps * (3 if r.get("w_ih_std") else 1)})
                          for r in rows])
    assert verdict("float32", runs, training).label == claims.HOLDS


def test_precision_claim_compares_early_training_loss_run_for_run():
    rows = [train_row(seed=s, dtype=d, selection="", final=0.05)
            for s in range(2) for d in ("float32", "float64")]
    runs = runs_of(rows)
    steps = np.arange(1, claims.PRECISION_STEPS + 1)
    frames = []
    for r in rows:
        loss = 1.0 / steps * (1 + (1e-5 if r["dtype"] == "float32" else 0))
        frames.append(pd.DataFrame({"run_id": r["run_id"], "step": steps, "loss": loss}))
    training = pd.concat(frames)
    assert verdict("float32", runs, training).holds
    far = training.assign(loss=np.where(training["run_id"].str.contains("float32"),
                                        training["loss"] * 1.01, training["loss"]))
    assert not verdict("float32", runs, far).holds


# -- the learning-rate sweep ------------------------------------------------------------
BLOCK = dict(tasks=["adding"], models=["rnn-relu"], inits=["identity"], clips=["norm"],
             seq_lens=[10, 20], steps=[40, 80], seeds=[0, 1, 2], gain=1.0, clip_threshold=1.0,
             optimizer="adam", lr=0.01, lrs=[1e-3, 1e-2], selection_seeds=[100],
             sweep_fraction=0.5, hidden=8, batch=4, eval_every=10, eval_batches=1,
             ragged=False, dtype="float32")


def test_a_sweep_expands_into_selection_runs_and_reported_runs():
    runs = grid.train_runs([BLOCK])
    sweep = [r for r in runs if r.config["stage"] == grid.SWEEP]
    reported = [r for r in runs if r.config["stage"] == grid.REPORT]
    assert len(sweep) == 2 * 2 * 1 and len(reported) == 2 * 3
    assert {r.config["seed"] for r in sweep} == {100}
    assert {r.config["steps"] for r in sweep} == {20, 40}  # half of each length's budget
    assert all(r.config["lr"] is None for r in reported)
    assert {r.config["steps"] for r in reported} == {40, 80}
    keys = {r.config["selection"] for r in sweep}
    assert keys == {r.config["selection"] for r in reported} and len(keys) == 2
    assert len({r.run_id for r in runs}) == len(runs)


def test_one_rate_means_no_sweep():
    runs = grid.train_runs([{**BLOCK, "lrs": [], "lr": 0.01}])
    assert len(runs) == 6 and all(r.config["lr"] == 0.01 for r in runs)
    assert all(r.config["stage"] == grid.REPORT and r.config["selection"] == "" for r in runs)


@pytest.mark.parametrize(("change", "key"), [({"selection_seeds": [0]}, "selection_seeds"),
                                             ({"steps": [40]}, "steps")])
def test_bad_sweep_settings_name_the_key(change, key):
    with pytest.raises(ValueError, match=key):
        grid.train_runs([{**BLOCK, **change}])


def test_selection_takes_the_lowest_mean_metric_and_counts_divergence_as_worst():
    rows = [train_row(stage="sweep", selection="a", lr=lr, seed=s, final=f)
            for lr, fs in ((1e-3, (0.5, 0.3)), (1e-2, (0.1, 0.2)), (1e-1, (0.01, math.nan)))
            for s, f in enumerate(fs)]
    rows += [train_row(stage="sweep", selection="b", lr=lr, final=0.2) for lr in (1e-2, 1e-3)]
    rates = grid.select_settings(runs_of(rows))
    assert rates == {"a": {"lr": 1e-2, "clip_threshold": 1.0},
                     "b": {"lr": 1e-3, "clip_threshold": 1.0}}  # ties: the smaller rate
    table = grid.sweep_table(runs_of(rows), rates)
    assert table["selected"].sum() == 2
    assert int(table[(table["selection"] == "a") & (table["lr"] == 1e-1)]["diverged"].iloc[0]) == 1


def test_a_reported_run_without_its_selected_rate_is_a_clear_error(tmp_path):
    run = [r for r in grid.train_runs([BLOCK]) if r.config["lr"] is None][0]
    with pytest.raises(ValueError, match="no selected setting"):
        grid.execute(run, tmp_path, rates={})


# -- reproductions that need no runs ------------------------------------------------------
def test_cliff_gradient_is_exact():
    w, b, h = 4.3, -2.2, 1e-6
    loss, gw, gb = cliff.loss_and_grad(w, b)
    fd_w = (cliff.loss_and_grad(w + h, b)[0] - cliff.loss_and_grad(w - h, b)[0]) / (2 * h)
    fd_b = (cliff.loss_and_grad(w, b + h)[0] - cliff.loss_and_grad(w, b - h)[0]) / (2 * h)
    assert gw == pytest.approx(fd_w, rel=1e-6) and gb == pytest.approx(fd_b, rel=1e-6)


def test_the_cliff_reproduction_holds():
    claim = {c.key: c for c in claims.REPRODUCTIONS}["pascanu-cliff"]
    v = claim.judge({"runs": runs_of([train_row()])})
    assert v.holds, v.value


def test_reproductions_table_has_the_paper_budget_and_protocol_columns():
    table = claims.reproductions({"runs": runs_of([train_row()]), "curves": None})
    assert {"kind", "claim", "source", "paper", "value", "verdict", "budget",
            "protocol_paper", "protocol_gradpath", "deviations"} <= set(table.columns)
    assert len(table) >= len(claims.REPRODUCTIONS)
    assert set(table["kind"]) <= set(claims.KINDS)
    assert set(table["verdict"]) <= {claims.HOLDS, claims.FAILS, claims.UNDECIDED,
                                     claims.NOT_APPLICABLE}
    hs97 = table[table["claim"].str.contains("Hochreiter")]
    assert hs97["budget"].str.contains("paper: 209,000 training sequences").all()
    bound = table[table["claim"].str.contains("vanishing bound")]
    assert (bound["kind"] == "code check").all() and bound["claim"].str.startswith(
        "[code check]").all()


def _le_runs(T, irnn, lstm=(0.01,) * 3, tanh=(1.0,) * 3, steps=100):
    rows = [train_row("rnn-relu", "identity", T, s, f, steps=steps) for s, f in enumerate(irnn)]
    rows += [train_row("lstm", "orthogonal", T, s, f, steps=steps) for s, f in enumerate(lstm)]
    rows += [train_row("rnn-tanh", "gaussian", T, s, f, steps=steps) for s, f in enumerate(tanh)]
    return {"runs": runs_of(rows)}


def test_le_claim_needs_both_remedies_to_learn_and_tanh_not_to():
    claim = {c.key: c for c in claims.REPRODUCTIONS}["le-300"]
    assert claim.judge(_le_runs(300, (0.02, 0.6, 0.03))).label == claims.HOLDS
    v = claim.judge(_le_runs(300, (math.nan, math.nan, 0.03)))
    assert v.label == claims.FAILS and "IRNN: 1 of 3 seeds" in v.value
    assert claim.judge(_le_runs(300, (0.02, 0.03, 0.01), tanh=(1, 0.05, 1))).label \
        == claims.FAILS


def test_le_rows_show_the_grid_with_its_divergences():
    claim = {c.key: c for c in claims.REPRODUCTIONS}["le-300"]
    tables = _le_runs(300, (0.02, 0.6, 0.03))
    sweep = [train_row("rnn-relu", "identity", 300, 1000, f, stage="sweep", lr=lr,
                       clip_threshold=thr) for lr, thr, f in ((0.01, 1.0, 0.9),
                                                              (0.1, 100.0, math.nan))]
    tables["runs"] = pd.concat([tables["runs"], runs_of(sweep)], ignore_index=True)
    detail = claim.judge(tables).detail
    assert "IRNN grid (1000): lr 0.01 / clip 1: 0 of 1 diverged, 0.9" in detail
    assert "lr 0.1 / clip 100: 1 of 1 diverged, -" in detail


def test_a_budget_below_the_papers_onset_of_learning_is_undecided_not_a_failure():
    """Le et al.'s IRNN starts learning after about 10^6 updates: flat runs at 100
    updates do not refute it; at a budget past the onset they do."""
    claim = {c.key: c for c in claims.REPRODUCTIONS}["le-150"]
    v = claim.judge(_le_runs(150, (0.9, 1.0, 0.95), lstm=(0.9, 1.0, 1.1)))
    assert v.label == claims.UNDECIDED and "1,000,000" in v.undecided
    past = claim.judge(_le_runs(150, (0.9, 1.0, 0.95), steps=claims.LE_ONSET))
    assert past.label == claims.FAILS


def _copy_runs(T, tanh, lstm, exprnn=(0.01, 0.02, 0.5)):
    base = 10 * math.log(8) / (T + 20)
    rows = [{**train_row(m, "gaussian" if m != "exprnn" else "orthogonal", T, s, f,
                         task="copy", selection=""), "baseline": base,
             "final_metric": f * base}
            for m, fs in (("rnn-tanh", tanh), ("lstm", lstm), ("exprnn", exprnn))
            for s, f in enumerate(fs)]
    return {"runs": runs_of(rows)}


def test_copy_claims_follow_the_paper_at_each_length():
    """Arjovsky et al.: at T = 100 the LSTM leaves the baseline and the tanh RNN
    stays; at T = 200 both stay. The positive control must solve it."""
    by = {c.key: c for c in claims.REPRODUCTIONS}
    assert by["copy-100"].judge(_copy_runs(100, (1.0, 0.99, 1.0), (0.75, 0.8, 0.7))).holds
    assert not by["copy-100"].judge(_copy_runs(100, (1.0, 0.99, 1.0), (1.0, 1.0, 0.7))).holds
    assert by["copy-200"].judge(_copy_runs(200, (1.0, 0.99, 1.0), (1.0, 0.95, 1.0))).holds
    assert not by["copy-200"].judge(_copy_runs(200, (1.0, 0.99, 1.0), (0.5, 0.6, 1))).holds
    assert by["copy-control-100"].judge(_copy_runs(100, (1, 1, 1), (1, 1, 1))).holds
    v = by["copy-control-100"].judge(_copy_runs(100, (1, 1, 1), (1, 1, 1), (0.5, 0.6, 0.01)))
    assert v.label == claims.FAILS


def test_hochreiter_schmidhuber_count_every_test_sequence():
    """Their criterion: every sequence of the test set within 0.04; a low MSE
    with a few wrong sequences is not a success."""
    claim = {c.key: c for c in claims.REPRODUCTIONS}["hs97-500"]
    rows = [train_row("lstm", "orthogonal", 500, s, 0.01, task="adding-hs", test_correct=c)
            for s, c in enumerate((1.0, 1.0, 0.999))]
    v = claim.judge({"runs": runs_of(rows)})
    assert v.label == claims.HOLDS and "99.9% correct" in v.value
    rows[1] = {**rows[1], "test_correct": 0.998}
    assert claim.judge({"runs": runs_of(rows)}).label == claims.FAILS


def test_pascanu_clipping_compares_success_rates_and_is_undecided_without_any():
    claim = {c.key: c for c in claims.REPRODUCTIONS}["pascanu-clipping"]

    def runs(none_ok, norm_ok, seeds=10):
        return {"runs": runs_of([
            train_row("rnn-tanh", "gaussian", T, s, 0.05 if s < k else 1.0, clip=c,
                      gain=claims.PASCANU_GAIN, lr=claims.PASCANU_LR, selection="",
                      optimizer="sgd")
            for T in claims.PASCANU_LENGTHS for c, k in (("none", none_ok), ("norm", norm_ok))
            for s in range(seeds)])}
    assert claim.judge(runs(2, 7)).label == claims.HOLDS
    assert claim.judge(runs(7, 2)).label == claims.FAILS
    v = claim.judge(runs(0, 0))
    assert v.label == claims.UNDECIDED and "no seed of either arm" in v.undecided
    assert "too few seeds" in claim.judge(runs(2, 7, seeds=5)).undecided


def _probe_row(model, init, gain, lam, slope, chi, hidden=512):
    return {"run_id": f"{model}-{init}-{gain}", "kind": "probe", "model": model,
            "cell": vocab.MODELS[model].cell, "activation": vocab.MODELS[model].activation,
            "init": init, "gain": gain, "hidden": hidden, "lyapunov_1": lam,
            "decay_rate": slope, "theory_slope": chi, "seq_len": 200, "input_std": 1.0}


def test_three_rates_and_chaos_rows_judge_the_probes():
    by = {c.key: c for c in claims.REPRODUCTIONS}
    ok = runs_of([_probe_row("rnn-tanh", "gaussian", 0.5, -0.8, -0.81, -0.8),
                  _probe_row("rnn-tanh", "orthogonal", 2.0, 0.2, 0.21, 0.19)])
    assert by["three-rates"].judge({"runs": ok}).label == claims.HOLDS
    assert by["chaos-gradients"].judge({"runs": ok}).label == claims.HOLDS
    off = runs_of([_probe_row("rnn-tanh", "gaussian", 0.5, -0.8, -0.7, -0.8),
                   _probe_row("rnn-tanh", "orthogonal", 2.0, 0.2, -0.01, 0.19)])
    assert by["three-rates"].judge({"runs": off}).label == claims.FAILS
    assert by["chaos-gradients"].judge({"runs": off}).label == claims.FAILS


# -- the protocols, held to the paper study's configuration --------------------------------
def _planned(config: str) -> pd.DataFrame:
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "configs" / config).read_text())
    validate(cfg, str(root / "configs" / "schema.yaml"))
    return grid.planned_table(grid.train_runs(cfg["train"]))


PAPER_STUDIES = ("paper.yaml", "paper-full.yaml")


@pytest.mark.parametrize("config", PAPER_STUDIES)
def test_every_difference_from_the_paper_is_stated(config):
    """Every field of a paper study's runs that differs from the paper's
    protocol has a deviation in words (none shows as UNSTATED)."""
    table = _planned(config)
    for claim in (c for c in claims.REPRODUCTIONS if c.protocol):
        ours = claims.describe(claim.protocol.select(table), claim.protocol.criterion)
        dev = claims.deviations(claim.protocol, ours)
        unstated = [f for f, text in dev.items() if text == claims.UNSTATED]
        assert not unstated, (f"{config} {claim.key}: unstated differences in {unstated}: "
                              + "; ".join(f"{f}: ours {ours[f]!r}, paper "
                                          f"{claim.protocol.paper[f]!r}" for f in unstated))
        assert set(claim.protocol.deviations) <= set(claims.PROTOCOL_FIELDS)


def test_every_protocol_reproduction_runs_in_a_paper_study():
    tables = [_planned(c) for c in PAPER_STUDIES]
    for claim in (c for c in claims.REPRODUCTIONS if c.protocol):
        assert any(not claim.protocol.select(t).empty for t in tables), claim.key


def test_a_deviation_is_shown_only_where_the_sides_differ():
    claim = {c.key: c for c in claims.REPRODUCTIONS}["le-150"]
    same = dict(claim.protocol.paper)
    assert claims.deviations(claim.protocol, same) == {}
    other = {**same, "hidden": "64"}
    assert claims.deviations(claim.protocol, other) == {"hidden": claims.UNSTATED}


def test_the_protocol_reads_the_runs_recorded_settings():
    """gradpath's side comes from what runs record (w_ih_std, forget_bias,
    momentum, the sweep's grid), so it cannot drift from them."""
    rows = [train_row("lstm", "orthogonal", 150, s, 0.5, optimizer="sgd", steps=200,
                      selection="k") for s in range(3)]
    rows += [train_row("lstm", "orthogonal", 150, 1000, 0.5, optimizer="sgd", stage="sweep",
                       lr=lr, clip_threshold=thr, steps=50, selection="k")
             for lr in (0.01, 0.1) for thr in (1.0, 100.0)]
    runs = runs_of(rows).assign(w_ih_std=0.001, w_out_std=0.002, forget_bias=4.0,
                                lr_orth=math.nan)
    d = claims.describe(runs, "c")
    assert d["optimizer"] == "SGD, momentum 0"
    assert d["lr"] == "grid {0.01, 0.1}, chosen on seed 1000 (25% of the updates)"
    assert d["clip"] == "global norm, grid {1, 100}"
    assert d["init"] == ("W_hh = Q, Q orthogonal, W_ih ~ N(0, 0.001^2), W_out ~ N(0, 0.002^2), "
                         "b = 0 but forget gate 4")
    assert d["budget"] == "200 updates x 4 = 800 sequences"
    assert d["seeds"] == "3 seeds per configuration"
