"""Kernels flush subnormals to zero (FTZ/DAZ), on every thread that computes for them.

Deterministic checks of the mechanism in ``gradpath.kernels.fpenv`` (no
timing): the register bits inside and after a kernel call, values that would
be subnormal coming out exactly 0 (from the kernel's own arithmetic and from
a multi-threaded BLAS call inside it), nothing else changing, and every
kernel reachable from the library going through the mechanism.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from problems import CELL_IDS, CELLS, make_problem

import gradpath as gp
from gradpath.kernels import fpenv

# Where no flush-to-zero mechanism exists (FPENV "none": neither x86 nor
# aarch64, or GRADPATH_FPENV=none), tests/test_fpenv_arch.py checks the fallback.
flushing = pytest.mark.skipif(fpenv.FLUSH_BITS == 0, reason=f"no flush-to-zero register here "
                              f"(FPENV {fpenv.FPENV!r}): tests/test_fpenv_arch.py covers it")
STATUS_FLAGS = fpenv.STATUS_BITS  # sticky exception flags (MXCSR): not part of the mode


def subnormal_count(a) -> int:
    a = np.asarray(a)
    tiny = np.finfo(a.dtype).tiny
    return int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))


def outputs(res: gp.LossGrads) -> dict[str, np.ndarray]:
    out = {"loss": np.array(res.loss), "grad_norms": res.grad_norms, "h0_grad": res.h0_grad,
           **{f"grads[{k}]": v for k, v in res.grads.items()}}
    if res.cell_grad_norms is not None:
        out.update(cell_grad_norms=res.cell_grad_norms, c0_grad=res.c0_grad)
    return out


@flushing
def test_flushed_sets_the_bits_and_restores_the_mode():
    before = fpenv.fp_mode()
    assert before & fpenv.FLUSH_BITS == 0, "the interpreter should start in IEEE mode"
    with fpenv.flushed():
        inside = fpenv.fp_mode()
        with fpenv.flushed():  # re-entrant
            pass
        assert fpenv.fp_mode() & ~STATUS_FLAGS == inside & ~STATUS_FLAGS
    assert inside & fpenv.FLUSH_BITS == fpenv.FLUSH_BITS
    assert fpenv.fp_mode() & ~STATUS_FLAGS == before & ~STATUS_FLAGS
    with pytest.raises(ZeroDivisionError), fpenv.flushed():
        raise ZeroDivisionError
    assert fpenv.fp_mode() & ~STATUS_FLAGS == before & ~STATUS_FLAGS


@flushing
def test_numpy_keeps_gradual_underflow_after_a_kernel_call():
    p = make_problem()
    p.kernel()
    tiny = np.finfo(np.float32).tiny
    assert np.float32(tiny) / np.float32(4) > 0  # a subnormal, not flushed


def vanishing_rnn(dtype, T=4, B=2, H=8, W_scale=None):
    """ReLU RNN with W_hh = g I, all units active: dL/dh at lag k is g**k dL/dh_T,
    so lag 2 is subnormal (g**2 ~ 1e-40 in float32, 1e-310 in float64)."""
    g = 1e-20 if dtype == np.float32 else 1e-155
    model = gp.RNN(1, H, 1, activation="relu")
    p = model.init_params("identity", gain=1.0, seed=0, dtype=np.float64)
    p["W_hh"] = g * np.eye(H)
    p["W_ih"] = np.abs(p["W_ih"]) + 0.5
    p = {k: v.astype(dtype) for k, v in p.items()}
    x = np.ones((T, B, 1), dtype)
    return model, p, x, np.zeros((B, 1), dtype)


def vanishing_lstm(dtype, T=4, B=2, H=8):
    """LSTM with W_hh = 0 and forget gates at f ~ 1e-20 (float32) or 1e-155
    (float64): the cell adjoint at lag 2 is about f**2, subnormal."""
    model = gp.LSTM(1, H, 1)
    fb = -46.0 if dtype == np.float32 else -357.0
    p = model.init_params("orthogonal", seed=0, dtype=np.float64, forget_bias=fb)
    p["W_hh"][:] = 0.0
    p["W_ih"][H:2 * H] = 0.0
    p = {k: v.astype(dtype) for k, v in p.items()}
    x = np.ones((T, B, 1), dtype)
    return model, p, x, np.zeros((B, 1), dtype)


@flushing
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("build", [vanishing_rnn, vanishing_lstm], ids=["rnn", "lstm"])
def test_values_that_would_be_subnormal_are_exactly_zero(build, dtype):
    model, p, x, y = build(dtype)
    T = x.shape[0]
    norms = "cell_grad_norms" if build is vanishing_lstm else "grad_norms"
    with fpenv.keep_subnormals():
        kept = model.loss_and_grads(p, x, y)
    flushed = model.loss_and_grads(p, x, y)
    lag2 = getattr(kept, norms)[T - 3]
    # the control: IEEE arithmetic does produce subnormal adjoints here
    assert np.all(lag2 > 0) and np.all(lag2 < 1e-30 if dtype == np.float32 else lag2 < 1e-300)
    assert np.all(getattr(flushed, norms)[T - 3] == 0.0)
    for name, arr in outputs(flushed).items():
        assert subnormal_count(arr) == 0, f"{name} holds subnormal numbers"
    # lags 0 and 1 are normal numbers: untouched by flushing
    np.testing.assert_array_equal(getattr(flushed, norms)[T - 2:], getattr(kept, norms)[T - 2:])


BLAS_SCRIPT = textwrap.dedent("""
    import json, numpy as np, gradpath as gp
    from gradpath.kernels import fpenv
    from threadpoolctl import threadpool_info
    # The read-out's weight gradient dW_out = dy^T h is one BLAS GEMM inside the
    # kernel (O x TB x H, large enough for OpenBLAS to split it over its
    # threads) whose products are ~1e-42 from normal float32 inputs: every
    # h_t = 1e-22 (W_ih = W_hh = 0, b = 1e-22) and every dL/dy = 1e-20.
    T, B, H, O = 4, 256, 256, 64
    model = gp.RNN(1, H, O, activation="relu")
    p = model.init_params("identity", seed=0, dtype=np.float32)
    for k in ("W_ih", "W_hh", "W_out", "b_out"):
        p[k][:] = 0
    p["b"][:] = 1e-22
    x = np.ones((T, B, 1), np.float32)
    y = np.full((T, B, O), -1e-20 * T * B, np.float32)
    tiny = np.finfo(np.float32).tiny
    def subnormal(a):
        return int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))
    out = {"threads": max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")}
    out["flushed"] = subnormal(model.loss_and_grads(p, x, y, score="all").grads["W_out"])
    with fpenv.keep_subnormals():
        out["kept"] = subnormal(model.loss_and_grads(p, x, y, score="all").grads["W_out"])
    # FTZ on this thread only, BLAS left multi-threaded: what the BLAS limit prevents
    old = fpenv.fp_mode()
    fpenv.set_fp_mode(old | fpenv.FLUSH_BITS)
    st, dy = model._workspace(T, B, np.dtype(np.float32))
    from gradpath.cells.rnn import serial
    res = serial(x, (p["W_ih"], p["W_hh"], p["b"]), (np.zeros((B, H), np.float32),),
                 p["W_out"], p["b_out"], np.full(B, T, np.int64), y,
                 np.zeros((1, 1), np.int64), 1, 0, 1, st, dy, (), 0,
                 (*(np.zeros(1, np.int64) for _ in range(3)), T))  # no after-the-loop grads
    fpenv.set_fp_mode(old)
    out["this_thread_only"] = subnormal(res[2])  # dW_out
    print(json.dumps(out))
""")


@flushing
def test_blas_inside_a_kernel_flushes_on_every_thread(tmp_path: Path):
    """With two BLAS threads allowed, a BLAS GEMM inside a kernel (the
    read-out's gradient; the recurrent products are gradpath's own, on its own
    threads) produces no subnormal: kernels run BLAS single-threaded on their
    own, flushed threads."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    script = tmp_path / "blas_subnormals.py"
    script.write_text(BLAS_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["kept"] > 0, "control: IEEE arithmetic should produce subnormals here"
    assert out["flushed"] == 0
    if out["threads"] > 1:
        # control: FTZ on the calling thread alone leaves the BLAS workers' share subnormal
        assert out["this_thread_only"] > 0


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("score", ["last", "all"])
def test_float64_bit_identical_without_subnormals(cell, activation, score):
    """Flushing changes nothing where no value is subnormal."""
    p = make_problem(cell, activation, score=score, T=30, B=5, H=16, ragged=True)
    with fpenv.keep_subnormals():
        kept = p.kernel()
    assert all(subnormal_count(a) == 0 for a in outputs(kept).values())
    flushed = p.kernel()
    for name, arr in outputs(kept).items():
        np.testing.assert_array_equal(outputs(flushed)[name], arr, err_msg=name)


def test_every_kernel_the_library_calls_is_flushed():
    """No module outside gradpath.kernels, the kernel pipeline and the cells'
    own modules holds a raw Numba dispatcher (a cell's compiled step functions
    run only inside the pipeline's entry points, and its probe adjoint is an
    entry point itself): every kernel the library can call is an fpenv entry
    point."""
    import gradpath
    from gradpath.cells import pipeline
    from gradpath.cells.base import Cell

    def defines_a_cell(module) -> bool:
        return any(isinstance(v, type) and issubclass(v, Cell) and v is not Cell
                   and v.__module__ == module.__name__ for v in vars(module).values())

    raw, cell_modules = [], []
    for info in pkgutil.walk_packages(gradpath.__path__, "gradpath."):
        if info.name.startswith("gradpath.kernels") or info.name == pipeline.__name__:
            continue
        module = importlib.import_module(info.name)
        if defines_a_cell(module):
            cell_modules.append(module)
            continue
        raw += [f"{info.name}.{name}" for name, v in vars(module).items()
                if isinstance(v, numba.core.dispatcher.Dispatcher)]
    assert not raw, f"kernels called without the flush-to-zero environment: {raw}"
    assert {"gradpath.cells.rnn", "gradpath.cells.lstm", "gradpath.cells.gru"} <= \
        {m.__name__ for m in cell_modules}
    for fn in (pipeline.loss_and_grads, pipeline.states,
               *(m.adjoint_lognorms for m in cell_modules)):
        assert hasattr(fn, "kernel"), f"{fn.__module__}.{fn.__name__} is not an fpenv entry point"
