"""The expRNN cell (gradpath.cells.exprnn): kernels against a numpy twin
(tests/naive_exprnn.py), central differences through the exponential map,
PyTorch autograd with torch.matrix_exp; float32 against float64; the threaded
path against the serial one; validation; the probe's adjoint, step Jacobian
and Lyapunov exponents; orthogonality kept under training; initialisation.
"""

from __future__ import annotations

import math
import pickle

import naive_exprnn as naive
import numpy as np
import pytest
import scipy.linalg

from gradpath.cells.exprnn import (
    MODRELU_BIAS,
    PAPER_LEARNING_RATES,
    ExpRNN,
    grad_A,
    recurrent_weight,
)
from gradpath.cells.rnn import RNN
from gradpath.kernels import parallel

LOSSES = ["mse", "xent"]
SCORES = ["last", "all"]
NAMES = ["W_ih", "A", "b", "W_out", "b_out"]


def problem(loss="mse", score="last", T=9, B=5, D=3, H=6, O=3, ragged=True, with_h0=True,
            init="orthogonal", seed=0, bias=0.3):
    """A small problem: model, params (A with a random skew part on top of the
    init, b ~ N(0, bias^2) so some units are cut off by modReLU and some not),
    x, target, lengths, h0 (all float64)."""
    model = ExpRNN(D, H, O)
    p = model.init_params(init, seed=seed)
    rng = np.random.default_rng(100 + seed)
    p["A"] = p["A"] + 0.3 * rng.standard_normal((H, H))
    p["b"] = bias * rng.standard_normal(H)
    p["b_out"] = 0.1 * rng.standard_normal(O)
    x = rng.standard_normal((T, B, D))
    lengths = rng.integers(1, T + 1, B) if ragged else None
    if ragged:
        lengths[0] = T
    h0 = 0.5 * rng.standard_normal((B, H)) if with_h0 else None
    lead = (B,) if score == "last" else (T, B)
    if loss == "mse":
        target = rng.standard_normal((*lead, O))
    else:
        target = rng.integers(0, O, lead)
    return model, p, x, target, lengths, h0


def kernel(model, p, x, target, lengths, h0, loss, score):
    return model.loss_and_grads(p, x, target, loss=loss, score=score, lengths=lengths, h0=h0)


def close(a, b, rtol=1e-12, atol=None):
    """Entrywise within ``rtol``, or within ``rtol`` of the array's largest
    entry (the cell's W_hh, from an eigendecomposition, differs from the
    twin's, scipy's Pade expm, by a few ulp, and that reaches every gradient)."""
    b = np.asarray(b)
    if atol is None:
        atol = rtol * float(np.abs(b).max()) if b.size else 0.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# -- the numpy twin -------------------------------------------------------------


@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zero-h0"])
@pytest.mark.parametrize("ragged", [True, False], ids=["ragged", "full"])
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("loss", LOSSES)
def test_kernel_matches_the_numpy_twin(loss, score, ragged, with_h0):
    model, p, x, target, lengths, h0 = problem(loss, score, ragged=ragged, with_h0=with_h0)
    got = kernel(model, p, x, target, lengths, h0, loss, score)
    ref = naive.loss_and_grads(p, x, target, "modrelu", loss, score, lengths, h0)
    close(got.loss, ref["loss"])
    for k in NAMES:
        close(got.grads[k], ref["grads"][k])
        assert got.grads[k].shape == p[k].shape and got.grads[k].dtype == p[k].dtype
    close(got.grad_norms, ref["grad_norms"])
    close(got.h0_grad, ref["h0_grad"])
    assert got.cell_grad_norms is None and got.c0_grad is None
    fw = model.forward(p, x, lengths=lengths, h0=h0)
    close(fw.h, ref["hs"][1:])
    close(fw.y, ref["ys"])
    assert fw.c is None
    # some units are cut off by modReLU and some pass: both branches are exercised
    T, B, _ = x.shape
    n = np.full(B, T) if lengths is None else lengths
    live = ref["hs"][1:][np.arange(T)[:, None] < n[None, :]]
    assert 0 < (live == 0).mean() < 0.9


