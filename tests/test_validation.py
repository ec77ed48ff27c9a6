"""Bad input raises ValueError naming the argument, before any kernel runs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradpath as gp

T, B, D, H, O = 5, 3, 2, 4, 3


def setup(cell="rnn", dtype=np.float64):
    model = {"rnn": gp.RNN, "lstm": gp.LSTM, "gru": gp.GRU}[cell](D, H, O)
    params = model.init_params(seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    target = rng.standard_normal((B, O)).astype(dtype)
    return model, params, x, target


def call(cell="rnn", *, params=None, x=None, target=None, **kw):
    model, p, xx, tt = setup(cell)
    return model.loss_and_grads(p if params is None else params, xx if x is None else x,
                                tt if target is None else target, **kw)


def with_value(a, index, value):
    a = a.copy()
    a[index] = value
    return a


_, P, X, TGT = setup()
_, P_LSTM, _, _ = setup("lstm")
_, P_GRU, _, _ = setup("gru")


def param_cases(P, other):
    """Bad parameter dicts built from valid ones ``P`` (and the other cell's ``other``)."""
    W_hh, b = P["W_hh"], P["b"]
    return {
        "params-not-dict": (list(P.values()), "params"),
        "params-missing-key": ({k: v for k, v in P.items() if k != "b_out"}, "params"),
        "params-extra-key": (P | {"W_extra": np.zeros(3)}, "params"),
        "params-other-cell": (other, "params"),
        "params-wrong-shape": (P | {"W_hh": np.zeros((W_hh.shape[0], H + 1))},
                               "params['W_hh']"),
        "params-wrong-shape-b": (P | {"b": np.zeros(b.shape[0] + 1)}, "params['b']"),
        "params-mixed-dtype": (P | {"b": b.astype(np.float32)}, "params['b']"),
        "params-int-dtype": ({k: v.astype(np.int64) for k, v in P.items()}, "params"),
        "params-nan": (P | {"W_ih": with_value(P["W_ih"], (0, 0), np.nan)}, "params['W_ih']"),
        "params-inf": (P | {"b_out": with_value(P["b_out"], 0, -np.inf)}, "params['b_out']"),
        "params-list-value": (P | {"W_out": P["W_out"].tolist()}, "params['W_out']"),
    }


PARAM_CASES = {"rnn": param_cases(P, P_LSTM), "lstm": param_cases(P_LSTM, P_GRU),
               "gru": param_cases(P_GRU, P)}

BAD_CALLS = {
    # x
    "x-ndim-2": (dict(x=X[0]), "x"),
    "x-ndim-4": (dict(x=X[..., None]), "x"),
    "x-wrong-D": (dict(x=np.zeros((T, B, D + 1))), "x"),
    "x-empty-T": (dict(x=np.zeros((0, B, D))), "x"),
    "x-list": (dict(x=X.tolist()), "x"),
    "x-float32-params-float64": (dict(x=X.astype(np.float32)), "x"),
    "x-int": (dict(x=X.astype(np.int64)), "x"),
    "x-nan": (dict(x=with_value(X, (2, 1, 0), np.nan)), "x"),
    "x-inf": (dict(x=with_value(X, (0, 0, 1), np.inf)), "x"),
    "x-neg-inf": (dict(x=with_value(X, (4, 2, 1), -np.inf)), "x"),
    # lengths
    "lengths-zero": (dict(lengths=np.array([T, 0, 2])), "lengths"),
    "lengths-too-long": (dict(lengths=np.array([T, T + 1, 2])), "lengths"),
    "lengths-negative": (dict(lengths=np.array([-1, 2, 2])), "lengths"),
    "lengths-float": (dict(lengths=np.array([5.0, 2.0, 3.0])), "lengths"),
    "lengths-float-list": (dict(lengths=[5.0, 2.0, 3.0]), "lengths"),
    "lengths-bool": (dict(lengths=np.array([True, True, True])), "lengths"),
    "lengths-short": (dict(lengths=np.array([5, 2])), "lengths"),
    "lengths-2d": (dict(lengths=np.array([[5, 2, 3]])), "lengths"),
    "lengths-scalar": (dict(lengths=5), "lengths"),
    # loss / score
    "loss-unknown": (dict(loss="mae"), "loss"),
    "loss-none": (dict(loss=None), "loss"),
    "score-unknown": (dict(score="first"), "score"),
    # target
    "target-mse-wrong-shape": (dict(target=np.zeros((B, O + 1))), "target"),
    "target-mse-last-given-all": (dict(target=np.zeros((T, B, O))), "target"),
    "target-mse-all-given-last": (dict(target=np.zeros((B, O)), score="all"), "target"),
    "target-mse-int": (dict(target=np.zeros((B, O), np.int64)), "target"),
    "target-mse-float32": (dict(target=np.zeros((B, O), np.float32)), "target"),
    "target-mse-nan": (dict(target=with_value(TGT, (1, 1), np.nan)), "target"),
    "target-xent-float": (dict(target=np.zeros(B), loss="xent"), "target"),
    "target-xent-wrong-shape": (dict(target=np.zeros((B, O), np.int64), loss="xent"), "target"),
    "target-xent-class-too-big": (dict(target=np.array([0, O, 1]), loss="xent"), "target"),
    "target-xent-class-negative": (dict(target=np.array([0, -1, 1]), loss="xent"), "target"),
    "target-xent-all-out-of-range": (
        dict(target=np.full((T, B), O), loss="xent", score="all"), "target"),
    "target-list": (dict(target=TGT.tolist()), "target"),
    # h0
    "h0-wrong-shape": (dict(h0=np.zeros((B, H + 1))), "h0"),
    "h0-transposed": (dict(h0=np.zeros((H, B))), "h0"),
    "h0-wrong-dtype": (dict(h0=np.zeros((B, H), np.float32)), "h0"),
    "h0-nan": (dict(h0=with_value(np.zeros((B, H)), (0, 0), np.nan)), "h0"),
}


@pytest.mark.parametrize(("kwargs", "name"), list(BAD_CALLS.values()), ids=list(BAD_CALLS))
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bad_input_raises_value_error_naming_the_argument(cell, kwargs, name):
    with pytest.raises(ValueError, match=r"^" + re.escape(name)):
        call(cell, **kwargs)


@pytest.mark.parametrize("case", list(PARAM_CASES["rnn"]))
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bad_params_raise_value_error_naming_the_key(cell, case):
    params, name = PARAM_CASES[cell][case]
    with pytest.raises(ValueError, match=r"^" + re.escape(name)):
        call(cell, params=params)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(c0=np.zeros((B, H + 1))), "c0"),
        (dict(c0=np.zeros((B, H), np.float32)), "c0"),
        (dict(c0=with_value(np.zeros((B, H)), (1, 2), np.inf)), "c0"),
        (dict(params=P_LSTM | {"W_hh": np.zeros((H, H))}), "params['W_hh']"),
        (dict(params=P_LSTM | {"b": np.zeros(H)}), "params['b']"),
    ],
)
def test_lstm_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=r"^" + re.escape(name)):
        call("lstm", **kwargs)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float32_params_with_float64_x(cell):
    model, params, x, target = setup(cell, np.float32)
    with pytest.raises(ValueError, match=r"^x"):
        model.loss_and_grads(params, x.astype(np.float64), target)


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"^activation"):
        gp.RNN(D, H, O, activation="sigmoid")
    with pytest.raises(ValueError, match=r"^activation"):
        gp.RNN(D, H, O, activation=None)


