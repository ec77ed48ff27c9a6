"""Training: optimisers, clipping records, divergence as a result, determinism,
the adding-problem contrast of the lecture (docs/theory.md, sections 1, 2, 5, 6)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from gradpath.results import WALL_TIME_COLUMNS, train_tables, write_run
from gradpath.tasks import Copy
from gradpath.train import SGD, Adam, RMSProp, TrainConfig, make_optimizer, train

RECORD_FIELDS = ("step", "loss", "metric", "grad_norm_before", "grad_norm_after", "clipped")


def _tables_without_wall_time(res):
    return {k: v.drop(columns=[c for c in WALL_TIME_COLUMNS if c in v.columns])
            for k, v in train_tables(res).items()}


# -- the lecture's contrast on the adding problem -------------------------------------
#: Same budget for both: 500 Adam updates (lr 5e-3, batch 32, H = 32), norm-clipped
#: at 1. On seeds 0-4 the IRNN is below 0.3x the baseline from update 400 on, and the
#: tanh+gaussian RNN stays within 0.8-1.1x of it up to 800 updates.
ADDING = dict(task="adding", seq_len=50, hidden=32, batch=32, optimizer="adam", lr=5e-3,
              clip="norm", clip_threshold=1.0, steps=500, eval_every=100, eval_batches=8)
SEEDS = (0, 1, 2)


@pytest.mark.slow
def test_irnn_beats_the_adding_baseline_and_tanh_gaussian_does_not():
    """A metric below 0.5x the baseline needs the first marked value: Var(X1) is
    1/12 = half of Var(X1 + X2), the best any model blind to the first half can do."""
    irnn = [train(TrainConfig(**ADDING, activation="relu", init="identity", gain=1.0, seed=s))
            for s in SEEDS]
    tanh = [train(TrainConfig(**ADDING, activation="tanh", init="gaussian", gain=1.0, seed=s))
            for s in SEEDS]
    for r in irnn + tanh:
        assert r.status == "finished"
        assert r.baseline == pytest.approx(1 / 6)
    irnn_ratio = np.array([r.final_metric / r.baseline for r in irnn])
    tanh_ratio = np.array([r.final_metric / r.baseline for r in tanh])
    # every seed uses the first marked value (below 0.5, see above), and clearly so
    # on average; one seed's exact figure moves with last-bit rounding (Adam over
    # 500 steps is chaotic), so no single seed is held to the 0.3
    assert (irnn_ratio < 0.5).all(), irnn_ratio
    assert irnn_ratio.mean() < 0.3, irnn_ratio
    assert (tanh_ratio > 0.5).all(), tanh_ratio  # no long memory
    assert tanh_ratio.mean() > 0.8, tanh_ratio  # near the baseline
    # the reason, at initialisation: the IRNN's gradient holds, tanh+gaussian's vanishes
    assert min(r.decay_rate_init for r in irnn) > -0.05
    assert max(r.decay_rate_init for r in tanh) < -0.15


# -- divergence -----------------------------------------------------------------------------
EXPLODING = dict(task="adding", seq_len=50, hidden=32, batch=32, activation="relu",
                 init="gaussian", gain=3.0, optimizer="sgd", lr=0.01, steps=100,
                 eval_every=50)


@pytest.fixture(scope="module")
def diverged():
    return train(TrainConfig(**EXPLODING, clip="none"))


def test_relu_gain_3_without_clipping_diverges_without_an_exception(diverged):
    r = diverged
    assert r.status == "diverged"
    assert isinstance(r.diverged_at, int) and 1 <= r.diverged_at <= r.config.steps
    assert r.cause in ("loss", "gradient", "parameters")
    n = len(r.records["step"])
    assert n == r.diverged_at  # every update up to and including the diverging one
    assert r.records["step"] == list(range(1, n + 1))
    last = [r.records[k][-1] for k in ("loss", "grad_norm_before")]
    assert not all(math.isfinite(v) for v in last)  # the diverging step's values are kept
    for k in ("loss", "grad_norm_before"):
        assert all(math.isfinite(v) for v in r.records[k][:-1])
    assert math.isnan(r.final_metric) and r.success is False
    assert r.curves[0]["phase"] == "init"


def test_a_diverged_run_is_written_in_full(diverged, tmp_path):
    t = train_tables(diverged)
    row = t["runs"].iloc[0]
    assert row["status"] == "diverged" and row["diverged_at"] == diverged.diverged_at
    assert row["cause"] == diverged.cause
    assert len(t["training"]) == diverged.diverged_at
    assert not math.isfinite(t["training"]["loss"].iloc[-1]) or not math.isfinite(
        t["training"]["grad_norm_before"].iloc[-1])
    path = write_run(tmp_path, t)
    assert path.exists()


@pytest.mark.parametrize("clip, threshold", [("norm", 1.0), ("value", 0.1)])
def test_clipping_turns_the_diverging_run_into_a_finishing_one(clip, threshold):
    r = train(TrainConfig(**EXPLODING, clip=clip, clip_threshold=threshold))
    assert r.status == "finished" and r.diverged_at is None and r.cause is None
    assert len(r.records["step"]) == r.config.steps
    assert all(math.isfinite(v) for v in r.records["loss"])
    assert r.records["grad_norm_before"][0] > 1e10  # the same exploding start
    assert math.isfinite(r.final_metric)


def test_an_overflowing_update_is_divergence_of_the_parameters():
    """A finite gradient of 1e33 times lr 1e300 overflows the parameters in the first
    update: status diverged at step 1, cause "parameters", the record kept."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = train(TrainConfig(**{**EXPLODING, "lr": 1e300}, clip="none"))
    assert (r.status, r.diverged_at, r.cause) == ("diverged", 1, "parameters")
    assert r.records["step"] == [1]
    assert math.isfinite(r.records["loss"][0]) and r.records["grad_norm_before"][0] > 1e10
    assert math.isnan(r.final_metric)