def test_the_suites_twin_dispatch_reaches_this_twin():
    """tests/naive.py finds a later cell's twin as naive_<cell> (the bench's
    kernel-vs-twin suite calls it with an activation, ignored here)."""
    import naive as twins

    model, p, x, target, lengths, h0 = problem("xent", "all")
    got = twins.loss_and_grads("exprnn", p, x, target, "tanh", "xent", "all", lengths, h0)
    ref = naive.loss_and_grads(p, x, target, "modrelu", "xent", "all", lengths, h0)
    assert got["loss"] == ref["loss"] and got["cell_grad_norms"] is None
    for k in NAMES:
        np.testing.assert_array_equal(got["grads"][k], ref["grads"][k])
    kern = kernel(model, p, x, target, lengths, h0, "xent", "all")
    close(naive.loss_only(p, x, target, "modrelu", "xent", "all", lengths, h0), kern.loss)


@pytest.mark.parametrize("D", [3, 12], ids=["fused-input", "gemm-input"])
def test_long_sequences_use_several_gradient_chunks(D):
    """T = 80 with 3 rows: the weight gradients are accumulated over 5 chunks of 16 steps."""
    model, p, x, target, lengths, h0 = problem("mse", "all", T=80, B=3, D=D, H=7)
    got = kernel(model, p, x, target, lengths, h0, "mse", "all")
    ref = naive.loss_and_grads(p, x, target, "modrelu", "mse", "all", lengths, h0)
    for k in NAMES:
        close(got.grads[k], ref["grads"][k])
    close(got.h0_grad, ref["h0_grad"])


def test_the_cells_exponential_agrees_with_scipy():
    """The cell's eigendecomposition-based expm and Frechet adjoint against
    scipy's (Pade) ones, which the twin uses, at sizes and scales where
    eigenvalues cluster (H = 1, 2) and spread."""
    rng = np.random.default_rng(3)
    for H in (1, 2, 7, 16, 64):
        for scale in (1e-3, 1.0, 3.0):
            A = scale * rng.standard_normal((H, H))
            X = A - A.T
            G = rng.standard_normal((H, H))
            close(recurrent_weight(A), scipy.linalg.expm(X), atol=1e-13)
            dX = scipy.linalg.expm_frechet(X.T, G, compute_expm=False)
            close(grad_A(A, G), dX - dX.T, atol=1e-13 * max(1.0, scale))
            close(grad_A(A, G), naive.grad_A(A, G), atol=1e-13 * max(1.0, scale))


def test_grad_A_is_the_adjoint_of_the_directional_derivative():
    """<dL/dA, E> = d/de L(A + eE) at e = 0 for L(A) = <G, expm(A - A^T)>,
    by central differences in random directions E."""
    rng = np.random.default_rng(4)
    H = 9
    A = rng.standard_normal((H, H))
    G = rng.standard_normal((H, H))
    dA = grad_A(A, G)
    np.testing.assert_allclose(dA, -dA.T, rtol=0, atol=1e-14)  # skew
    eps = 1e-6
    for _ in range(5):
        E = rng.standard_normal((H, H))
        fd = (np.sum(G * naive.w_hh(A + eps * E)) - np.sum(G * naive.w_hh(A - eps * E))) / (
            2 * eps)
        assert np.sum(dA * E) == pytest.approx(fd, rel=1e-8, abs=1e-9)


# -- finite differences -----------------------------------------------------------