@pytest.mark.parametrize("name", ["input_size", "hidden_size", "output_size"])
@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3"])
@pytest.mark.parametrize("cls", [gp.RNN, gp.LSTM, gp.GRU])
def test_bad_sizes(cls, name, value):
    sizes = dict(input_size=D, hidden_size=H, output_size=O) | {name: value}
    with pytest.raises(ValueError, match=r"^" + name):
        cls(**sizes)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(init="xavier"), "init"),
        (dict(init=None), "init"),
        (dict(dtype=np.float16), "dtype"),
        (dict(dtype=np.int64), "dtype"),
        (dict(dtype="complex128"), "dtype"),
        (dict(dtype="not-a-dtype"), "dtype"),
        (dict(gain=-1.0), "gain"),
        (dict(gain=np.nan), "gain"),
        (dict(gain=np.inf), "gain"),
        (dict(input_scale=-0.5), "input_scale"),
        (dict(forget_bias=np.nan), "forget_bias"),
        (dict(update_bias=np.inf), "update_bias"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
    ],
)
@pytest.mark.parametrize("cls", [gp.RNN, gp.LSTM, gp.GRU])
def test_init_params_bad_arguments(cls, kwargs, name):
    with pytest.raises(ValueError, match=r"^" + name):
        cls(D, H, O).init_params(**kwargs)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_forward_validates_too(cell):
    model, params, x, _ = setup(cell)
    with pytest.raises(ValueError, match=r"^x"):
        model.forward(params, x[:, :, :1])
    with pytest.raises(ValueError, match=r"^lengths"):
        model.forward(params, x, lengths=np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"^h0"):
        model.forward(params, x, h0=np.zeros((B, H + 2)))
    with pytest.raises(ValueError, match=r"^params"):
        model.forward({k: v for k, v in params.items() if k != "W_ih"}, x)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_valid_edge_cases_accepted(cell):
    """The extremes of the valid range work: T = 1, B = 1, lengths all 1 or all T,
    lengths as a plain list, xent target of any integer dtype."""
    model, params, x, target = setup(cell)
    assert np.isfinite(call(cell, lengths=[1, 1, 1]).loss)
    assert np.isfinite(call(cell, lengths=np.array([T, T, T], np.int32)).loss)
    res = model.loss_and_grads(params, x[:1, :1], target[:1])
    assert res.grad_norms.shape == (1, 1)
    res_xent = call(cell, loss="xent", target=np.array([0, 2, 1], np.uint8))
    ref_xent = call(cell, loss="xent", target=np.array([0, 2, 1]))
    assert res_xent.loss == ref_xent.loss