# -- records ---------------------------------------------------------------------------------
RECORDS = dict(task="adding", seq_len=20, hidden=16, batch=8, steps=40, eval_every=15,
               eval_batches=2, optimizer="sgd", lr=0.05)


@pytest.mark.parametrize("clip, threshold", [("none", 1.0), ("norm", 1.0), ("value", 0.3)])
def test_records_have_every_field_and_clipping_is_consistent(clip, threshold):
    r = train(TrainConfig(**RECORDS, clip=clip, clip_threshold=threshold))
    assert r.status == "finished"
    assert set(r.records) == set(RECORD_FIELDS)
    n = r.config.steps
    assert all(len(r.records[k]) == n for k in RECORD_FIELDS)
    assert r.records["step"] == list(range(1, n + 1))
    before = np.array(r.records["grad_norm_before"])
    after = np.array(r.records["grad_norm_after"])
    clipped = np.array(r.records["clipped"])
    assert clipped.dtype == bool
    np.testing.assert_allclose(r.records["metric"], 2 * np.array(r.records["loss"]))
    assert r.clipped_fraction == clipped.mean()
    if clip == "none":
        assert not clipped.any()
        np.testing.assert_array_equal(before, after)
    elif clip == "norm":
        np.testing.assert_array_equal(clipped, before >= threshold)
        np.testing.assert_allclose(after[clipped], threshold, rtol=1e-12)
        np.testing.assert_array_equal(after[~clipped], before[~clipped])
    else:
        assert (after <= before).all()
        np.testing.assert_array_equal(after[~clipped], before[~clipped])
        assert (after[clipped] < before[clipped]).all()
    assert 0 < r.clipped_fraction < 1 or clip == "none"  # thresholds chosen to bite sometimes