@pytest.mark.parametrize(("loss", "score"), [("mse", "last"), ("xent", "all")])
def test_gradients_match_central_differences(loss, score):
    """Every entry of every parameter, A's through the exponential map, and h0."""
    model, p, x, target, lengths, h0 = problem(loss, score, T=7, B=4, H=5, O=3)
    got = kernel(model, p, x, target, lengths, h0, loss, score)
    eps = 1e-6

    def f(q, h):
        return model.loss_and_grads(q, x, target, loss=loss, score=score, lengths=lengths,
                                    h0=h).loss

    for k in NAMES:
        num = np.zeros_like(p[k])
        for i in np.ndindex(p[k].shape):
            plus = {n: v.copy() for n, v in p.items()}
            minus = {n: v.copy() for n, v in p.items()}
            plus[k][i] += eps
            minus[k][i] -= eps
            num[i] = (f(plus, h0) - f(minus, h0)) / (2 * eps)
        np.testing.assert_allclose(got.grads[k], num, rtol=1e-6, atol=1e-8, err_msg=k)
    num = np.zeros_like(h0)
    for i in np.ndindex(h0.shape):
        hp, hm = h0.copy(), h0.copy()
        hp[i] += eps
        hm[i] -= eps
        num[i] = (f(p, hp) - f(p, hm)) / (2 * eps)
    np.testing.assert_allclose(got.h0_grad, num, rtol=1e-6, atol=1e-8, err_msg="h0")


def test_the_symmetric_part_of_A_changes_nothing():
    """A and A + S (S symmetric) are one network: same loss and gradients."""
    model, p, x, target, lengths, h0 = problem()
    S = np.random.default_rng(9).standard_normal(p["A"].shape)
    q = {**p, "A": p["A"] + S + S.T}
    a = kernel(model, p, x, target, lengths, h0, "mse", "last")
    b = kernel(model, q, x, target, lengths, h0, "mse", "last")
    close(b.loss, a.loss)
    for k in NAMES:
        close(b.grads[k], a.grads[k], rtol=1e-10)


# -- float32 ----------------------------------------------------------------------


