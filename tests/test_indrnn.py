"""The IndRNN cell (gradpath.cells.indrnn): kernels against a numpy twin
(tests/naive_indrnn.py), finite differences and PyTorch autograd; float32
against float64; the threaded path against the serial one; validation; the
probe's adjoint and Lyapunov exponents; the |u| projection; initialisation.
"""

from __future__ import annotations

import math
import pickle

import naive_indrnn as naive
import numpy as np
import pytest

from gradpath.cells.indrnn import TANH_HEADROOM, U_MAGNITUDE, IndRNN
from gradpath.cells.rnn import RNN
from gradpath.kernels import parallel

ACTS = ["relu", "tanh"]
LOSSES = ["mse", "xent"]
SCORES = ["last", "all"]
NAMES = ["W_ih", "u", "b", "W_out", "b_out"]


def problem(activation="relu", loss="mse", score="last", T=9, B=5, D=3, H=6, O=3, ragged=True,
            with_h0=True, init="gaussian", seed=0):
    """A small problem: model, params (b random so ReLU units differ), x,
    target, lengths, h0 (all float64)."""
    model = IndRNN(D, H, O, activation)
    p = model.init_params(init, gain=1.0, seed=seed)
    rng = np.random.default_rng(100 + seed)
    p["b"] = 0.3 * rng.standard_normal(H)
    p["b_out"] = 0.1 * rng.standard_normal(O)
    x = rng.standard_normal((T, B, D))
    lengths = rng.integers(1, T + 1, B) if ragged else None
    if ragged:
        lengths[0] = T
    h0 = 0.5 * rng.standard_normal((B, H)) if with_h0 else None
    if activation == "relu" and h0 is not None:
        h0 = np.abs(h0)
    lead = (B,) if score == "last" else (T, B)
    if loss == "mse":
        target = rng.standard_normal((*lead, O))
    else:
        target = rng.integers(0, O, lead)
    return model, p, x, target, lengths, h0


def kernel(model, p, x, target, lengths, h0, loss, score):
    return model.loss_and_grads(p, x, target, loss=loss, score=score, lengths=lengths, h0=h0)


def close(a, b, rtol=1e-12, atol=1e-15):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# -- the numpy twin -------------------------------------------------------------


@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zero-h0"])
@pytest.mark.parametrize("ragged", [True, False], ids=["ragged", "full"])
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTS)
def test_kernel_matches_the_numpy_twin(activation, loss, score, ragged, with_h0):
    model, p, x, target, lengths, h0 = problem(activation, loss, score, ragged=ragged,
                                               with_h0=with_h0)
    got = kernel(model, p, x, target, lengths, h0, loss, score)
    ref = naive.loss_and_grads(p, x, target, activation, loss, score, lengths, h0)
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


@pytest.mark.parametrize("D", [3, 12], ids=["fused-input", "gemm-input"])
def test_long_sequences_use_several_gradient_chunks(D):
    """T = 80 with 3 rows: dW_ih is accumulated over 5 chunks of 16 steps."""
    model, p, x, target, lengths, h0 = problem("relu", "mse", "all", T=80, B=3, D=D, H=7)
    got = kernel(model, p, x, target, lengths, h0, "mse", "all")
    ref = naive.loss_and_grads(p, x, target, "relu", "mse", "all", lengths, h0)
    for k in NAMES:
        close(got.grads[k], ref["grads"][k])
    close(got.h0_grad, ref["h0_grad"])


# -- finite differences -----------------------------------------------------------


@pytest.mark.parametrize(("loss", "score"), [("mse", "last"), ("xent", "all")])
@pytest.mark.parametrize("activation", ACTS)
def test_gradients_match_central_differences(activation, loss, score):
    model, p, x, target, lengths, h0 = problem(activation, loss, score, T=7, B=4, H=5, O=3)
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