def test_evaluations_curves_and_success():
    r = train(TrainConfig(**RECORDS, clip="norm"))
    assert r.evals["step"] == [15, 30, 40]
    assert len(r.evals["eval_metric"]) == 3 and r.final_metric == r.evals["eval_metric"][-1]
    for m, ok in zip(r.evals["eval_metric"], r.evals["success"], strict=True):
        assert ok == (m < 0.1 * r.baseline)
    assert r.success == r.evals["success"][-1]
    assert [(c["phase"], c["step"]) for c in r.curves] == [
        ("init", 0), ("checkpoint", 15), ("checkpoint", 30), ("final", 40)]
    for c in r.curves:
        assert c["log10_grad_norm"].shape == (20,)
        assert np.isfinite(c["log10_grad_norm"]).all()
        assert c["log10_cell_grad_norm"] is None
    assert math.isfinite(r.decay_rate_init) and math.isfinite(r.lyapunov_init)


def test_lstm_training_records_the_cell_curve():
    r = train(TrainConfig(task="copy", seq_len=8, cell="lstm", hidden=8, batch=4, steps=6,
                          eval_every=3, eval_batches=1))
    assert r.status == "finished" and r.config.activation == "tanh"
    for c in r.curves:
        assert c["log10_grad_norm"].shape == (28,) == c["log10_cell_grad_norm"].shape
    assert math.isfinite(r.lyapunov_init)


def test_gru_learns_the_adding_problem_and_has_no_cell_curve():
    """A GRU trains end to end (b_hn included in the updates): it beats the
    adding problem's baseline at T = 30, like the lecture's gated remedy."""
    r = train(TrainConfig(task="adding", seq_len=30, cell="gru", hidden=32, batch=32,
                          steps=300, eval_every=100, eval_batches=2, optimizer="adam",
                          lr=3e-3, dtype="float64"))
    assert r.status == "finished" and r.config.activation == "tanh"
    assert r.final_metric < 0.2 * r.baseline
    for c in r.curves:
        assert c["log10_cell_grad_norm"] is None
        assert np.isfinite(c["log10_grad_norm"]).all()
    assert math.isfinite(r.lyapunov_init) and math.isfinite(r.decay_rate_init)


def test_ragged_copy_baseline_is_that_of_the_held_out_lengths():
    """In ragged mode copy's memoryless metric depends on the lengths: the run's
    baseline is what the memoryless predictor scores on the held-out batches."""
    c = TrainConfig(task="copy", seq_len=30, ragged=True, hidden=8, batch=16, steps=2,
                    eval_every=2, eval_batches=3)
    r = train(c)
    task = Copy(30, ragged=True)
    per_batch = []
    for i in range(c.eval_batches):
        b = task.batch(c.batch, c.seed, i, held_out=True)
        # the memoryless predictor: ln 8 at each sequence's last 10 steps, 0 elsewhere
        per_batch.append(10 * math.log(8) * c.batch / b.lengths.sum())
    assert r.baseline == pytest.approx(np.mean(per_batch), rel=1e-12)
    assert r.baseline > Copy(30).baseline()  # shorter sequences than full length


# -- determinism --------------------------------------------------------------------------
@pytest.mark.parametrize("cell, task", [("rnn", "adding"), ("lstm", "sine"), ("gru", "copy")])
def test_same_config_and_seed_give_identical_tables(cell, task):
    cfg = TrainConfig(task=task, cell=cell, seq_len=15, hidden=8, batch=4, steps=20,
                      eval_every=7, eval_batches=2, ragged=True)
    a, b = _tables_without_wall_time(train(cfg)), _tables_without_wall_time(train(cfg))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    c = _tables_without_wall_time(train(dataclasses.replace(cfg, seed=1)))
    assert not c["training"]["loss"].equals(a["training"]["loss"])