BAD_INPUT_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import gradpath as gp

    T, B, D, H, O = 4, 2, 2, 3, 2
    x = np.random.default_rng(0).standard_normal((T, B, D))


    def bad_calls(model):
        p = model.init_params(seed=0)
        t = np.zeros((B, O))
        return [
            lambda: model.loss_and_grads(p, x, t, lengths=np.array([T + 10**6, 1])),
            lambda: model.loss_and_grads(p, x, t, lengths=np.array([-(10**6), 1])),
            lambda: model.loss_and_grads(p, x, t, lengths=np.array([0, 0])),
            lambda: model.loss_and_grads(p, x, t, lengths=np.array([2**62, 1])),
            lambda: model.loss_and_grads(p, x, np.array([O + 10**6, 0]), loss="xent"),
            lambda: model.loss_and_grads(p, x, np.array([-(10**9), 0]), loss="xent"),
            lambda: model.loss_and_grads(p, x, np.full((T, B), 99), loss="xent", score="all"),
            lambda: model.loss_and_grads(p, x[:, :1], t),
            lambda: model.loss_and_grads(p, x[:, :, :1], t),
            lambda: model.loss_and_grads(p, np.zeros((T, B, D + 5)), t),
            lambda: model.loss_and_grads(p, x, np.zeros((B + 5, O))),
            lambda: model.loss_and_grads(p, x, t, h0=np.zeros((B + 7, H))),
            lambda: model.loss_and_grads(p | {"W_hh": np.zeros((1, 1))}, x, t),
            lambda: model.loss_and_grads(p | {"W_out": np.zeros((O + 9, H))}, x, t),
            lambda: model.loss_and_grads(p, x * np.nan, t),
            lambda: model.forward(p, x, lengths=np.array([T + 100, 1])),
        ]

    bad = bad_calls(gp.RNN(D, H, O, "relu")) + bad_calls(gp.LSTM(D, H, O))
    caught = 0
    for f in bad:
        try:
            f()
        except ValueError:
            caught += 1
    print("caught", caught, "of", len(bad))
    raise SystemExit(0 if caught == len(bad) else 1)
    """
)


def test_bad_input_never_crashes_the_process():
    proc = subprocess.run([sys.executable, "-c", BAD_INPUT_SCRIPT], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "caught 32 of 32" in proc.stdout


# -- regressions of library bugs found while writing these tests -------------------
@pytest.mark.parametrize("name", ["gain", "input_scale", "forget_bias", "update_bias"])
@pytest.mark.parametrize("value", [None, "1.0"])
def test_init_params_non_numeric_scale_raises_value_error(name, value):
    with pytest.raises(ValueError, match=r"^" + name):
        gp.LSTM(D, H, O).init_params(**{name: value})


def test_non_array_w_hh_is_named_in_the_error():
    model, params, x, target = setup("rnn", np.float32)
    params = params | {"W_hh": params["W_hh"].tolist()}
    with pytest.raises(ValueError, match=r"^params\['W_hh'\]"):
        model.loss_and_grads(params, x, target)