# -- float32 ----------------------------------------------------------------------


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("activation", ACTS)
def test_float32_agrees_with_float64(activation, score):
    model, p, x, target, lengths, h0 = problem(activation, "mse", score, T=12, B=6, H=8)
    ref = kernel(model, p, x, target, lengths, h0, "mse", score)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    got = kernel(model, p32, x.astype(np.float32), target.astype(np.float32), lengths,
                 h0.astype(np.float32), "mse", score)
    assert got.grads["u"].dtype == np.float32 and got.h0_grad.dtype == np.float32
    np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-5)
    for k in NAMES:
        g, r = got.grads[k], ref.grads[k]
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * np.abs(r).max(), err_msg=k)
    np.testing.assert_allclose(got.grad_norms, ref.grad_norms, rtol=1e-4,
                               atol=1e-5 * ref.grad_norms.max())
    np.testing.assert_allclose(got.h0_grad, ref.h0_grad, rtol=1e-4,
                               atol=1e-5 * np.abs(ref.h0_grad).max())


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
    """60 x 37 x 48 (x 48) is above the split threshold: the rows run in two
    blocks, one after the other with one thread, side by side with two."""
    T, B, H = 60, 37, 48
    assert T * B * H * H >= parallel.PARALLEL_WORK
    assert parallel.n_blocks(T, B, H, IndRNN.gates * H) == parallel.BLOCKS > 1
    model, p, x, target, lengths, h0 = problem("relu", "mse", score, T=T, B=B, D=D, H=H, O=2)
    p = {k: v.astype(dtype) for k, v in p.items()}
    x, target, h0 = x.astype(dtype), target.astype(dtype), h0.astype(dtype)
    threads(1)
    ref = outputs(kernel(model, p, x, target, lengths, h0, "mse", score))
    threads(2)
    for a, b in zip(outputs(kernel(model, p, x, target, lengths, h0, "mse", score)), ref,
                    strict=True):
        np.testing.assert_array_equal(a, b)
    if dtype == np.float64:  # and the split path is right, not just repeatable
        twin = naive.loss_and_grads(p, x, target, "relu", "mse", score, lengths, h0)
        got = kernel(model, p, x, target, lengths, h0, "mse", score)
        for k in NAMES:
            close(got.grads[k], twin["grads"][k], rtol=1e-10, atol=1e-14)
        close(got.h0_grad, twin["h0_grad"], rtol=1e-10, atol=1e-14)


def test_forward_states_do_not_depend_on_the_thread_count(threads):
    model, p, x, _, lengths, h0 = problem("tanh", T=60, B=37, D=3, H=48, O=2)
    got = {}
    for n in (1, 2):
        threads(n)
        got[n] = model.forward(p, x, lengths=lengths, h0=h0).h
    np.testing.assert_array_equal(got[1], got[2])


# -- validation ------------------------------------------------------------------------