# -- optimisers ------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.03), ("rmsprop", 3e-3), ("adam", 1e-2)])
def test_each_optimizer_learns_the_sine_task(optimizer, lr):
    r = train(TrainConfig(task="sine", seq_len=20, hidden=16, batch=16, optimizer=optimizer,
                          lr=lr, clip="none", steps=150, eval_every=150))
    loss = np.array(r.records["loss"])
    assert r.status == "finished"
    assert loss[-20:].mean() < 0.5 * loss[:5].mean()
    assert r.final_metric < r.baseline  # better than repeating the last value


def test_optimizer_update_rules():
    g = {"w": np.array([2.0, -0.5])}
    p = {"w": np.array([1.0, 1.0])}
    sgd = SGD({k: v.copy() for k, v in p.items()}, lr=0.1, momentum=0.9)
    q = {k: v.copy() for k, v in p.items()}
    sgd.step(q, g)
    np.testing.assert_allclose(q["w"], [0.8, 1.05])  # v = -lr g
    sgd.step(q, g)
    np.testing.assert_allclose(q["w"], [0.8 - 0.38, 1.05 + 0.095])  # v = 0.9 v - lr g
    q = {k: v.copy() for k, v in p.items()}
    RMSProp(q, lr=0.01).step(q, g)  # s = 0.1 g^2: a step of lr / sqrt(0.1) along -sign(g)
    np.testing.assert_allclose(q["w"], 1.0 - 0.01 * np.sign(g["w"]) / math.sqrt(0.1),
                               rtol=1e-6)
    q = {k: v.copy() for k, v in p.items()}
    adam = Adam(q, lr=0.01)
    adam.step(q, g)  # bias-corrected: the first step is lr along -sign(g)
    np.testing.assert_allclose(q["w"], 1.0 - 0.01 * np.sign(g["w"]), rtol=1e-6)
    assert adam.t == 1
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("lbfgs", p, 0.1)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_optimizer_step_says_whether_the_parameters_stay_finite(name, dtype):
    """step() returns False as soon as one entry of one parameter overflows (the
    pass that updates them checks it), True otherwise."""
    p = {"a": np.ones((3, 2), dtype), "b": np.ones(4, dtype)}
    g = {"a": np.full((3, 2), 0.5, dtype), "b": np.full(4, 0.5, dtype)}
    opt = make_optimizer(name, p, 1e-3)
    assert opt.step(p, g) is True
    assert all(np.isfinite(v).all() for v in p.values())
    big = np.finfo(dtype).max
    p = {"a": np.ones((3, 2), dtype), "b": np.ones(4, dtype)}
    p["b"][2] = -big
    g = {"a": np.full((3, 2), 0.5, dtype), "b": np.full(4, 0.5, dtype)}
    # a step of lr / 2 (SGD), lr (Adam) or lr / sqrt(0.1) (RMSProp) along -sign(g):
    # finite from 1, beyond the range from -big
    opt = make_optimizer(name, p, float(big) / 8)
    with np.errstate(over="ignore", invalid="ignore"):
        assert opt.step(p, g) is False
    assert not np.isfinite(p["b"][2]) and np.isfinite(p["b"][:2]).all()


