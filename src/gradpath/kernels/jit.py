"""The one place where Numba JIT options are set.

``cache=True`` stores compiled kernels on disk, so a fresh process loads them
in well under a second instead of compiling for several.  Of ``fastmath``
only ``contract`` is on: it lets LLVM fuse ``a * b + c`` into one FMA (one
rounding instead of two: faster, and as accurate or more). The other flags
stay off: they let LLVM assume no NaN or Inf, which turns
``isnan``/``isinf`` into constant ``False`` and hides exploding gradients, or
reassociate sums. Kernels whose result must equal a numpy formula to the bit
(the optimisers) compile with ``contract=False``.  ``error_model="numpy"``: a
division by zero gives inf/NaN like numpy instead of a per-division check
that raises (which also costs ~15 ns per division). ``boundscheck`` stays off
for speed; every public entry point validates shapes before a kernel runs.

On a cache miss (a fresh clone, a new machine, an edited kernel file) the
first call compiles instead, for tens of seconds; the compile notice
(:mod:`gradpath.notice`) says so on stderr while it happens.

Where the cache lives. Numba keys a cached function by its own file alone,
but a kernel carries compiled copies of the helpers it calls from other files
(the micro-kernel, the cell rows): after a ``git pull`` or an edit that
changes only ``kernels/gemm.py``, ``cells/lstm.py``'s cached code would still
run the old helper (silently, or into a symbol that no longer exists). So the
cache directory is named after a hash of every kernel source
(:data:`CACHE_DIR`): any change to any of them starts a fresh cache. The base
is ``$NUMBA_CACHE_DIR`` when set, else the package's ``__pycache__`` when it
is writable, else ``~/.cache/gradpath`` (``$XDG_CACHE_HOME``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path

import numba
from numba.core.errors import NumbaIRAssumptionWarning

# Every kernel is compiled through this module, so importing the notice here
# has it listening before any kernel compiles (gradpath.warmup takes it from here).
from ..notice import COMPILE_NOTICE  # noqa: F401

JIT_OPTIONS: dict = {"nopython": True, "cache": True, "fastmath": {"contract"}, "nogil": True,
                     "error_model": "numpy"}

#: Options of small scalar helpers, inlined into their callers at the Numba IR
#: level so that loops calling them stay branch-light and pipelined.
INLINE_OPTIONS: dict = {**JIT_OPTIONS, "inline": "always"}


# Inlining the type-dispatched transcendentals (``common.exp_`` and kin: an
# overload inlined at Numba's IR level, calling inlined helpers) trips one of
# Numba's internal "pedantic" IR checks about a phi variable's scope; the
# code it compiles is right (tests/test_transcendentals.py, the gradient
# checks), and the warning would otherwise greet every first compile.
warnings.filterwarnings("ignore", message=r"variable '.*' is not in scope",
                        category=NumbaIRAssumptionWarning)

_PACKAGE = Path(__file__).resolve().parent.parent


def _sources_hash() -> str:
    """12 hex digits of SHA-256 over every module that holds kernels."""
    h = hashlib.sha256()
    for folder in ("kernels", "cells"):
        for path in sorted((_PACKAGE / folder).glob("*.py")):
            if not path.name.endswith("_peer.py"):  # benchmark twins: not compiled
                h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _cache_base() -> Path:
    env = os.environ.get("NUMBA_CACHE_DIR", "").strip()
    if env:
        return Path(env)
    pycache = _PACKAGE / "__pycache__"
    if os.access(pycache if pycache.exists() else _PACKAGE, os.W_OK):
        return pycache
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gradpath"


#: The on-disk cache of every gradpath kernel, one directory per version of
#: the kernel sources.
CACHE_DIR = _cache_base() / f"numba-{_sources_hash()}"


def _prune_stale() -> None:
    """Remove the caches of earlier kernel sources (tens of MB each) when this
    version's cache does not exist yet; not under a user's $NUMBA_CACHE_DIR."""
    if CACHE_DIR.exists() or os.environ.get("NUMBA_CACHE_DIR", "").strip():
        return
    for old in CACHE_DIR.parent.glob("numba-*"):
        shutil.rmtree(old, ignore_errors=True)


_prune_stale()


def _compile(func, options: dict):
    # Numba's locator reads config.CACHE_DIR when the dispatcher enables
    # caching (here, at decoration); it is set for that moment only, so other
    # Numba users in the process keep their own cache.
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(CACHE_DIR)
    try:
        return numba.jit(**options)(func)
    finally:
        numba.config.CACHE_DIR = saved


def jit(func, contract: bool = True):
    """Compile ``func`` with the project-wide Numba options (``contract=False``:
    no FMA contraction, every product and sum rounded as written)."""
    return _compile(func, JIT_OPTIONS if contract else {**JIT_OPTIONS, "fastmath": False})


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
    return _compile(func, INLINE_OPTIONS)
