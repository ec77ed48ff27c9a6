"""Forward + backward speed of the Numba kernels against their numpy twin.

Every (cell, size, dtype) entry is timed twice in the same run on the same
inputs, for every cell (``bench_cases.CELLS``, the registry's):
``model.loss_and_grads`` (the Numba kernel behind the public API) and the
plain-numpy twin from ``tests/naive.py``. Both land in one benchmark group, so
pytest-benchmark prints them side by side, and ``check_targets.py`` turns
each pair into a speed-up (twin median / kernel median) held to absolute
targets. The twin runs in the kernels' floating-point environment
(``gradpath.kernels.fpenv.flushed``: subnormals flushed, one BLAS thread), so
it pays no subnormal penalty the kernel avoids: like with like.

Run: ``pytest bench --benchmark-json=bench/results/bench.json`` (see
``bench/README.md``; ``--bench-sizes ci`` for the fast subset).
"""

from __future__ import annotations

import os
from functools import cache

import naive  # tests/naive.py, put on sys.path by bench/conftest.py
import numpy as np
import pytest
from bench_cases import CELLS, DTYPES, SIZES, SIZES_ENV, entry_key, parse_sizes

from gradpath.kernels.fpenv import flushed
from gradpath.models import make_model

#: How each size is timed. Small and medium sizes are calibrated by
#: pytest-benchmark but bounded (max_time per benchmark, at least min_rounds);
#: large ones take seconds per call and run a fixed number of pedantic rounds.
TIMING = {
    "small": {"min_rounds": 10, "max_time": 0.5},
    "medium": {"min_rounds": 5, "max_time": 0.5},
    "large": 3,  # pedantic rounds of the kernel, one iteration each (every cell)
}
IMPLS = ("kernel", "twin")


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    sizes = parse_sizes(metafunc.config.getoption("--bench-sizes") or os.environ.get(SIZES_ENV))
    params = []
    for cell in CELLS:
        for name in sizes:
            for dtype in DTYPES:
                marks = ()
                if name != "large":
                    marks = (pytest.mark.benchmark(**TIMING[name]),)
                for impl in IMPLS:
                    key = entry_key(cell, SIZES[name], dtype)
                    params.append(pytest.param((cell, name, dtype, impl), marks=marks,
                                               id=f"{key}-{impl}"))
    metafunc.parametrize("case", params)


@cache
def problem(cell: str, name: str, dtype: str):
    """Model, parameters, input and target of one entry (shared by kernel and twin)."""
    B, H, D, T = SIZES[name]
    dt = np.dtype(dtype)
    model = make_model(cell, D, H, 1, activation="tanh")  # tanh where the cell takes one
    params = model.init_params("orthogonal", gain=1.0, seed=0, dtype=dt)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(dt)
    target = rng.standard_normal((B, 1)).astype(dt)
    return model, params, x, target


#: Kernel loss per entry, to check that the twin solves the same problem.
_KERNEL_LOSS: dict[str, float] = {}


def make_call(cell, name, dtype, impl):
    model, params, x, target = problem(cell, name, dtype)
    if impl == "kernel":

        def call():
            return model.loss_and_grads(params, x, target, loss="mse", score="last").loss
    else:
        def call():  # the activation applies to the RNN only
            with flushed():
                return naive.loss_and_grads(cell, params, x, target, activation="tanh",
                                            loss="mse", score="last")["loss"]
    return call


def test_loss_and_grads(benchmark, case):
    cell, name, dtype, impl = case
    B, H, D, T = SIZES[name]
    key = entry_key(cell, SIZES[name], dtype)
    benchmark.group = f"{cell} B={B} H={H} D={D} T={T} {dtype}"
    benchmark.extra_info.update({
        "entry": key, "cell": cell, "size": name, "B": B, "H": H, "D": D, "T": T,
        "dtype": dtype, "impl": impl,
    })
    call = make_call(cell, name, dtype, impl)
    loss = call()  # warm: JIT load (kernel) / first-touch allocations (both), outside timing
    if name == "large":
        # The numpy twin there takes 2-8x the kernel's time (0.2-4 s a call):
        # one warm call is close to its median and far from deciding a target
        # of 1x, and two more would add about 25 s to `make test`. (A cold
        # call is no substitute: its first touch of memory added up to 50 %.)
        rounds = TIMING["large"] if impl == "kernel" else 1
        benchmark.pedantic(call, rounds=rounds, iterations=1)
    else:
        benchmark(call)
    if impl == "kernel":
        _KERNEL_LOSS[key] = loss
    elif key in _KERNEL_LOSS:
        rtol = 1e-3 if dtype == "float32" else 1e-8
        assert np.isclose(float(loss), _KERNEL_LOSS[key], rtol=rtol), (
            f"twin loss {loss} != kernel loss {_KERNEL_LOSS[key]}: not the same problem")
