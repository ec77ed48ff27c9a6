"""Checks every registered cell passes, enumerated from the registry.

A cell added to ``gradpath.cells.TABLE`` is checked here without editing this
file: its kernels against its numpy twin (1e-12 in float64; tests/naive.py
finds a later cell's as tests/naive_<cell>.py), its gradients against central
finite differences (float64), float32
against float64, bit-identity across thread counts, bad input refused with a
ValueError naming the argument, its step Jacobian against finite differences
of its forward pass, its probe adjoint against products of those Jacobians,
and its Lyapunov exponents against the QR method on explicit Jacobians.
"""

from __future__ import annotations

import naive  # tests/naive.py: the cells' numpy twins, found by name
import numpy as np
import pytest

from gradpath.cells import REGISTRY
from gradpath.kernels import parallel

CELLS = list(REGISTRY)
D, H, O = 3, 5, 2


def make(cell: str, hidden: int = H, inputs: int = D):
    return REGISTRY[cell](inputs, hidden, O)


def problem(model, T=6, B=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    p = model.init_params("orthogonal", gain=1.1, seed=seed, dtype=dtype)
    # every parameter away from its initial special values (zero biases, ...)
    p = {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(dtype) for k, v in p.items()}
    x = rng.standard_normal((T, B, model.input_size)).astype(dtype)
    target = rng.standard_normal((B, O)).astype(dtype)
    init = {k: 0.3 * rng.standard_normal((B, model.hidden_size)).astype(dtype)
            for k in model.initial_states}
    return p, x, target, init


def run(model, p, x, target, init, **kw):
    return model.loss_and_grads(p, x, target, lengths=kw.pop("lengths", None), **init, **kw)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_gradients_match_central_differences(cell, loss):
    model = make(cell)
    p, x, target, init = problem(model)
    if loss == "xent":
        target = np.array([0, 1, 1])
    lengths = np.array([6, 4, 1])
    score = "last"
    res = run(model, p, x, target, init, loss=loss, score=score, lengths=lengths)

    def central(params, states, arrays, name, idx, eps=1e-6):
        """(L(a + eps) - L(a - eps)) / 2 eps for entry idx of arrays[name] (a
        copy of ``params`` or ``states``)."""
        losses = []
        for step in (eps, -2 * eps):
            arrays[name][idx] += step
            losses.append(run(model, params, x, target, states, loss=loss, score=score,
                              lengths=lengths).loss)
        return (losses[0] - losses[1]) / (2 * eps)

    rng = np.random.default_rng(1)
    for name, v in p.items():
        for idx in {tuple(rng.integers(0, n) for n in v.shape) for _ in range(6)}:
            q = {k: a.copy() for k, a in p.items()}
            fd = central(q, init, q, name, idx)
            assert abs(res.grads[name][idx] - fd) <= 1e-7 + 1e-5 * abs(fd), (name, idx)
    for name, got in zip(model.initial_states, (res.h0_grad, res.c0_grad), strict=False):
        assert got is not None, name
        states = {n: a.copy() for n, a in init.items()}
        fd = central(p, states, states, name, (1, 2))
        assert abs(got[1, 2] - fd) <= 1e-7 + 1e-5 * abs(fd), name


@pytest.mark.parametrize("cell", CELLS)
def test_float32_follows_float64(cell):
    model = make(cell)
    p, x, target, init = problem(model)
    r64 = run(model, p, x, target, init, score="last")
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    i32 = {k: v.astype(np.float32) for k, v in init.items()}
    r32 = run(model, p32, x.astype(np.float32), target.astype(np.float32), i32, score="last")
    assert abs(r32.loss - r64.loss) <= 1e-5 * max(1.0, abs(r64.loss))
    for k in p:
        assert r32.grads[k].dtype == np.float32
        np.testing.assert_allclose(r32.grads[k], r64.grads[k], rtol=1e-3, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_results_do_not_depend_on_the_thread_count(cell, monkeypatch):
    # big enough to split rows over two blocks (parallel.n_blocks)
    model = make(cell, hidden=64, inputs=2)
    p, x, target, init = problem(model, T=260, B=32)
    assert parallel.n_blocks(260, 32, 64, model.gates * 64) > 1
    out = []
    for n in ("1", "2"):
        monkeypatch.setenv(parallel.THREADS_ENV, n)
        r = run(model, p, x, target, init, score="last")
        out.append([r.loss, r.grad_norms, r.h0_grad, *r.grads.values()])
    for a, b in zip(*out, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("cell", CELLS)
def test_bad_input_is_refused_naming_the_argument(cell):
    model = make(cell)
    p, x, target, init = problem(model)
    for name, v in p.items():
        bad = {**p, name: v[..., :-1] if v.ndim else v}
        with pytest.raises(ValueError, match=rf"^params\['{name}'\]: expected shape"):
            model.loss_and_grads(bad, x, target)
        nan = v.copy()
        nan.flat[0] = np.nan
        with pytest.raises(ValueError, match=rf"^params\['{name}'\]: contains NaN"):
            model.loss_and_grads({**p, name: nan}, x, target)
    with pytest.raises(ValueError, match=r"^x: expected shape"):
        model.loss_and_grads(p, x[..., :1], target)
    with pytest.raises(ValueError, match=r"^target: expected shape"):
        model.loss_and_grads(p, x, target[:1])
    with pytest.raises(ValueError, match=r"^lengths"):
        model.loss_and_grads(p, x, target, lengths=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"^params: missing key"):
        model.loss_and_grads({k: v for k, v in p.items() if k != "b_out"}, x, target)
    name = model.initial_states[0]
    with pytest.raises(ValueError, match=rf"^{name}: expected shape"):
        model.loss_and_grads(p, x, target, **{name: init[name][:1]})
    if REGISTRY[cell].activations:
        with pytest.raises(ValueError, match=r"^activation"):
            REGISTRY[cell](D, H, O, activation="sigmoid")


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_a_non_finite_target_is_refused_only_where_it_is_scored(cell):
    """NaN at a scored step is refused, with every sequence full length (the
    check without a mask) and ragged; NaN in a ragged batch's padding is not
    scored, so it is accepted and changes nothing."""
    model = make(cell)
    p, x, target, init = problem(model)
    T, B = x.shape[:2]
    every = np.random.default_rng(1).standard_normal((T, B, O))
    lengths = np.array([T, 2, 4])
    for lens, t in ((None, T - 1), (lengths, 1)):
        bad = every.copy()
        bad[t, 1, 0] = np.nan
        with pytest.raises(ValueError, match=r"^target: contains NaN or Inf at a scored step"):
            model.loss_and_grads(p, x, bad, score="all", lengths=lens)
    bad = target.copy()
    bad[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"^target: contains NaN or Inf at a scored step"):
        model.loss_and_grads(p, x, bad)
    padded = every.copy()
    padded[2:, 1] = np.nan  # sequence 1 is 2 steps long
    a = model.loss_and_grads(p, x, padded, score="all", lengths=lengths)
    b = model.loss_and_grads(p, x, every, score="all", lengths=lengths)
    assert a.loss == b.loss
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def _state(model, st, t):
    """The state after step t (h, and c for a cell with a cell state) of sequence 0."""
    parts = [st[0][t + 1, 0]]
    if model.cell_state is not None:
        parts.append(st[model.cell_state][t + 1, 0])
    return np.concatenate(parts)


def _jacobians(model, st, p):
    dim, steps, apply = model.step_jacobian(st, p)
    return [apply(t, np.eye(dim)) for t in range(steps)]


@pytest.mark.parametrize("cell", CELLS)
def test_step_jacobian_matches_finite_differences_of_the_forward_pass(cell):
    model = make(cell)
    p, x, _, init = problem(model, T=1, B=1)
    p = model.check_params(p)
    base = tuple(init[k] for k in model.initial_states)
    st = model.states(p, x, None, base)
    J = _jacobians(model, st, p)[0]
    s0 = np.concatenate([b[0] for b in base])
    eps = 1e-6
    fd = np.empty_like(J)
    for i in range(s0.size):
        cols = []
        for sign in (1, -1):
            s = s0.copy()
            s[i] += sign * eps
            pert = tuple(s[k * H:(k + 1) * H][None, :] for k in range(len(base)))
            cols.append(_state(model, model.states(p, x, None, pert), 0))
        fd[:, i] = (cols[0] - cols[1]) / (2 * eps)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", CELLS)
def test_adjoint_is_the_product_of_step_jacobians(cell):
    model = make(cell)
    p, x, _, _ = problem(model, T=12, B=1)
    p = model.check_params(p)
    st = model.states(p, x)
    rng = np.random.default_rng(3)
    delta = rng.standard_normal((1, H))
    lh, _ = model.adjoint_lognorms(st, p, delta)
    Js = _jacobians(model, st, p)
    lam = np.concatenate([delta[0], np.zeros(Js[0].shape[0] - H)])
    want = np.empty(len(Js))
    for t in range(len(Js) - 1, -1, -1):
        want[t] = np.log(np.linalg.norm(lam[:H]))
        lam = Js[t].T @ lam
    np.testing.assert_allclose(lh[:, 0], want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_lyapunov_is_the_qr_method_on_explicit_jacobians(cell):
    model = make(cell)
    p, x, _, _ = problem(model, T=40, B=1)
    p = model.check_params(p)
    st = model.states(p, x)
    k = 3
    got = model.lyapunov(st, p, k, np.random.default_rng(5), transient=10)
    Js = _jacobians(model, st, p)
    q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((Js[0].shape[0], k)))
    acc = np.zeros(k)
    for t, J in enumerate(Js):
        q, r = np.linalg.qr(J @ q)
        if t >= 10:
            with np.errstate(divide="ignore"):  # a dead ReLU unit: ln 0 = -inf
                acc += np.log(np.abs(np.diag(r)))
    np.testing.assert_allclose(got, np.sort(acc / (len(Js) - 10))[::-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss,score", [("mse", "last"), ("xent", "all")])
def test_the_numpy_twin_agrees(cell, loss, score):
    """The kernels against the cell's plain-numpy twin (tests/naive.py, or
    tests/naive_<cell>.py for a later cell), in float64: loss, every gradient,
    the norms and dL/dh0, on a ragged batch from a given h0."""
    model = make(cell)
    p, x, target, init = problem(model)
    T, B = x.shape[:2]
    if loss == "xent":
        target = np.random.default_rng(2).integers(0, O, (T, B))
    lengths = np.array([6, 4, 1])
    res = run(model, p, x, target, init, loss=loss, score=score, lengths=lengths)
    twin = naive.loss_and_grads(cell, p, x, target, activation=model.activation, loss=loss,
                                score=score, lengths=lengths, **init)

    def close(got, want, what):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale, err_msg=what)

    close(res.loss, twin["loss"], "loss")
    for k in p:
        close(res.grads[k], twin["grads"][k], k)
    close(res.grad_norms, twin["grad_norms"], "grad_norms")
    close(res.h0_grad, twin["h0_grad"], "h0_grad")
