"""The one place where Numba JIT options are set.

``cache=True`` stores compiled kernels on disk, so a fresh process loads them
in well under a second instead of compiling for several.  ``fastmath`` stays
off: it lets LLVM assume no NaN or Inf, which turns ``isnan``/``isinf`` into
constant ``False`` and hides exploding gradients.  ``boundscheck`` stays off
for speed; every public entry point validates shapes before a kernel runs.
"""

from __future__ import annotations

import numba

JIT_OPTIONS: dict = {"nopython": True, "cache": True, "fastmath": False, "nogil": True}


def jit(func):
    """Compile ``func`` with the project-wide Numba options."""
    return numba.jit(**JIT_OPTIONS)(func)


#: Integer codes for activations, losses and scoring modes (kernels take ints,
#: not callables, so one compiled kernel serves every choice).
ACT_TANH = 0
ACT_RELU = 1
LOSS_MSE = 0
LOSS_XENT = 1
SCORE_LAST = 0
SCORE_ALL = 1

#: Below this many multiply-adds per step, the recurrent product runs as an
#: explicit SIMD-friendly loop; above it, as one BLAS GEMM (call overhead
#: of a BLAS call dominates tiny products).
SMALL_MATMUL_FLOPS = 64 * 64 * 64
