"""Parameter initialisation: shapes, determinism, and the three recurrent inits."""

from __future__ import annotations

import numpy as np
import pytest

import gradpath as gp
from gradpath.models import DEFAULT_FORGET_BIAS, DEFAULT_UPDATE_BIAS

INITS = ["identity", "gaussian", "orthogonal"]


def models(D=3, H=6, O=2):
    return [gp.RNN(D, H, O, "tanh"), gp.RNN(D, H, O, "relu"), gp.LSTM(D, H, O)]


def blocks(W_hh, H):
    """The H x H gate blocks of a (G*H, H) recurrent matrix."""
    return [W_hh[k * H:(k + 1) * H] for k in range(W_hh.shape[0] // H)]


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("model", models(), ids=repr)
def test_shapes_and_dtypes(model, init):
    for dtype in (np.float64, np.float32):
        p = model.init_params(init=init, seed=1, dtype=dtype)
        assert list(p) == ["W_ih", "W_hh", "b", "W_out", "b_out"]
        for k, v in p.items():
            assert v.shape == model.param_shapes()[k], k
            assert v.dtype == dtype, k
            assert v.flags.c_contiguous, k
            assert np.isfinite(v).all(), k


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("model", models(), ids=repr)
def test_deterministic_by_seed(model, init):
    a = model.init_params(init=init, seed=7)
    b = model.init_params(init=init, seed=7)
    c = model.init_params(init=init, seed=8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    for k in ("W_ih", "W_out") + (("W_hh",) if init != "identity" else ()):
        assert not np.array_equal(a[k], c[k]), k


def test_same_seed_same_params_across_processes():
    """Bit-identical in a fresh process too (no hidden global RNG state)."""
    import subprocess
    import sys

    code = ("import numpy as np, gradpath as gp; "
            "p = gp.LSTM(3, 5, 2).init_params('orthogonal', seed=3); "
            "print(repr(float(np.sum(p['W_hh'] * np.arange(p['W_hh'].size).reshape(20, 5)))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    p = gp.LSTM(3, 5, 2).init_params("orthogonal", seed=3)
    assert float(out) == float(np.sum(p["W_hh"] * np.arange(p["W_hh"].size).reshape(20, 5)))


@pytest.mark.parametrize("gain", [0.0, 0.5, 1.0, 1.7])
@pytest.mark.parametrize("model", models(), ids=repr)
def test_identity_is_gain_times_eye(model, gain):
    H = model.hidden_size
    p = model.init_params(init="identity", gain=gain, seed=0)
    for block in blocks(p["W_hh"], H):
        np.testing.assert_array_equal(block, gain * np.eye(H))


@pytest.mark.parametrize("gain", [0.5, 1.0, 1.3])
@pytest.mark.parametrize("H", [1, 7, 50])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_orthogonal_columns_orthonormal_times_gain(cell, H, gain):
    model = {"rnn": gp.RNN, "lstm": gp.LSTM, "gru": gp.GRU}[cell](2, H, 2)
    p = model.init_params(init="orthogonal", gain=gain, seed=5)
    bs = blocks(p["W_hh"], H)
    for Q in bs:
        np.testing.assert_allclose(Q.T @ Q, gain**2 * np.eye(H), rtol=0, atol=1e-12)
        np.testing.assert_allclose(Q @ Q.T, gain**2 * np.eye(H), rtol=0, atol=1e-12)
    assert len(bs) == model.gates
    if cell != "rnn" and H > 1:
        assert not np.array_equal(bs[0], bs[1]), "each gate block gets its own draw"


def test_orthogonal_is_not_biased_to_positive_diagonal():
    """Haar measure: the sign fix of R's diagonal leaves diag(Q) symmetric about 0."""
    model = gp.RNN(2, 40, 2)
    diag = np.concatenate([np.diag(model.init_params("orthogonal", seed=s)["W_hh"])
                           for s in range(20)])
    assert abs(np.mean(diag)) < 0.05
    assert abs(np.mean(diag > 0) - 0.5) < 0.1


@pytest.mark.parametrize("gain", [0.5, 1.0, 2.0])
def test_gaussian_entry_variance(gain):
    H = 400
    W = gp.RNN(2, H, 2).init_params(init="gaussian", gain=gain, seed=0)["W_hh"]
    # 160000 entries: the sample variance is within ~0.4% (1 sd) of gain^2 / H
    assert np.var(W) == pytest.approx(gain**2 / H, rel=0.03)
    assert abs(np.mean(W)) < 5 * gain / H  # sd of the mean is gain / H / sqrt(H)


@pytest.mark.parametrize("cls", [gp.LSTM, gp.GRU])
def test_gated_gaussian_blocks_each_scaled_by_H(cls):
    H = 200
    W = cls(2, H, 2).init_params(init="gaussian", gain=1.5, seed=0)["W_hh"]
    assert W.shape == (cls.gates * H, H)
    for block in blocks(W, H):
        assert np.var(block) == pytest.approx(1.5**2 / H, rel=0.05)


def test_input_and_output_weight_scales():
    D, H = 300, 300
    p = gp.RNN(D, H, 300).init_params(seed=0, input_scale=2.0)
    assert np.var(p["W_ih"]) == pytest.approx(4.0 / D, rel=0.03)
    assert np.var(p["W_out"]) == pytest.approx(1.0 / H, rel=0.03)


@pytest.mark.parametrize("init", INITS)
def test_rnn_biases_zero(init):
    p = gp.RNN(3, 6, 2).init_params(init=init, seed=0)
    np.testing.assert_array_equal(p["b"], 0.0)
    np.testing.assert_array_equal(p["b_out"], 0.0)


@pytest.mark.parametrize("forget_bias", [None, 0.0, 2.5, -1.0])
def test_lstm_forget_bias(forget_bias):
    H = 6
    kw = {} if forget_bias is None else {"forget_bias": forget_bias}
    b = gp.LSTM(3, H, 2).init_params(seed=0, **kw)["b"]
    expected = DEFAULT_FORGET_BIAS if forget_bias is None else forget_bias
    assert DEFAULT_FORGET_BIAS == 1.0
    np.testing.assert_array_equal(b[H:2 * H], expected)  # f block
    np.testing.assert_array_equal(b[:H], 0.0)  # i
    np.testing.assert_array_equal(b[2 * H:], 0.0)  # g, o


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("model", models(), ids=repr)
def test_float32_params_are_float64_params_rounded(model, init):
    p64 = model.init_params(init=init, gain=0.9, seed=4, dtype=np.float64)
    p32 = model.init_params(init=init, gain=0.9, seed=4, dtype=np.float32)
    for k in p64:
        np.testing.assert_array_equal(p32[k], p64[k].astype(np.float32))


def test_dtype_spellings_accepted():
    m = gp.RNN(2, 3, 1)
    for spelling in ("float32", np.float32, np.dtype("float32"), "f4"):
        assert m.init_params(dtype=spelling)["W_hh"].dtype == np.float32
    for spelling in ("float64", float, np.float64, "f8"):
        assert m.init_params(dtype=spelling)["W_hh"].dtype == np.float64


def test_init_params_usable_by_the_kernels():
    for model in models():
        for init in INITS:
            p = model.init_params(init=init, seed=0)
            x = np.ones((3, 2, model.input_size))
            res = model.loss_and_grads(p, x, np.zeros((2, model.output_size)))
            assert np.isfinite(res.loss)


@pytest.mark.parametrize("update_bias", [None, 0.0, 2.5, -1.0])
def test_gru_update_bias(update_bias):
    H = 6
    kw = {} if update_bias is None else {"update_bias": update_bias}
    p = gp.GRU(3, H, 2).init_params(seed=0, **kw)
    expected = DEFAULT_UPDATE_BIAS if update_bias is None else update_bias
    assert DEFAULT_UPDATE_BIAS == 1.0
    assert list(p) == ["W_ih", "W_hh", "b", "b_hn", "W_out", "b_out"]
    np.testing.assert_array_equal(p["b"][H:2 * H], expected)  # z block
    np.testing.assert_array_equal(p["b"][:H], 0.0)  # r
    np.testing.assert_array_equal(p["b"][2 * H:], 0.0)  # n
    np.testing.assert_array_equal(p["b_hn"], 0.0)


@pytest.mark.parametrize("init", INITS)
def test_gru_identity_blocks_and_shapes(init):
    H, D = 5, 3
    p = gp.GRU(D, H, 2).init_params(init=init, gain=0.8, seed=1)
    assert p["W_ih"].shape == (3 * H, D) and p["W_hh"].shape == (3 * H, H)
    if init == "identity":
        for block in blocks(p["W_hh"], H):
            np.testing.assert_array_equal(block, 0.8 * np.eye(H))