# -- bad configurations -------------------------------------------------------------------------
@pytest.mark.parametrize("kw, name", [
    ({"task": "parity"}, "task"),
    ({"cell": "transformer"}, "cell"),
    ({"activation": "sigmoid"}, "activation"),
    ({"init": "xavier"}, "init"),
    ({"clip": "global"}, "clip"),
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"seq_len": 1}, "seq_len"),
    ({"hidden": 0}, "hidden"),
    ({"batch": 2.5}, "batch"),
    ({"steps": True}, "steps"),
    ({"eval_every": 0}, "eval_every"),
    ({"eval_batches": -1}, "eval_batches"),
    ({"seed": -1}, "seed"),
    ({"gain": -0.5}, "gain"),
    ({"gain": math.nan}, "gain"),
    ({"lr": 0.0}, "lr"),
    ({"lr": math.inf}, "lr"),
    ({"momentum": 1.0}, "momentum"),
    ({"clip": "norm", "clip_threshold": 0.0}, "clip_threshold"),
])
def test_bad_config_values_raise_naming_the_field(kw, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        TrainConfig(**kw)


def test_no_threshold_needed_without_clipping():
    assert TrainConfig(clip="none", clip_threshold=0.0).clip == "none"


def test_float32_training_runs_in_float32_and_tracks_float64():
    """dtype="float32": parameters, optimiser state and batches are float32, and
    the loss curve follows float64 training closely on a short run."""
    from gradpath.train import Trainer

    cfg = TrainConfig(task="adding", seq_len=20, cell="rnn", activation="relu",
                      init="identity", optimizer="adam", lr=1e-3, hidden=16, batch=8,
                      steps=30, eval_every=10, dtype="float32")
    tr = Trainer(cfg)
    assert all(p.dtype == np.float32 for p in tr.params.values())
    assert tr.batch(1).x.dtype == np.float32
    r32 = train(cfg)
    r64 = train(dataclasses.replace(cfg, dtype="float64"))
    assert r32.status == r64.status == "finished"
    # the first updates agree to float32 precision; then Adam's normalised steps
    # let rounding differences grow, but the runs stay together
    np.testing.assert_allclose(r32.records["loss"][:5], r64.records["loss"][:5], rtol=1e-4)
    np.testing.assert_allclose(r32.records["loss"], r64.records["loss"], rtol=2e-2)
    assert abs(r32.final_metric - r64.final_metric) <= 2e-2 * r64.final_metric


def _numpy_step(name, p, g, state, t, lr=1e-2):
    """The optimisers' formulas in plain numpy (in the arrays' precision)."""
    if name == "sgd":
        state["v"] *= 0.9
        state["v"] -= lr * g
        p += state["v"]
    elif name == "rmsprop":
        state["s"] *= 0.9
        state["s"] += (1.0 - 0.9) * g * g
        p -= lr * g / (np.sqrt(state["s"]) + 1e-8)
    else:
        c1, c2 = 1.0 - 0.9**t, 1.0 - 0.999**t
        state["m"] *= 0.9
        state["m"] += (1.0 - 0.9) * g
        state["v"] *= 0.999
        state["v"] += (1.0 - 0.999) * g * g
        p -= lr * (state["m"] / c1) / (np.sqrt(state["v"] / c2) + 1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_compiled_optimisers_equal_the_numpy_formulas(name, dtype):
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((5, 3)).astype(dtype), "b": rng.standard_normal(4)
              .astype(dtype)}
    ref = {k: v.copy() for k, v in params.items()}
    state = {k: {s: np.zeros_like(v) for s in ("v", "s", "m")} for k, v in ref.items()}
    # SGD with heavy-ball momentum 0.9 (the formula's state); plain SGD below
    opt = make_optimizer(name, params, 1e-2, momentum=0.9 if name == "sgd" else 0.0)
    for t in range(1, 4):
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        opt.step(params, grads)
        for k in ref:
            _numpy_step(name, ref[k], grads[k], state[k], t)
    for k in ref:
        assert params[k].dtype == dtype
        rtol = 0 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(params[k], ref[k], rtol=rtol, atol=0)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_a_parameter_group_takes_its_own_rate_and_leaves_the_others_alone(name):
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s) for k, s in (("W", (3, 4)), ("A", (4, 4)), ("b", (4,)))}
    grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    one = {k: v.copy() for k, v in params.items()}
    grouped = {k: v.copy() for k, v in params.items()}
    scaled = {k: v.copy() for k, v in params.items()}
    a, g, s = (make_optimizer(name, one, 1e-2), make_optimizer(name, grouped, 1e-2,
                                                                lrs={"A": 1e-3}),
               make_optimizer(name, scaled, 1e-3))
    for _ in range(3):
        a.step(one, grads)
        g.step(grouped, grads)
        s.step(scaled, grads)
    for k in ("W", "b"):  # the others' updates are the single-group run's, bit for bit
        assert grouped[k].tobytes() == one[k].tobytes()
    assert grouped["A"].tobytes() == scaled["A"].tobytes()  # A's is a run at its own rate
    assert not np.array_equal(grouped["A"], one["A"])
    with pytest.raises(ValueError, match=r"^lrs: no parameter"):
        make_optimizer(name, params, 1e-2, lrs={"Z": 1e-3})


