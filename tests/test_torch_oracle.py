"""gradpath's kernels against PyTorch's own cells, in float64.

A second, independent oracle beside the numpy twins (tests/naive.py): the
same weights are loaded into ``torch.nn.RNN``, ``torch.nn.LSTM`` and
``torch.nn.GRU`` (torch's ``bias_hh`` is zero, except the GRU's n block, which
is gradpath's ``b_hn``), and the loss, every parameter gradient, dL/dh0 and
the per-step ||dL/dh_t|| must agree to 1e-9 of the largest entry. Ragged
batches go through ``pack_padded_sequence``, torch's own variable-length path.
The per-step norms come from the matching ``*Cell`` modules stepped by hand
(``retain_grad`` on every h_t), with the same weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from problems import CELL_IDS, CELLS, assert_rel_close, make_problem

torch.set_default_dtype(torch.float64)

RTOL = 1e-9
ATOL = 1e-15


def _torch_modules(cell: str, activation: str, params: dict, D: int, H: int):
    """(sequence module, cell module) holding gradpath's ``params``."""
    if cell == "rnn":
        seq = torch.nn.RNN(D, H, nonlinearity=activation)
        step = torch.nn.RNNCell(D, H, nonlinearity=activation)
    elif cell == "lstm":
        seq, step = torch.nn.LSTM(D, H), torch.nn.LSTMCell(D, H)
    else:
        seq, step = torch.nn.GRU(D, H), torch.nn.GRUCell(D, H)
    bias_hh = np.zeros_like(params["b"])
    if cell == "gru":
        bias_hh[2 * H:] = params["b_hn"]
    values = {"weight_ih": params["W_ih"], "weight_hh": params["W_hh"], "bias_ih": params["b"],
              "bias_hh": bias_hh}
    with torch.no_grad():
        for name, v in values.items():
            getattr(seq, f"{name}_l0").copy_(torch.from_numpy(v))
            getattr(step, name).copy_(torch.from_numpy(v))
    return seq, step


def _loss(y, target, loss: str, score: str, lengths: np.ndarray):
    """gradpath's loss on torch read-outs ``y`` (T, B, O): mean over scored (t, b)."""
    T, B, _ = y.shape
    if score == "last":
        y = y[torch.from_numpy(lengths - 1), torch.arange(B)]  # (B, O)
        alive = torch.ones(B, dtype=torch.bool)
    else:
        alive = torch.arange(T)[:, None] < torch.from_numpy(lengths)[None, :]
    t = torch.from_numpy(target)
    if loss == "mse":
        per = 0.5 * ((y - t) ** 2).sum(-1)
    else:
        per = -torch.log_softmax(y, -1).gather(-1, t[..., None])[..., 0]
    return per[alive].mean()


def _torch_result(prob):
    cell, act = prob.cell, prob.activation
    T, B, D, H, O = prob.shape
    lengths = np.full(B, T, np.int64) if prob.lengths is None else prob.lengths
    seq, step = _torch_modules(cell, act, prob.params, D, H)
    W_out = torch.tensor(prob.params["W_out"], requires_grad=True)
    b_out = torch.tensor(prob.params["b_out"], requires_grad=True)
    h0 = torch.tensor(prob.h0[None], requires_grad=True)
    c0 = torch.tensor(prob.c0[None], requires_grad=True) if cell == "lstm" else None
    x = torch.from_numpy(prob.x)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    out, _ = seq(packed, (h0, c0) if cell == "lstm" else h0)
    hs, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)  # zeros past a length
    loss = _loss(hs @ W_out.T + b_out, prob.target, prob.loss, prob.score, lengths)
    loss.backward()
    g = {k: getattr(seq, f"{k}_l0").grad.numpy() for k in ("weight_ih", "weight_hh",
                                                          "bias_ih", "bias_hh")}
    grads = {"W_ih": g["weight_ih"], "W_hh": g["weight_hh"], "b": g["bias_ih"],
             "W_out": W_out.grad.numpy(), "b_out": b_out.grad.numpy()}
    if cell == "gru":
        grads["b_hn"] = g["bias_hh"][2 * H:]
        # torch's r and z biases enter exactly as gradpath's b does
        np.testing.assert_allclose(g["bias_hh"][:2 * H], g["bias_ih"][:2 * H], rtol=1e-12,
                                   atol=ATOL)
    c0_grad = None if c0 is None else c0.grad.numpy()[0]
    return float(loss.detach()), grads, h0.grad.numpy()[0], c0_grad