def test_bad_inputs_raise_value_errors_naming_the_argument():
    model, p, x, target, lengths, h0 = problem()
    H = model.hidden_size

    def call(q=p, xx=x, tt=target, **kw):
        return model.loss_and_grads(q, xx, tt, **kw)

    with pytest.raises(ValueError, match=r"params\['u'\].*shape"):
        call({**p, "u": np.ones((H, H))})
    with pytest.raises(ValueError, match=r"params\['u'\].*shape"):
        call({**p, "u": np.ones(H + 1)})
    bad = p["u"].copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match=r"params\['u'\].*NaN"):
        call({**p, "u": bad})
    with pytest.raises(ValueError, match=r"params\['u'\].*dtype"):
        call({**p, "u": p["u"].astype(np.int64)})
    with pytest.raises(ValueError, match=r"params\['W_ih'\].*dtype"):
        call({**p, "u": p["u"].astype(np.float32)})
    with pytest.raises(ValueError, match=r"params.*missing.*'u'"):
        call({k: v for k, v in p.items() if k != "u"})
    with pytest.raises(ValueError, match=r"params.*unexpected.*W_hh"):
        call({**p, "W_hh": np.eye(H)})
    with pytest.raises(ValueError, match="x: expected dtype"):
        call(xx=x.astype(np.float32))
    with pytest.raises(ValueError, match="h0: expected shape"):
        call(h0=np.zeros((2, H)))
    with pytest.raises(ValueError, match="lengths"):
        call(lengths=np.zeros(x.shape[1], int))
    with pytest.raises(ValueError, match="activation: unknown value 'sigmoid'"):
        IndRNN(3, 4, 1, "sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        IndRNN(3, 0, 1)
    for bound in (0.0, -1.0, math.nan, "2", True):
        with pytest.raises(ValueError, match="u_bound"):
            IndRNN(3, 4, 1, u_bound=bound)
    with pytest.raises(ValueError, match="init: unknown value 'uniform'"):
        model.init_params("uniform")
    with pytest.raises(ValueError, match="gain"):
        model.init_params("identity", gain=-1.0)
    with pytest.raises(ValueError, match="dtype"):
        model.init_params("identity", dtype=np.float16)
    with pytest.raises(ValueError, match="forget_bias"):
        model.init_params("identity", forget_bias=math.inf)


def test_project_rejects_bad_arguments():
    model, p, *_ = problem()
    H = model.hidden_size
    with pytest.raises(ValueError, match="seq_len"):
        model.project(p, 0)
    with pytest.raises(ValueError, match="params"):
        model.project([p["u"]], 10)
    with pytest.raises(ValueError, match=r"params\['u'\].*shape"):
        model.project({"u": np.ones(H + 1)}, 10)
    with pytest.raises(ValueError, match=r"params\['u'\].*NaN"):
        model.project({"u": np.full(H, np.nan)}, 10)
    ro = np.ones(H)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['u'\].*writeable"):
        model.project({"u": ro}, 10)


# -- the probe: adjoint and Lyapunov exponents -------------------------------------------


@pytest.mark.parametrize("activation", ACTS)
def test_adjoint_lognorms_match_the_numpy_twin(activation):
    model, p, x, *_ = problem(activation, T=40, B=4, H=6, with_h0=False, ragged=False)
    st = model.states(model.check_params(p), x)
    delta = np.random.default_rng(5).standard_normal((4, 6))
    got, cell = model.adjoint_lognorms(st, p, delta)
    assert cell is None
    ref = naive.adjoint_lognorms(st[0], p["u"], activation, delta)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    # the states are the twin's
    hs, _ = naive.forward(p, x, activation)
    close(st[0], hs)


def test_adjoint_lognorms_stay_finite_far_below_float_range():
    """All ReLU units active and u = 0.5: ln||dL/dh_t|| falls by ln 2 per step,
    to about -2000 at lag 3000, far below float64's range (exact, renormalised)."""
    T, B, H = 3000, 2, 5
    model = IndRNN(2, H, 1)
    p = model.init_params("identity", gain=0.5)
    p["W_ih"][:] = 0.0
    p["b"][:] = 1.0
    x = np.random.default_rng(0).standard_normal((T, B, 2))
    st = model.states(model.check_params(p), x)
    delta = np.random.default_rng(1).standard_normal((B, H))
    got, _ = model.adjoint_lognorms(st, p, delta)
    lag = np.arange(T)[::-1]
    ref = np.log(np.linalg.norm(delta, axis=1))[None, :] + lag[:, None] * math.log(0.5)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)
    assert got.min() < -2000


def explicit_lyapunov(model, st, p, k, rng):
    """Top-k exponents by QR on the explicit (H, H) step Jacobians of sequence 0."""
    hs = st[0][:, 0]
    H = hs.shape[1]
    q, _ = np.linalg.qr(rng.standard_normal((H, k)))
    acc = np.zeros(k)
    for t in range(hs.shape[0] - 1):
        J = np.diag(naive.phi_grad(hs[t + 1], model.activation) * p["u"])
        q, r = np.linalg.qr(J @ q)
        acc += np.log(np.abs(np.diag(r)))
    return np.sort(acc / (hs.shape[0] - 1))[::-1]