@pytest.mark.parametrize("score", SCORES)
def test_float32_agrees_with_float64(score):
    model, p, x, target, lengths, h0 = problem("mse", score, T=12, B=6, H=8)
    ref = kernel(model, p, x, target, lengths, h0, "mse", score)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    got = kernel(model, p32, x.astype(np.float32), target.astype(np.float32), lengths,
                 h0.astype(np.float32), "mse", score)
    assert got.h0_grad.dtype == np.float32
    np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-5)
    for k in NAMES:
        g, r = got.grads[k], ref.grads[k]
        assert g.dtype == np.float32 and g.flags.c_contiguous
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * np.abs(r).max(), err_msg=k)
    np.testing.assert_allclose(got.grad_norms, ref.grad_norms, rtol=1e-4,
                               atol=1e-5 * ref.grad_norms.max())
    np.testing.assert_allclose(got.h0_grad, ref.h0_grad, rtol=1e-4,
                               atol=1e-5 * np.abs(ref.h0_grad).max())
    W32 = model.recurrent_weight(p32)
    assert W32.dtype == np.float32 and W32.flags.c_contiguous and W32.flags.writeable
    # expm of the float32 A, taken in float64 and rounded once
    ref32 = naive.w_hh(p32["A"].astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(W32, ref32, rtol=0, atol=np.finfo(np.float32).eps)


# -- threads -----------------------------------------------------------------------


@pytest.fixture
def threads(monkeypatch):
    def use(n: int) -> None:
        monkeypatch.setenv(parallel.THREADS_ENV, str(n))
    return use


def outputs(res) -> list[np.ndarray]:
    return [np.array(res.loss), res.grad_norms, res.h0_grad, *res.grads.values()]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("D", [3, 12], ids=["fused-input", "gemm-input"])
@pytest.mark.parametrize("score", SCORES)
def test_threaded_path_is_bit_identical_to_the_serial_one(threads, score, D, dtype):
    """60 x 37 x 48 x 48 is above the split threshold: the rows run in two
    blocks, one after the other with one thread, side by side with two."""
    T, B, H = 60, 37, 48
    assert T * B * H * H >= parallel.PARALLEL_WORK and B >= 16
    assert parallel.n_blocks(T, B, H, ExpRNN.gates * H) == parallel.BLOCKS > 1
    model, p, x, target, lengths, h0 = problem("mse", score, T=T, B=B, D=D, H=H, O=2)
    p = {k: v.astype(dtype) for k, v in p.items()}
    x, target, h0 = x.astype(dtype), target.astype(dtype), h0.astype(dtype)
    threads(1)
    ref = outputs(kernel(model, p, x, target, lengths, h0, "mse", score))
    threads(2)
    for a, b in zip(outputs(kernel(model, p, x, target, lengths, h0, "mse", score)), ref,
                    strict=True):
        assert a.tobytes() == b.tobytes()
    if dtype == np.float64:  # and the split path is right, not just repeatable
        twin = naive.loss_and_grads(p, x, target, "modrelu", "mse", score, lengths, h0)
        got = kernel(model, p, x, target, lengths, h0, "mse", score)
        for k in NAMES:
            close(got.grads[k], twin["grads"][k], rtol=1e-10)
        close(got.h0_grad, twin["h0_grad"], rtol=1e-10)


def test_forward_states_do_not_depend_on_the_thread_count(threads):
    model, p, x, _, lengths, h0 = problem(T=60, B=37, D=3, H=48, O=2)
    got = {}
    for n in (1, 2):
        threads(n)
        got[n] = model.forward(p, x, lengths=lengths, h0=h0).h
    assert got[1].tobytes() == got[2].tobytes()


# -- validation ------------------------------------------------------------------------


def test_bad_inputs_raise_value_errors_naming_the_argument():
    model, p, x, target, lengths, h0 = problem()
    H = model.hidden_size

    def call(q=p, xx=x, tt=target, **kw):
        return model.loss_and_grads(q, xx, tt, **kw)

    for name, v in p.items():  # every parameter: shape and NaN
        with pytest.raises(ValueError, match=rf"^params\['{name}'\]: expected shape"):
            call({**p, name: v[..., :-1]})
        nan = v.copy()
        nan.flat[0] = np.nan
        with pytest.raises(ValueError, match=rf"^params\['{name}'\]: contains NaN"):
            call({**p, name: nan})
    with pytest.raises(ValueError, match=r"params\['A'\].*shape"):
        call({**p, "A": np.zeros((H, H + 1))})
    with pytest.raises(ValueError, match=r"params\['A'\].*dtype"):
        call({**p, "A": p["A"].astype(np.int64)})
    with pytest.raises(ValueError, match=r"params\['W_ih'\].*dtype"):
        call({**p, "A": p["A"].astype(np.float32)})
    with pytest.raises(ValueError, match=r"params\['A'\]: expected a numpy array"):
        call({**p, "A": p["A"].tolist()})
    with pytest.raises(ValueError, match=r"params.*missing.*'A'"):
        call({k: v for k, v in p.items() if k != "A"})
    with pytest.raises(ValueError, match=r"params.*unexpected.*W_hh"):
        call({**p, "W_hh": np.eye(H)})
    with pytest.raises(ValueError, match="^x: expected dtype"):
        call(xx=x.astype(np.float32))
    with pytest.raises(ValueError, match="^x: expected shape"):
        call(xx=x[..., :1])
    with pytest.raises(ValueError, match="^target: expected shape"):
        call(tt=target[:1])
    with pytest.raises(ValueError, match="^h0: expected shape"):
        call(h0=np.zeros((2, H)))
    with pytest.raises(ValueError, match="^lengths"):
        call(lengths=np.zeros(x.shape[1], int))
    with pytest.raises(ValueError, match="^loss"):
        call(loss="hinge")
    with pytest.raises(ValueError, match="hidden_size"):
        ExpRNN(3, 0, 1)
    with pytest.raises(ValueError, match="input_size"):
        ExpRNN(0, 3, 1)
    with pytest.raises(ValueError, match="init: unknown value 'uniform'"):
        model.init_params("uniform")
    for gain in (-1.0, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="gain"):
            model.init_params("identity", gain=gain)
    with pytest.raises(ValueError, match="input_scale"):
        model.init_params("identity", input_scale=-1.0)
    with pytest.raises(ValueError, match="dtype"):
        model.init_params("identity", dtype=np.float16)
    with pytest.raises(ValueError, match="forget_bias"):
        model.init_params("identity", forget_bias=math.inf)
    with pytest.raises(ValueError, match="update_bias"):
        model.init_params("identity", update_bias=True)


# -- the probe: adjoint, step Jacobian and Lyapunov exponents ------------------------------


def test_adjoint_lognorms_match_the_numpy_twin():
    model, p, x, *_ = problem(T=40, B=4, H=6, with_h0=False, ragged=False)
    st = model.states(model.check_params(p), x)
    delta = np.random.default_rng(5).standard_normal((4, 6))
    got, cell = model.adjoint_lognorms(st, p, delta)
    assert cell is None
    ref = naive.adjoint_lognorms(st[0], naive.w_hh(p["A"]), delta)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    hs, _, _ = naive.forward(p, x)  # the states are the twin's
    close(st[0], hs)


def test_adjoint_is_the_product_of_step_jacobians():
    model, p, x, *_ = problem(T=12, B=1, H=5, with_h0=False, ragged=False)
    p = model.check_params(p)
    st = model.states(p, x)
    delta = np.random.default_rng(3).standard_normal((1, 5))
    lh, _ = model.adjoint_lognorms(st, p, delta)
    dim, steps, apply = model.step_jacobian(st, p)
    assert (dim, steps) == (5, 12)
    lam = delta[0].copy()
    want = np.empty(steps)
    for t in range(steps - 1, -1, -1):
        want[t] = np.log(np.linalg.norm(lam))
        lam = apply(t, np.eye(dim)).T @ lam
    np.testing.assert_allclose(lh[:, 0], want, rtol=0, atol=1e-10)


def test_step_jacobian_matches_finite_differences_of_the_forward_pass():
    model, p, x, *_ = problem(T=1, B=1, H=6, with_h0=False, ragged=False)
    p["b"][:2] = -10.0  # units 0 and 1 cut off
    p = model.check_params(p)
    h0 = 0.4 * np.random.default_rng(2).standard_normal((1, 6))
    st = model.states(p, x, None, (h0,))
    _, _, apply = model.step_jacobian(st, p)
    J = apply(0, np.eye(6))
    W = naive.w_hh(p["A"])
    on = st[0][1, 0] != 0
    assert 0 < on.sum() < 6  # a cut-off unit: a zero row
    close(J, on[:, None] * W)
    eps = 1e-6
    fd = np.empty_like(J)
    for i in range(6):
        cols = []
        for sign in (1, -1):
            h = h0.copy()
            h[0, i] += sign * eps
            cols.append(model.states(p, x, None, (h,))[0][1, 0])
        fd[:, i] = (cols[0] - cols[1]) / (2 * eps)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)