def _torch_grad_norms(prob) -> np.ndarray:
    """||dL/dh_t|| (T, B) by stepping torch's cell module by hand."""
    T, B, D, H, O = prob.shape
    lengths = np.full(B, T, np.int64) if prob.lengths is None else prob.lengths
    _, step = _torch_modules(prob.cell, prob.activation, prob.params, D, H)
    alive = torch.from_numpy((np.arange(T)[:, None] < lengths[None, :]).astype(np.float64))
    h = torch.from_numpy(prob.h0.copy())
    c = torch.from_numpy(prob.c0.copy()) if prob.cell == "lstm" else None
    x = torch.from_numpy(prob.x)
    hs = []
    for t in range(T):
        m = alive[t][:, None]
        if prob.cell == "lstm":
            h, c = step(x[t], (h, c))
            h, c = h * m, c * m
        else:
            h = step(x[t], h) * m
        h.retain_grad()
        hs.append(h)
    y = torch.stack(hs) @ torch.from_numpy(prob.params["W_out"]).T \
        + torch.from_numpy(prob.params["b_out"])
    _loss(y, prob.target, prob.loss, prob.score, lengths).backward()
    return np.stack([np.linalg.norm(h.grad.numpy(), axis=1) for h in hs])


CASES = [("mse", "all", False), ("xent", "last", True), ("xent", "all", True)]


@pytest.mark.parametrize(("loss", "score", "ragged"), CASES,
                         ids=[f"{lo}-{sc}-{'ragged' if r else 'full'}" for lo, sc, r in CASES])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_kernel_matches_torch_float64(cell, activation, loss, score, ragged):
    prob = make_problem(cell, activation, loss, score, T=25, B=5, D=3, H=16, O=4,
                        ragged=ragged, gain=1.0 if activation == "relu" else 0.95, seed=13)
    res = prob.kernel()
    t_loss, t_grads, t_h0, t_c0 = _torch_result(prob)
    assert_rel_close(res.loss, t_loss, RTOL, "loss", ATOL)
    assert set(res.grads) == set(t_grads)
    for k, v in t_grads.items():
        assert_rel_close(res.grads[k], v, RTOL, f"grads[{k!r}]", ATOL)
    assert_rel_close(res.h0_grad, t_h0, RTOL, "h0_grad", ATOL)
    if cell == "lstm":
        assert_rel_close(res.c0_grad, t_c0, RTOL, "c0_grad", ATOL)
    assert_rel_close(res.grad_norms, _torch_grad_norms(prob), RTOL, "grad_norms", ATOL)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_forward_matches_torch_float64(cell, activation):
    prob = make_problem(cell, activation, T=40, B=3, D=2, H=24, O=2, seed=4)
    T, B, D, H, O = prob.shape
    seq, _ = _torch_modules(cell, activation, prob.params, D, H)
    h0 = torch.from_numpy(prob.h0[None])
    with torch.no_grad():
        out, _ = seq(torch.from_numpy(prob.x),
                     (h0, torch.from_numpy(prob.c0[None])) if cell == "lstm" else h0)
    fwd = prob.model.forward(prob.params, prob.x, h0=prob.h0,
                             **({"c0": prob.c0} if cell == "lstm" else {}))
    assert_rel_close(fwd.h, out.numpy(), RTOL, "h", ATOL)


def test_oracle_detects_a_wrong_bias_convention():
    """Guard against a vacuous comparison: putting b_hn in torch's bias_ih
    instead (outside the reset product) changes the loss beyond the tolerance."""
    prob = make_problem("gru", loss="mse", score="all", T=10, B=2, D=2, H=6, O=2, seed=2)
    T, B, D, H, O = prob.shape
    good = _torch_result(prob)[0]
    wrong = dict(prob.params)
    wrong["b"] = prob.params["b"].copy()
    wrong["b"][2 * H:] += prob.params["b_hn"]
    wrong["b_hn"] = np.zeros(H)
    res_wrong = prob.model.loss_and_grads(wrong, prob.x, prob.target, loss="mse", score="all",
                                          h0=prob.h0)
    assert abs(res_wrong.loss - good) > 1e-6 * abs(good)
    assert abs(prob.kernel().loss - good) <= RTOL * abs(good)
