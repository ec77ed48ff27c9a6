"""Whatever the caller passes, the kernels see one Numba type per float dtype.

Each new combination of argument types makes Numba compile (and cache) a new
specialisation, seconds per kernel in every fresh process that misses the
cache (README, "Developing the kernels"). These tests intercept the kernel call
(the entry points of :mod:`gradpath.cells.pipeline`, which pass their
arguments on to every cell's step functions) and check the argument types
without running, hence without compiling, anything.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from gradpath.cells import REGISTRY, cell_class, pipeline

#: The pipeline's entry points, which call a cell's kernels (``Kernels``, their
#: first argument) with the rest of their arguments.
KERNELS = ["loss_and_grads", "states"]
#: Every registered cell.
CELLS = list(REGISTRY)


class Intercepted(Exception):
    """Raised by the stand-in kernels once they have recorded their arguments."""


def reference_types(cell, dtype, method="loss_and_grads", loss="mse"):
    """Argument types of a plain call: fresh, C-contiguous, writeable arrays."""
    model, params, x, target = problem(cell, dtype, loss)
    return call_types(model, method, params, x, target, loss)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_types_normalised(cell):
    model, params, x, _ = problem(cell, np.float64)
    ref = call_types(model, "forward", params, x, None)
    odd = call_types(model, "forward", {k: np.asfortranarray(v) for k, v in params.items()},
                     np.asfortranarray(x), None, lengths=[4, 1, 2])
    assert odd == ref


def problem(cell, dtype, loss="mse"):
    T, B, D, H, O = 4, 3, 2, 3, 2
    model = cell_class(cell)(D, H, O)
    params = model.init_params(seed=0, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((T, B, D)).astype(dtype)
    target = np.zeros((B, O), dtype) if loss == "mse" else np.zeros(B, np.int64)
    return model, params, x, target


def call_types(model, method, params, x, target, loss="mse", **kw):
    calls = []

    def record(name):
        def kernel(k, *args):
            assert k is model.kernels  # the cell's own step functions
            calls.append([name, *(numba.typeof(a) for a in args)])
            raise Intercepted

        return kernel

    with pytest.MonkeyPatch.context() as mp:
        for name in KERNELS:
            mp.setattr(pipeline, name, record(name))
        with pytest.raises(Intercepted):
            if method == "loss_and_grads":
                model.loss_and_grads(params, x, target, loss=loss, **kw)
            else:
                model.forward(params, x, **kw)
    return calls[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_layouts_and_integer_dtypes_normalised(cell, dtype):
    ref = reference_types(cell, dtype)
    model, params, x, target = problem(cell, dtype)
    B, H = x.shape[1], model.hidden_size
    odd = call_types(
        model, "loss_and_grads",
        {k: np.asfortranarray(v) for k, v in params.items()},
        np.asfortranarray(x), np.asfortranarray(target),
        lengths=np.array([4, 2, 1], np.int32), h0=np.asfortranarray(np.zeros((H, B), dtype)).T,
    )
    assert odd == ref
    ref_x = reference_types(cell, dtype, loss="xent")
    odd_x = call_types(model, "loss_and_grads", params, x, np.array([1, 0, 1], np.uint8),
                       loss="xent", lengths=[4, 4, 4])
    assert odd_x == ref_x


@pytest.mark.parametrize("what", ["x", "params", "target", "h0"])
@pytest.mark.parametrize("cell", CELLS)
def test_read_only_inputs_do_not_create_new_specialisations(cell, what):
    """Read-only arrays are common (np.load(mmap_mode='r'), pandas/pyarrow buffers);
    passing one must not trigger a multi-second recompilation."""
    dtype = np.float64
    ref = reference_types(cell, dtype)
    model, params, x, target = problem(cell, dtype)
    h0 = np.zeros((x.shape[1], model.hidden_size))

    def frozen(a):
        a = a.copy()
        a.flags.writeable = False
        return a

    if what == "x":
        x = frozen(x)
    elif what == "params":
        params = {k: frozen(v) for k, v in params.items()}
    elif what == "target":
        target = frozen(target)
    else:
        h0 = frozen(h0)
    assert call_types(model, "loss_and_grads", params, x, target, h0=h0) == ref