@pytest.mark.parametrize("k", [2, 6])
def test_lyapunov_matches_qr_on_explicit_jacobians(k):
    model, p, x, *_ = problem("tanh", T=200, B=2, H=6, with_h0=False, ragged=False)
    st = model.states(model.check_params(p), x)
    got = model.lyapunov(st, p, k, np.random.default_rng(7))
    ref = explicit_lyapunov(model, st, p, k, np.random.default_rng(7))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    dim, steps, _ = model.step_jacobian(st, p)
    assert (dim, steps) == (6, 200)
    if k == 6:  # a full basis: the exponents sum to the mean ln|det J_t|
        hs = st[0][1:, 0]
        logdet = np.log(np.abs((1 - hs * hs) * p["u"])).sum(axis=1).mean()
        np.testing.assert_allclose(got.sum(), logdet, rtol=1e-10)


# -- the |u| constraint ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("activation", ACTS)
def test_project_keeps_u_within_the_papers_bound(activation, dtype):
    H = 50
    model = IndRNN(2, H, 1, activation)
    for T in (1, 10, 100, 5000):
        bound = model.max_abs(T)
        paper = U_MAGNITUDE ** (1 / T) * (TANH_HEADROOM if activation == "tanh" else 1.0)
        assert bound == pytest.approx(paper, rel=1e-15)
        u = np.random.default_rng(T).uniform(-3, 3, H).astype(dtype)
        u[:3] = (bound, -bound, 0.5 * bound)
        before = u.copy()
        params = {"u": u}
        assert model.project(params, T) is params and params["u"] is u
        assert np.all(np.abs(u.astype(np.float64)) <= bound)
        inside = np.abs(before.astype(np.float64)) < bound * (1 - 1e-6)
        np.testing.assert_array_equal(u[inside], before[inside])
        np.testing.assert_array_equal(np.sign(u), np.sign(before))
        # clipped entries sit at the bound (to the dtype's rounding)
        out = ~inside & (np.abs(before) > bound)
        np.testing.assert_allclose(np.abs(u[out]), bound, rtol=np.finfo(dtype).eps)
    assert model.max_abs(100) == pytest.approx(2 ** 0.01 * (1.0106 if activation == "tanh"
                                                            else 1.0), rel=1e-4)


def test_project_with_a_fixed_or_no_bound():
    fixed = IndRNN(2, 4, 1, u_bound=0.9)
    assert fixed.max_abs(10) == fixed.max_abs(10_000) == 0.9
    p = {"u": np.array([-2.0, -0.5, 0.5, 2.0])}
    fixed.project(p, 10)
    np.testing.assert_array_equal(p["u"], [-0.9, -0.5, 0.5, 0.9])
    free = IndRNN(2, 4, 1, u_bound=math.inf)
    p = {"u": np.array([-20.0, -0.5, 0.5, 20.0])}
    free.project(p, 10)
    np.testing.assert_array_equal(p["u"], [-20.0, -0.5, 0.5, 20.0])
    assert "u_bound=0.9" in repr(fixed)
    assert repr(IndRNN(2, 4, 1)) == ("IndRNN(input_size=2, hidden_size=4, output_size=1, "
                                     "activation='relu')")


def test_projected_params_train_like_any_others():
    """A projected parameter dict is a valid model input (in place, same dtype)."""
    model, p, x, target, lengths, h0 = problem()
    p["u"] *= 5.0
    model.project(p, x.shape[0])
    res = kernel(model, p, x, target, lengths, h0, "mse", "last")
    assert np.isfinite(res.loss)


# -- initialisation ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["identity", "gaussian", "orthogonal"])
def test_init_is_deterministic_by_seed(init):
    model = IndRNN(3, 40, 2)
    a = model.init_params(init, gain=0.8, seed=4)
    b = model.init_params(init, gain=0.8, seed=4)
    c = model.init_params(init, gain=0.8, seed=5)
    assert list(a) == NAMES
    shapes = model.param_shapes()
    for k in NAMES:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].shape == shapes[k] and a[k].dtype == np.float64
        assert a[k].flags.c_contiguous
    assert not np.array_equal(a["W_ih"], c["W_ih"])
    if init != "identity":
        assert not np.array_equal(a["u"], c["u"])
    np.testing.assert_array_equal(a["b"], 0.0)
    np.testing.assert_array_equal(a["b_out"], 0.0)
    f32 = model.init_params(init, gain=0.8, seed=4, dtype=np.float32)
    for k in NAMES:
        assert f32[k].dtype == np.float32
        np.testing.assert_array_equal(f32[k], a[k].astype(np.float32))