def test_lr_orth_is_refused_for_a_cell_without_a_skew_matrix_and_hashed_only_when_set():
    with pytest.raises(ValueError, match=r"^lr_orth: the rnn cell"):
        TrainConfig(cell="rnn", lr_orth=1e-4)
    with pytest.raises(ValueError, match=r"^lr_orth"):
        TrainConfig(cell="rnn", lr_orth=-1.0)
    c = TrainConfig(cell="rnn")
    assert "lr_orth" not in c.as_dict() and c.lrs() == {}


def test_sgd_is_plain_sgd_unless_a_momentum_is_set():
    """``sgd`` means p -= lr g (Pascanu et al.'s and Le et al.'s SGD): momentum 0
    by default, recorded per run; another optimiser refuses a momentum."""
    assert TrainConfig().momentum == 0.0
    rng = np.random.default_rng(1)
    p = {"W": rng.standard_normal((3, 2))}
    ref = p["W"].copy()
    opt = make_optimizer("sgd", p, 0.1)
    for _ in range(3):
        g = rng.standard_normal((3, 2))
        opt.step(p, {"W": g})
        ref -= 0.1 * g
    np.testing.assert_allclose(p["W"], ref, rtol=1e-15)
    with pytest.raises(ValueError, match="momentum: only SGD"):
        TrainConfig(optimizer="adam", momentum=0.9)


def test_per_weight_init_scales_set_the_draws_and_are_recorded():
    """w_ih_std / w_out_std scale the same draws (Le et al.'s N(0, 0.001^2));
    forget_bias sets the LSTM's forget block; each run records what they
    resolved to, the defaults included."""
    base = dict(task="adding", seq_len=8, cell="lstm", hidden=6, batch=3, steps=2,
                eval_every=1, eval_batches=1)
    small = TrainConfig(**base, w_ih_std=0.001, w_out_std=0.002, forget_bias=4.0)
    default = TrainConfig(**base)
    from gradpath.train import Trainer

    p, q = Trainer(small).params, Trainer(default).params
    np.testing.assert_allclose(p["W_ih"], q["W_ih"] * 0.001 / (1 / np.sqrt(2)), rtol=1e-12)
    np.testing.assert_allclose(p["W_out"], q["W_out"] * 0.002 * np.sqrt(6), rtol=1e-12)
    np.testing.assert_array_equal(p["W_hh"], q["W_hh"])
    assert np.all(p["b"][6:12] == 4.0) and np.all(q["b"][6:12] == 1.0)
    assert small.init_settings() == {"w_ih_std": 0.001, "w_out_std": 0.002, "forget_bias": 4.0}
    got = default.init_settings()
    assert got["w_ih_std"] == pytest.approx(2 ** -0.5) and got["w_out_std"] == pytest.approx(
        6 ** -0.5) and got["forget_bias"] == 1.0
    row = train_tables(train(small))["runs"].iloc[0]
    assert (row["w_ih_std"], row["w_out_std"], row["forget_bias"]) == (0.001, 0.002, 4.0)
    assert "w_ih_std" not in default.as_dict()  # unset: the id of earlier runs holds
    with pytest.raises(ValueError, match="forget_bias: only the LSTM"):
        TrainConfig(**{**base, "cell": "gru"}, forget_bias=2.0)
    with pytest.raises(ValueError, match="w_ih_std"):
        TrainConfig(**base, w_ih_std=0.0)
