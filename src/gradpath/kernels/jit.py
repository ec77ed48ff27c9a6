"""The one place where Numba JIT options are set.

``cache=True`` stores compiled kernels on disk, so a fresh process loads them
in well under a second instead of compiling for several.  ``fastmath`` stays
off: it lets LLVM assume no NaN or Inf, which turns ``isnan``/``isinf`` into
constant ``False`` and hides exploding gradients.  ``error_model="numpy"``: a
division by zero gives inf/NaN like numpy instead of a per-division check
that raises (which also costs ~15 ns per division). ``boundscheck`` stays off
for speed; every public entry point validates shapes before a kernel runs.

On a cache miss (a fresh clone, a new machine, an edited kernel file) the
first call compiles instead, for tens of seconds; the compile notice
(:mod:`gradpath.notice`) says so on stderr while it happens.
"""

from __future__ import annotations

import numba

# Every kernel is compiled through this module, so importing the notice here
# has it listening before any kernel compiles (gradpath.warmup takes it from here).
from ..notice import COMPILE_NOTICE  # noqa: F401

JIT_OPTIONS: dict = {"nopython": True, "cache": True, "fastmath": False, "nogil": True,
                     "error_model": "numpy"}

#: Options of small scalar helpers, inlined into their callers at the Numba IR
#: level so that loops calling them stay branch-light and pipelined.
INLINE_OPTIONS: dict = {**JIT_OPTIONS, "inline": "always"}


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


def jit_inline(func):
    """Compile a small scalar helper that is inlined into every caller."""
    return numba.jit(**INLINE_OPTIONS)(func)