def explicit_lyapunov(st, W, k, rng, transient=0):
    """Top-k exponents by QR on the explicit (H, H) step Jacobians of sequence 0."""
    hs = st[0][:, 0]
    H = hs.shape[1]
    q, _ = np.linalg.qr(rng.standard_normal((H, k)))
    acc = np.zeros(k)
    n = 0
    for t in range(hs.shape[0] - 1):
        J = np.diag((hs[t + 1] != 0).astype(float)) @ W
        q, r = np.linalg.qr(J @ q)
        if t >= transient:
            with np.errstate(divide="ignore"):
                acc += np.log(np.abs(np.diag(r)))
            n += 1
    return np.sort(acc / n)[::-1]


@pytest.mark.parametrize("k", [1, 3])
def test_lyapunov_matches_qr_on_explicit_jacobians(k):
    """Against the twin's W_hh and explicit diag([h != 0]) W_hh. (Not k = H:
    a step with a cut-off unit makes J_t singular, and the last exponent is
    then set by rounding; the full spectrum is checked with every unit on.)"""
    model, p, x, *_ = problem(T=200, B=2, H=6, with_h0=False, ragged=False, bias=0.05)
    st = model.states(model.check_params(p), x)
    got = model.lyapunov(st, p, k, np.random.default_rng(7), transient=10)
    ref = explicit_lyapunov(st, naive.w_hh(p["A"]), k, np.random.default_rng(7), 10)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_with_every_unit_on_the_adjoint_keeps_its_norm():
    """modReLU's bias above every |z| keeps every unit on: J_t = W_hh is
    orthogonal, so ||dL/dh_t|| is ||delta|| at every lag (no vanishing, no
    exploding) and every Lyapunov exponent is 0."""
    T, B, H = 500, 3, 8
    model = ExpRNN(2, H, 1)
    p = model.init_params("orthogonal", seed=3)
    p["b"][:] = 1.0
    x = np.random.default_rng(0).standard_normal((T, B, 2))
    st = model.states(model.check_params(p), x)
    assert np.all(st[0][1:] != 0)
    delta = np.random.default_rng(1).standard_normal((B, H))
    got, _ = model.adjoint_lognorms(st, p, delta)
    want = np.broadcast_to(np.log(np.linalg.norm(delta, axis=1)), (T, B))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)
    lyap = model.lyapunov(st, p, H, np.random.default_rng(2))
    np.testing.assert_allclose(lyap, 0.0, rtol=0, atol=1e-13)


