"""Tasks: deterministic batches, their format, and each baseline confirmed by
measuring a memoryless predictor on generated data (docs/theory.md, section 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradpath as gp
from gradpath.tasks import TASKS, Adding, Copy, Sine, make_task

LN8 = math.log(8.0)


def _same(a, b) -> bool:
    return (a.x.dtype == b.x.dtype and np.array_equal(a.x, b.x)
            and np.array_equal(a.target, b.target)
            and ((a.lengths is None and b.lengths is None)
                 or np.array_equal(a.lengths, b.lengths)))


# -- determinism ---------------------------------------------------------------
@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("ragged", [False, True])
def test_same_seed_and_index_give_identical_batches(name, ragged):
    a = make_task(name, 30, ragged).batch(8, seed=5, index=3)
    b = make_task(name, 30, ragged).batch(8, seed=5, index=3)  # a fresh task object
    assert _same(a, b)
    c = make_task(name, 30, ragged).batch(8, seed=5, index=3, held_out=True)
    d = make_task(name, 30, ragged).batch(8, seed=5, index=3, held_out=True)
    assert _same(c, d)


@pytest.mark.parametrize("name", TASKS)
def test_index_seed_and_held_out_change_the_batch(name):
    task = make_task(name, 30)
    ref = task.batch(8, seed=5, index=3)
    assert not np.array_equal(ref.x, task.batch(8, seed=5, index=4).x)
    assert not np.array_equal(ref.x, task.batch(8, seed=6, index=3).x)
    assert not np.array_equal(ref.x, task.batch(8, seed=5, index=3, held_out=True).x)


# -- format ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adding_format(dtype):
    T, B = 40, 64
    task = Adding(T)
    assert (task.input_size, task.output_size, task.loss, task.score) == (2, 1, "mse", "last")
    b = task.batch(B, seed=0, index=0, dtype=dtype)
    assert b.x.shape == (T, B, 2) and b.x.dtype == dtype
    assert b.target.shape == (B, 1) and b.target.dtype == dtype
    assert b.lengths is None
    values, markers = b.x[:, :, 0], b.x[:, :, 1]
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert set(np.unique(markers)) <= {0.0, 1.0}
    assert (markers.sum(axis=0) == 2).all()
    for j in range(B):
        first, second = np.flatnonzero(markers[:, j])
        assert first < T // 2 <= second  # one marker in each half
    np.testing.assert_allclose(b.target[:, 0], (values * markers).sum(axis=0), rtol=1e-6)


def test_adding_ragged_markers_lie_inside_each_length():
    T, B = 40, 200
    b = Adding(T, ragged=True).batch(B, seed=1, index=2)
    assert b.lengths.shape == (B,) and b.lengths.dtype == np.int64
    assert b.lengths.min() >= T // 2 and b.lengths.max() <= T
    assert len(np.unique(b.lengths)) > 5  # lengths really vary
    markers = b.x[:, :, 1]
    assert (markers.sum(axis=0) == 2).all()
    for j in range(B):
        n = b.lengths[j]
        first, second = np.flatnonzero(markers[:, j])
        assert first < n // 2 <= second < n
        assert b.target[j, 0] == pytest.approx(b.x[first, j, 0] + b.x[second, j, 0])


def _copy_expected(symbols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Input classes and target of one copy sequence of length n (docs/theory.md, section 5)."""
    inp = np.zeros(n, np.int64)
    tgt = np.zeros(n, np.int64)
    inp[:10] = symbols
    inp[n - 11] = 9  # the delimiter, 10 steps before the end
    tgt[n - 10:] = symbols
    return inp, tgt


def test_copy_format_full_length():
    T, B = 25, 16
    task = Copy(T)
    assert (task.input_size, task.output_size, task.loss, task.score) == (10, 9, "xent", "all")
    b = task.batch(B, seed=0, index=0)
    assert b.x.shape == (T + 20, B, 10) and b.target.shape == (T + 20, B)
    assert np.issubdtype(b.target.dtype, np.integer) and b.lengths is None
    assert (b.x.sum(axis=2) == 1).all()  # one-hot
    inp = b.x.argmax(axis=2)
    for j in range(B):
        symbols = inp[:10, j]
        assert symbols.min() >= 1 and symbols.max() <= 8
        exp_inp, exp_tgt = _copy_expected(symbols, T + 20)
        np.testing.assert_array_equal(inp[:, j], exp_inp)  # T - 1 blanks between
        np.testing.assert_array_equal(b.target[:, j], exp_tgt)


