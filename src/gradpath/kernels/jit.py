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
from numba.core.caching import IndexDataCacheFile
from numba.core.errors import NumbaIRAssumptionWarning

try:
    import fcntl
except ImportError:  # not on Windows: compiles there stay in one process
    fcntl = None

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


class _LockedIndexDataCacheFile(IndexDataCacheFile):
    """Numba's index-and-data cache file, whose ``save`` holds an exclusive
    lock on the function's index.

    Numba's ``save`` reads the function's index, picks the first free data
    file number for a new signature, writes the index back, then the data.
    Two processes compiling two signatures of one function at once (the
    float32 and float64 halves of a parallel warm-up, two grid jobs on a
    cold cache) can both pick number 1: the index then maps one signature to
    the other's machine code, and a later process loads the wrong kernel. With
    the lock, the second ``save`` reads the index the first wrote. Readers need
    no lock: both files are replaced whole (Numba writes a temporary file, then
    renames it), and an index entry whose data is not there yet loads as a
    cache miss.
    """

    def save(self, key, data):  # noqa: D102 - Numba's signature
        with open(self._index_path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            super().save(key, data)


def _lock_cache_writes(dispatcher) -> bool:
    """Give ``dispatcher``'s on-disk cache the locked ``save``; False where
    that cannot be done (no ``fcntl``, or a Numba whose cache is built
    otherwise): such a process must not compile alongside another one."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if fcntl is None or type(cache_file) is not IndexDataCacheFile:
        return False
    cache_file.__class__ = _LockedIndexDataCacheFile
    return True


#: Whether every kernel's cache writes are locked (:class:`_LockedIndexDataCacheFile`),
#: so that processes may compile kernels side by side (:func:`gradpath.warmup`).
CACHE_WRITES_LOCKED = True


def _compile(func, options: dict):
    global CACHE_WRITES_LOCKED
    # Numba's locator reads config.CACHE_DIR when the dispatcher enables
    # caching (here, at decoration); it is set for that moment only, so other
    # Numba users in the process keep their own cache.
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(CACHE_DIR)
    try:
        dispatcher = numba.jit(**options)(func)
    finally:
        numba.config.CACHE_DIR = saved
    if not _lock_cache_writes(dispatcher):
        CACHE_WRITES_LOCKED = False
    return dispatcher


def cache_is_cold() -> bool:
    """Whether this version's kernel cache holds nothing yet (a fresh clone,
    an edited kernel): the first calls then compile every kernel."""
    return not any(CACHE_DIR.glob("*/*.nbi")) if CACHE_DIR.exists() else True


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