# -- orthogonality under training -----------------------------------------------------------


def test_w_hh_stays_orthogonal_under_1000_sgd_updates_of_A():
    """Plain SGD on every parameter with the cell's own gradients: A moves far
    (W_hh with it) and the loss falls, yet expm(A - A^T) stays orthogonal to
    1e-12 (a projection-based method would drift and need re-orthogonalising)."""
    H = 16
    model, p, x, target, lengths, h0 = problem("mse", "last", T=10, B=8, D=3, H=H, O=2)
    A0 = p["A"].copy()
    W0 = model.recurrent_weight(p)
    losses = []
    for _ in range(1000):
        res = kernel(model, p, x, target, lengths, h0, "mse", "last")
        losses.append(res.loss)
        for k in NAMES:
            p[k] -= 0.05 * res.grads[k]
    W = model.recurrent_weight(p)
    assert np.linalg.norm(W.T @ W - np.eye(H)) <= 1e-12
    assert np.linalg.norm(W @ W.T - np.eye(H)) <= 1e-12
    assert np.linalg.det(W) == pytest.approx(1.0, abs=1e-12)  # SO(H): expm's image
    assert np.linalg.norm(p["A"] - A0) > 1.0
    assert np.linalg.norm(W - W0) > 0.5
    assert losses[-1] < 0.5 * losses[0]
    # the gradient steps never touched A's symmetric part
    close(p["A"] + p["A"].T, A0 + A0.T, atol=1e-13)


# -- initialisation ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["identity", "gaussian", "orthogonal"])
def test_init_is_deterministic_by_seed(init):
    model = ExpRNN(3, 40, 2)
    a = model.init_params(init, seed=4)
    b = model.init_params(init, seed=4)
    c = model.init_params(init, seed=5)
    assert list(a) == NAMES
    shapes = model.param_shapes()
    for k in NAMES:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].shape == shapes[k] and a[k].dtype == np.float64
        assert a[k].flags.c_contiguous and a[k].flags.writeable
    for k in ("W_ih", "b", "W_out"):
        assert not np.array_equal(a[k], c[k])
    if init != "identity":
        assert not np.array_equal(a["A"], c["A"])
    np.testing.assert_array_equal(a["b_out"], 0.0)
    f32 = model.init_params(init, seed=4, dtype=np.float32)
    for k in NAMES:
        assert f32[k].dtype == np.float32
        np.testing.assert_array_equal(f32[k], a[k].astype(np.float32))