def test_copy_ragged_structure():
    T, B = 30, 64
    b = Copy(T, ragged=True).batch(B, seed=2, index=1)
    assert b.x.shape == (T + 20, B, 10)
    assert b.lengths.min() >= 21 and b.lengths.max() <= T + 20
    assert len(np.unique(b.lengths)) > 5
    inp = b.x.argmax(axis=2)
    for j in range(B):
        n = b.lengths[j]
        exp_inp, exp_tgt = _copy_expected(inp[:10, j], n)
        np.testing.assert_array_equal(inp[:n, j], exp_inp)
        np.testing.assert_array_equal(b.target[:n, j], exp_tgt)


@pytest.mark.parametrize("ragged", [False, True])
def test_sine_format(ragged):
    T, B = 30, 32
    task = Sine(T, ragged)
    assert (task.input_size, task.output_size, task.loss, task.score) == (1, 1, "mse", "all")
    b = task.batch(B, seed=0, index=0, dtype=np.float32)
    assert b.x.shape == (T, B, 1) and b.target.shape == (T, B, 1)
    assert b.x.dtype == np.float32 and b.target.dtype == np.float32
    np.testing.assert_array_equal(b.target[:-1], b.x[1:])  # next-step prediction
    assert np.abs(b.x).max() < 1.5
    if ragged:
        assert b.lengths.min() >= T // 2 and b.lengths.max() <= T
    else:
        assert b.lengths is None


@pytest.mark.parametrize("name", TASKS)
def test_ragged_batches_are_accepted_by_the_kernels(name):
    """Every task's batch, ragged or not, is a valid input of both models."""
    for ragged in (False, True):
        task = make_task(name, 24, ragged)
        b = task.batch(6, seed=0, index=0)
        for model in (gp.RNN(task.input_size, 8, task.output_size),
                      gp.LSTM(task.input_size, 8, task.output_size)):
            res = model.loss_and_grads(model.init_params(seed=0), b.x, b.target, task.loss,
                                       task.score, b.lengths)
            assert math.isfinite(res.loss)


# -- baselines, measured ---------------------------------------------------------
def _mean_and_se(v: np.ndarray) -> tuple[float, float]:
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def test_adding_baseline_is_the_mse_of_predicting_one():
    task = Adding(20)
    assert task.baseline() == pytest.approx(1.0 / 6.0, rel=1e-12)
    b = task.batch(40_000, seed=0, index=0)
    mean, se = _mean_and_se((b.target[:, 0] - 1.0) ** 2)
    assert abs(mean - task.baseline()) < 4 * se
    assert se < 0.002  # the check has teeth: 1/6 vs the paper's 0.1767 is 5 standard errors


def test_adding_baseline_through_the_kernels():
    """An RNN whose read-out is the constant 1 (W_out = 0, b_out = 1) scores 1/6."""
    task = Adding(30)
    model = gp.RNN(2, 16, 1, "relu")
    p = model.init_params("identity", seed=0)
    p["W_out"][:] = 0.0
    p["b_out"][:] = 1.0
    b = task.batch(20_000, seed=3, index=0)
    metric = task.metric(model.loss_and_grads(p, b.x, b.target, "mse", "last").loss)
    mean, se = _mean_and_se((b.target[:, 0] - 1.0) ** 2)
    assert metric == pytest.approx(mean, rel=1e-10)  # metric is MSE, not 0.5 * MSE
    assert abs(metric - 1.0 / 6.0) < 4 * se


@pytest.mark.parametrize("T, expected", [(100, 0.1733), (200, 0.0945), (300, 0.0650),
                                         (500, 0.0400)])
def test_copy_baseline_values(T, expected):
    assert Copy(T).baseline() == pytest.approx(10 * LN8 / (T + 20), rel=1e-12)
    assert round(Copy(T).baseline(), 4) == expected