def test_init_maps_the_suites_choices_onto_u():
    H = 2000
    model = IndRNN(3, H, 2)
    ident = model.init_params("identity", gain=0.9)
    np.testing.assert_array_equal(ident["u"], 0.9)
    gauss = model.init_params("gaussian", gain=0.9, seed=1)["u"]
    assert gauss.min() >= 0.0 and gauss.max() < 0.9
    assert gauss.mean() == pytest.approx(0.45, abs=0.02)  # the paper's U(0, 1), scaled
    orth = model.init_params("orthogonal", gain=0.9, seed=1)["u"]
    np.testing.assert_array_equal(np.abs(orth), 0.9)
    assert 0.45 < (orth > 0).mean() < 0.55
    # scales of the other weights: N(0, input_scale^2 / D) and N(0, 1 / H)
    wide = model.init_params("identity", input_scale=2.0, seed=3)
    assert wide["W_ih"].std() == pytest.approx(2.0 / np.sqrt(3), rel=0.05)
    assert wide["W_out"].std() == pytest.approx(1.0 / np.sqrt(H), rel=0.05)
    # identity draws nothing for u: W_ih and W_out are the vanilla RNN's
    rnn = RNN(3, H, 2).init_params("identity", seed=3, input_scale=2.0)
    np.testing.assert_array_equal(wide["W_ih"], rnn["W_ih"])
    np.testing.assert_array_equal(wide["W_out"], rnn["W_out"])


def test_class_attributes_and_pickling():
    model = IndRNN(3, 4, 2, "tanh", u_bound=1.5)
    assert IndRNN.name == "indrnn" and IndRNN.gates == 1
    assert IndRNN.activations == ("relu", "tanh") and IndRNN(3, 4, 2).activation == "relu"
    assert [m.label for m in IndRNN.models] == ["indrnn"]
    assert IndRNN.stored_per_step == 1 and IndRNN.recurrent_blocks == 0
    assert IndRNN.recurrent_gates() == 0 and IndRNN.block_parts
    assert IndRNN.dtype_param == "u" and IndRNN.initial_states == ("h0",)
    assert model.param_shapes() == {"W_ih": (4, 3), "u": (4,), "b": (4,), "W_out": (2, 4),
                                    "b_out": (2,)}
    copy = pickle.loads(pickle.dumps(model))
    assert copy.u_bound == 1.5 and copy.activation == "tanh"
    _, p, x, target, lengths, h0 = problem("tanh", D=3, H=4, O=2)
    p = model.init_params("gaussian", seed=2)
    a = kernel(model, p, x, target, lengths, None, "mse", "last")
    b = kernel(copy, p, x, target, lengths, None, "mse", "last")
    np.testing.assert_array_equal(a.grads["u"], b.grads["u"])


# -- PyTorch -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("loss", "score"), [("mse", "last"), ("mse", "all"), ("xent", "last"),
                                             ("xent", "all")])
@pytest.mark.parametrize("activation", ACTS)
def test_matches_pytorch_autograd(activation, loss, score):
    torch = pytest.importorskip("torch")
    model, p, x, target, lengths, h0 = problem(activation, loss, score, T=11, B=5, H=6, O=3)
    got = kernel(model, p, x, target, lengths, h0, loss, score)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.items()}
    th0 = torch.tensor(h0, dtype=torch.float64, requires_grad=True)
    tx = torch.tensor(x, dtype=torch.float64)
    phi = torch.relu if activation == "relu" else torch.tanh
    T, B, _ = x.shape
    h = th0
    total, n = 0.0, 0
    for t in range(T):
        live = torch.tensor(t < lengths, dtype=torch.float64)[:, None]
        h = live * phi(tx[t] @ tp["W_ih"].T + tp["b"] + tp["u"] * h)
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