def _angles(A: np.ndarray) -> np.ndarray:
    """The rotation angles A[2i+1, 2i]; checks A has nothing else."""
    H = A.shape[0]
    idx = 2 * np.arange(H // 2)
    rest = A.copy()
    rest[idx + 1, idx] = 0.0
    np.testing.assert_array_equal(rest, 0.0)
    return A[idx + 1, idx]


def test_init_maps_the_suites_choices_onto_the_authors_initialisations():
    H = 2000
    model = ExpRNN(3, H, 2)
    ident = model.init_params("identity")
    np.testing.assert_array_equal(ident["A"], 0.0)
    np.testing.assert_array_equal(model.recurrent_weight(ident), np.eye(H))
    henaff = _angles(model.init_params("orthogonal", seed=1)["A"])  # U(-pi, pi)
    assert henaff.min() >= -np.pi and henaff.max() < np.pi
    assert henaff.mean() == pytest.approx(0.0, abs=0.15)
    assert np.mean(np.abs(henaff) > np.pi / 2) == pytest.approx(0.5, abs=0.05)
    cayley = _angles(model.init_params("gaussian", seed=1)["A"])  # -tan(U(0, pi/2) / 2)
    assert cayley.min() >= -1.0 and cayley.max() <= 0.0
    # P(-tan(s/2) > -t) = P(s < 2 atan t) = 4 atan(t) / pi
    assert np.mean(cayley > -0.5) == pytest.approx(4 * math.atan(0.5) / math.pi, abs=0.05)
    # the other weights: W_ih Kaiming N(0, 2 input_scale^2 / D), b U(-0.01, 0.01), W_out N(0, 1/H)
    wide = model.init_params("identity", input_scale=2.0, seed=3)
    assert wide["W_ih"].std() == pytest.approx(2.0 * math.sqrt(2.0 / 3), rel=0.05)
    assert wide["W_out"].std() == pytest.approx(1.0 / math.sqrt(H), rel=0.05)
    assert np.abs(wide["b"]).max() <= MODRELU_BIAS
    assert wide["b"].std() == pytest.approx(MODRELU_BIAS / math.sqrt(3), rel=0.05)
    # identity draws nothing for A: W_out is the vanilla RNN's, W_ih sqrt(2) times it
    rnn = RNN(3, H, 2).init_params("identity", seed=3, input_scale=2.0)
    np.testing.assert_array_equal(wide["W_out"], rnn["W_out"])
    np.testing.assert_allclose(wide["W_ih"], math.sqrt(2.0) * rnn["W_ih"], rtol=1e-15)


@pytest.mark.parametrize("init", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("H", [6, 7])
def test_init_gives_the_authors_recurrent_map(init, H):
    """The authors' layer maps h to h @ B (row vectors), B = expm(U - U^T)
    with U the strictly upper triangle of their parameter, which their
    initialisers set to D[2i, 2i+1] = theta_i (``create_diag_``); the cell's
    W_hh h is that map. For odd H the last unit is left alone."""
    model = ExpRNN(2, H, 1)
    p = model.init_params(init, seed=2)
    theta = _angles(p["A"])
    assert theta.shape == (H // 2,)
    diag_z = np.zeros(H - 1)
    diag_z[::2] = theta
    U = np.diag(diag_z, k=1)
    B = scipy.linalg.expm(U - U.T)
    h = np.random.default_rng(0).standard_normal((4, H))
    W = model.recurrent_weight(p)
    close(h @ W.T, h @ B, atol=1e-15)
    if H % 2:
        np.testing.assert_array_equal(W[-1], np.eye(H)[-1])
    # block-diagonal rotations by theta_i
    for i, th in enumerate(theta):
        blk = W[2 * i:2 * i + 2, 2 * i:2 * i + 2]
        close(blk, [[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], atol=1e-15)


def test_gain_is_checked_and_has_no_effect():
    """W_hh is orthogonal whatever A: no gain can scale it and stay in the group."""
    model = ExpRNN(3, 10, 2)
    for init in ("identity", "gaussian", "orthogonal"):
        a = model.init_params(init, gain=1.0, seed=6)
        for gain in (0.0, 0.5, 3):
            b = model.init_params(init, gain=gain, seed=6)
            for k in NAMES:
                np.testing.assert_array_equal(a[k], b[k])


def test_class_attributes_and_pickling():
    model = ExpRNN(3, 4, 2)
    assert ExpRNN.name == "exprnn" and ExpRNN.gates == 1
    assert ExpRNN.activations == () and ExpRNN.fixed_activation == "modrelu"
    assert model.activation == "modrelu" and ExpRNN(3, 4, 2, "tanh").activation == "modrelu"
    assert [(m.label, m.cell, m.activation, m.title) for m in ExpRNN.models] == [
        ("exprnn", "exprnn", "modrelu", "expRNN")]
    assert ExpRNN.dtype_param == "A" and ExpRNN.initial_states == ("h0",)
    assert ExpRNN.stored_per_step == 1 and ExpRNN.recurrent_gates() == 1
    assert ExpRNN.block_parts and ExpRNN.cell_state is None
    assert ExpRNN.lr_groups == {"A": "lr_orth"}
    assert model.param_shapes() == {"W_ih": (4, 3), "A": (4, 4), "b": (4,), "W_out": (2, 4),
                                    "b_out": (2,)}
    assert repr(model) == "ExpRNN(input_size=3, hidden_size=4, output_size=2)"
    # the authors' settings: lr_orth = lr / 10 throughout
    assert PAPER_LEARNING_RATES[("copy", 190)] == ("henaff", 2e-4, 2e-5)
    for _, lr, lr_orth in PAPER_LEARNING_RATES.values():
        assert lr_orth == pytest.approx(lr / 10)
    copy = pickle.loads(pickle.dumps(model))
    _, _, x, target, lengths, _ = problem(D=3, H=4, O=2)
    p = model.init_params("gaussian", seed=2)
    a = kernel(model, p, x, target, lengths, None, "mse", "last")
    b = kernel(copy, p, x, target, lengths, None, "mse", "last")
    for k in NAMES:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def test_zero_pre_activations_give_zero_states():
    """modReLU's sign(0) = 0: with x = 0 and h0 = 0 every state is 0 whatever b
    (b > 0 here), and no gradient reaches b, W_ih or A."""
    model = ExpRNN(2, 5, 1)
    p = model.init_params("orthogonal", seed=1)
    p["b"][:] = 0.5
    x = np.zeros((6, 3, 2))
    res = model.loss_and_grads(p, x, np.ones((3, 1)))
    np.testing.assert_array_equal(model.forward(p, x).h, 0.0)
    for k in ("W_ih", "A", "b"):
        np.testing.assert_array_equal(res.grads[k], 0.0)
    # dL/dh_{T-1} = dL/dy W_out reaches the last state and stops there
    dy = (p["b_out"] - 1.0) / 3
    close(res.grad_norms[-1], np.full(3, np.linalg.norm(dy @ p["W_out"])))
    np.testing.assert_array_equal(res.grad_norms[:-1], 0.0)
    np.testing.assert_array_equal(res.h0_grad, 0.0)


# -- PyTorch -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("loss", "score"), [("mse", "last"), ("mse", "all"), ("xent", "last"),
                                             ("xent", "all")])
def test_matches_pytorch_autograd(loss, score):
    torch = pytest.importorskip("torch")
    model, p, x, target, lengths, h0 = problem(loss, score, T=11, B=5, H=6, O=3)
    got = kernel(model, p, x, target, lengths, h0, loss, score)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.items()}
    th0 = torch.tensor(h0, dtype=torch.float64, requires_grad=True)
    tx = torch.tensor(x, dtype=torch.float64)
    W = torch.linalg.matrix_exp(tp["A"] - tp["A"].T)
    T, B, _ = x.shape
    h = th0
    total, n = 0.0, 0
    for t in range(T):
        live = torch.tensor(t < lengths, dtype=torch.float64)[:, None]
        z = tx[t] @ tp["W_ih"].T + h @ W.T
        h = live * (torch.sign(z) * torch.relu(torch.abs(z) + tp["b"]))
        y = h @ tp["W_out"].T + tp["b_out"]
        for b in range(B):
            scored = t == lengths[b] - 1 if score == "last" else t < lengths[b]
            if not scored:
                continue
            tgt = target[b] if score == "last" else target[t, b]
            if loss == "mse":
                e = y[b] - torch.tensor(tgt, dtype=torch.float64)
                total = total + 0.5 * (e * e).sum()
            else:
                total = total - torch.log_softmax(y[b], 0)[int(tgt)]
            n += 1
    L = total / n
    L.backward()
    np.testing.assert_allclose(got.loss, L.item(), rtol=1e-9, atol=1e-12)
    for k in NAMES:
        np.testing.assert_allclose(got.grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=k)
    np.testing.assert_allclose(got.h0_grad, th0.grad.numpy(), rtol=1e-9, atol=1e-12)