def _marginal_xent(target: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """Cross-entropy of the memoryless predictor: blank with probability 1 where
    the answer is known (``~answer``), uniform over the 8 symbols where it is not.
    A target the predictor gives probability 0 costs inf."""
    with np.errstate(divide="ignore"):
        p = np.where(answer, np.where((target >= 1) & (target <= 8), 1.0 / 8.0, 0.0),
                     (target == 0).astype(float))
        return -np.log(p)


@pytest.mark.parametrize("T", [10, 100])
def test_copy_baseline_measured_full_length(T):
    task = Copy(T)
    b = task.batch(64, seed=0, index=0)
    answer = np.zeros_like(b.target, dtype=bool)
    answer[T + 10:] = True  # by position only: the last 10 steps
    xent = _marginal_xent(b.target, answer)
    assert xent.mean() == pytest.approx(task.baseline(), rel=1e-12)


def test_copy_baseline_measured_ragged():
    """In ragged mode the answer steps are each sequence's last 10, and the mean
    over scored steps is 10 ln 8 / mean(lengths) = baseline(lengths)."""
    task = Copy(40, ragged=True)
    b = task.batch(64, seed=1, index=0)
    T1 = b.x.shape[0]
    t = np.arange(T1)[:, None]
    scored = t < b.lengths[None, :]
    answer = (t >= b.lengths[None, :] - 10) & scored
    xent = _marginal_xent(b.target, answer)[scored]
    assert xent.mean() == pytest.approx(task.baseline(b.lengths), rel=1e-12)
    assert task.baseline(b.lengths) > task.baseline()  # shorter sequences, higher baseline


def test_copy_uniform_readout_through_the_kernels():
    """A zero read-out is uniform over the 9 output classes: ln 9 at every scored step,
    full length and ragged (the loss is the mean over scored steps)."""
    for ragged in (False, True):
        task = Copy(15, ragged)
        model = gp.LSTM(10, 8, 9)
        p = model.init_params(seed=0)
        p["W_out"][:] = 0.0
        b = task.batch(16, seed=0, index=0)
        loss = model.loss_and_grads(p, b.x, b.target, "xent", "all", b.lengths).loss
        assert task.metric(loss) == pytest.approx(math.log(9.0), rel=1e-12)


def test_sine_baseline_is_the_mse_of_predicting_the_last_value():
    task = Sine(50)
    b = task.batch(16_000, seed=0, index=0)
    per_seq = ((b.x[:, :, 0] - b.target[:, :, 0]) ** 2).mean(axis=0)  # independent sequences
    mean, se = _mean_and_se(per_seq)
    assert abs(mean - task.baseline()) < 4 * se
    # teeth: dropping the noise term 2 * 0.05^2 would move the baseline by > 10 se
    assert 2 * Sine.noise**2 > 10 * se


def test_sine_last_value_predictor_through_the_kernels():
    """A two-unit ReLU RNN with y_t = relu(x_t) - relu(-x_t) = x_t is exactly the
    last-value predictor; its metric is the measured MSE."""
    task = Sine(40)
    model = gp.RNN(1, 2, 1, "relu")
    p = {"W_ih": np.array([[1.0], [-1.0]]), "W_hh": np.zeros((2, 2)), "b": np.zeros(2),
         "W_out": np.array([[1.0, -1.0]]), "b_out": np.zeros(1)}
    b = task.batch(2000, seed=4, index=0)
    metric = task.metric(model.loss_and_grads(p, b.x, b.target, "mse", "all").loss)
    assert metric == pytest.approx(float(((b.x - b.target) ** 2).mean()), rel=1e-10)
    per_seq = ((b.x[:, :, 0] - b.target[:, :, 0]) ** 2).mean(axis=0)
    mean, se = _mean_and_se(per_seq)
    assert abs(metric - task.baseline()) < 4 * se


def test_baselines_depend_on_T_only_where_they_should():
    assert Adding(10).baseline() == Adding(1000).baseline()
    assert Sine(10).baseline() == Sine(1000).baseline()
    assert Copy(10).baseline() == pytest.approx(10 * LN8 / 30)
    assert Copy(10).baseline() > Copy(1000).baseline()


def test_success_criterion():
    for name in TASKS:
        task = make_task(name, 24)
        base = task.baseline()
        assert task.success(0.5 * task.success_fraction * base)
        assert not task.success(1.5 * task.success_fraction * base)
        assert not task.success(math.nan)
    assert Adding(20).success_fraction == 0.1 and Sine(20).success_fraction == 0.25


def test_metric_units():
    assert Adding(5).metric(0.25) == 0.5  # mse tasks: MSE = 2 * (0.5 * squared error)
    assert Sine(5).metric(0.25) == 0.5
    assert Copy(5).metric(0.25) == 0.25  # nats per scored step


# -- bad arguments ---------------------------------------------------------------
@pytest.mark.parametrize("args, name", [
    (("parity", 10), "task"),
    (("adding", 1), "seq_len"),
    (("copy", 2.5), "seq_len"),
    (("sine", True), "seq_len"),
])
def test_bad_task_arguments_name_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        make_task(*args)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        Adding(10).batch(bad, seed=0)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        Adding(10).batch(4, seed=-1)


# -- Hochreiter & Schmidhuber's adding problem -------------------------------------
def test_hs_adding_follows_the_paper_format():
    """Section 5.4: values in [-1, 1]; X1 among the first 10 pairs, X2 among the
    first T/2 - 1 not already marked; markers -1 on the first and last pair
    unless marked; lengths T..T + T/10; target 0.5 + (X1 + X2) / 4; a marked
    first pair carries 0."""
    T = 60
    task = make_task("adding-hs", T)
    b = task.batch(4000, seed=3)
    x, n = b.x, b.x.shape[1]
    assert task.steps == x.shape[0] == T + T // 10 and b.lengths is not None
    assert b.lengths.min() >= T and b.lengths.max() <= T + T // 10
    assert np.all(np.abs(x[:, :, 0]) <= 1.0)
    for i in range(n):
        L = b.lengths[i]
        marks = np.flatnonzero(x[:L, i, 1] == 1.0)
        assert len(marks) == 2 and marks.min() < 10
        assert marks.max() <= T // 2 - 1  # X2: among the first T/2 - 1 pairs X1 left
        if 0 not in marks:
            assert x[0, i, 1] == -1.0
        else:
            assert x[0, i, 0] == 0.0
        if L - 1 not in marks:
            assert x[L - 1, i, 1] == -1.0
        others = np.setdiff1d(np.arange(1, L - 1), marks)
        assert np.all(x[others, i, 1] == 0.0)
        want = 0.5 + x[marks, i, 0].sum() / 4.0
        assert b.target[i, 0] == pytest.approx(want, abs=1e-15)
    # X1 is spread over the first 10 pairs, X2 over the first T/2 - 1
    firsts = [np.flatnonzero(x[: b.lengths[i], i, 1] == 1.0) for i in range(n)]
    assert {int(m.min()) for m in firsts} == set(range(10))
    assert max(int(m.max()) for m in firsts) == T // 2 - 1


def test_hs_adding_baseline_is_the_variance_of_its_target():
    task = make_task("adding-hs", 100)
    b = task.batch(60_000, seed=0)
    mean, se = _mean_and_se((b.target[:, 0] - 0.5) ** 2)
    assert abs(mean - task.baseline()) < 4 * se and se < 5e-4
    assert task.baseline() == pytest.approx((0.9 + 1 - 0.9 / 49) / 3 / 16, rel=1e-12)


def test_count_correct_counts_the_test_set_within_the_tolerance():
    """A stand-in model whose last-step output misses the target by 0.03 on even
    sequences and by 0.05 on odd ones gets exactly half of the 2,560 right."""
    from types import SimpleNamespace

    from gradpath.train import TrainConfig, count_correct

    task = make_task("adding-hs", 30)

    class Stub:
        def forward(self, params, x, lengths):
            marked = (x[:, :, 1] == 1.0) * x[:, :, 0]
            target = 0.5 + marked.sum(axis=0) / 4.0
            miss = np.where(np.arange(x.shape[1]) % 2 == 0, 0.03, 0.05)
            y = np.zeros((x.shape[0], x.shape[1], 1))
            y[lengths - 1, np.arange(x.shape[1]), 0] = target + miss
            return SimpleNamespace(y=y)

    c = TrainConfig(task="adding-hs", seq_len=30, cell="lstm", hidden=4)
    assert count_correct(Stub(), None, task, c) == 0.5
    assert math.isnan(count_correct(Stub(), None, make_task("adding", 30), c))
    assert task.test_sequences == 2560 and task.tolerance == 0.04
