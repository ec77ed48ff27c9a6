"""The floating-point environment of every kernel call: subnormals flush to zero.

Why
---
When gradients vanish (what this suite studies), BPTT's adjoints shrink
geometrically and pass through the subnormal range: below 1.2e-38 in float32,
2.2e-308 in float64. On Intel CPUs every instruction that reads or produces a
subnormal takes a microcode assist of ~100+ cycles, so a vanishing float32
LSTM ran 5-8x slower than a non-vanishing one, and slower than float64.

How
---
Every kernel entry point called from Python runs inside :func:`flushed`:

* the calling thread's MXCSR gets FTZ (flush-to-zero: a result that would be
  subnormal is 0) and DAZ (denormals-are-zero: a subnormal input reads as 0);
  the previous MXCSR is restored afterwards, also when the call raises, so
  numpy code outside the kernels keeps IEEE gradual underflow;
* BLAS (which Numba's ``np.dot`` calls through scipy) is limited to one
  thread for the duration: OpenBLAS worker threads keep their own MXCSR, so
  a GEMM split across them would still compute subnormals on the workers.
  The kernels parallelise in their own code instead (batch rows across
  Numba's threads, :mod:`gradpath.kernels.parallel`), and every such thread
  copies the calling thread's mode for the duration of its share.

MXCSR is read and written with the LLVM intrinsics ``llvm.x86.sse.stmxcsr``
and ``ldmxcsr``. On other architectures :func:`flushed` only limits BLAS and
subnormals keep IEEE semantics (untested there).

Numerical effect
----------------
Exactly the values of magnitude below the smallest normal number
(``np.finfo(dtype).tiny``: 1.18e-38 for float32, 2.23e-308 for float64)
become 0, whether computed (FTZ) or read from an input (DAZ). Concretely:
an adjoint ``dL/dh_t`` whose entries decay below ``tiny`` is exactly 0 from
that lag back, so ``grad_norms`` is 0 where it would have been a subnormal
number (and ``log10`` of it is -inf, not about -40 or -310); a gradient
entry that would be subnormal is 0. Nothing of normal magnitude changes:
on data whose every intermediate is normal (all tests and studies except
the deepest vanishing lags) results are bit-identical to IEEE arithmetic,
since FTZ/DAZ only act on subnormals. The lost information is below
``tiny``, i.e. more than 38 (float32) or 307 (float64) decades under the
scored step's gradient scale; the decay-rate probes renormalise the adjoint
every step and so never reach that range.
"""

from __future__ import annotations

import functools
import platform
import threading
from collections.abc import Callable

from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..notice import COMPILE_NOTICE
from .jit import jit

#: MXCSR bits: flush-to-zero (results) and denormals-are-zero (inputs).
FTZ = 0x8000
DAZ = 0x0040
FLUSH_BITS = FTZ | DAZ

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _mxcsr_call(builder, name: str, ptr) -> None:
    i8p = llvm_ir.IntType(8).as_pointer()
    fnty = llvm_ir.FunctionType(llvm_ir.VoidType(), [i8p])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(ptr, i8p)])


@intrinsic
def _stmxcsr(typingctx):
    """The calling thread's MXCSR register (x86 only)."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, llvm_ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.zext(builder.load(slot), llvm_ir.IntType(64))
    return types.int64(), codegen


@intrinsic
def _ldmxcsr(typingctx, value):
    """Load ``value`` into the calling thread's MXCSR register (x86 only)."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, llvm_ir.IntType(32))
        builder.store(builder.trunc(args[0], llvm_ir.IntType(32)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.void(types.int64), codegen


if X86:
    @jit
    def fp_mode():
        """The calling thread's floating-point mode (MXCSR; 0 off x86)."""
        return _stmxcsr()

    @jit
    def set_fp_mode(mode):
        """Set the calling thread's floating-point mode (MXCSR; a no-op off x86)."""
        _ldmxcsr(mode)
else:  # pragma: no cover - exercised on non-x86 machines only
    @jit
    def fp_mode():
        """The calling thread's floating-point mode (MXCSR; 0 off x86)."""
        return 0

    @jit
    def set_fp_mode(mode):
        """Set the calling thread's floating-point mode (MXCSR; a no-op off x86)."""
        return None


#: Names for tests and diagnostics.
read_mxcsr = fp_mode
write_mxcsr = set_fp_mode


@jit
def _enter_flush():
    """Set FTZ and DAZ; return the previous mode."""
    old = fp_mode()
    set_fp_mode(old | FLUSH_BITS)
    return old


class _BlasThreads:
    """Limits every loaded BLAS library to one thread while any kernel call
    runs, and restores it after the last one.

    BLAS thread counts are process-wide, and kernels release the GIL: with
    calls on two Python threads, the first to finish must not give BLAS its
    threads back while the other still computes (its GEMMs would then run on
    workers without FTZ). A count of the calls inside, under a lock, makes the
    first call in limit and the last call out restore.

    The controller is built on first use, after Numba's BLAS (scipy's) is
    loaded; only libraries not already at one thread are touched, so the
    common single-threaded case costs two cheap calls per library.
    """

    def __init__(self) -> None:
        self._libs: list | None = None
        self._lock = threading.Lock()
        self._inside = 0
        self._changed: list[tuple] = []

    def libs(self) -> list:
        if self._libs is None:
            import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot BLAS: load it first)
            from threadpoolctl import ThreadpoolController

            self._libs = [lib for lib in ThreadpoolController().lib_controllers
                          if lib.user_api == "blas"]
        return self._libs

    def enter(self) -> None:
        with self._lock:
            if self._inside == 0:
                changed = []
                for lib in self.libs():
                    n = lib.get_num_threads()
                    if n is not None and n != 1:
                        lib.set_num_threads(1)
                        changed.append((lib, n))
                self._changed = changed
            self._inside += 1

    def exit(self) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                for lib, n in self._changed:
                    lib.set_num_threads(n)
                self._changed = []


_BLAS = _BlasThreads()
_state = {"enabled": True}


class flushed:
    """Context: FTZ/DAZ on this thread and, with ``blas=True``, single-threaded
    BLAS (see module doc).

    Re-entrant; a no-op for the MXCSR part off x86 and while
    :func:`keep_subnormals` is active.
    """

    __slots__ = ("_old", "_limit")

    def __init__(self, blas: bool = True) -> None:
        self._limit = blas

    def __enter__(self) -> flushed:
        self._old = None
        if self._limit:
            _BLAS.enter()
        try:
            if X86 and _state["enabled"]:
                self._old = _enter_flush()
        except BaseException:
            if self._limit:
                _BLAS.exit()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            write_mxcsr(self._old)
        if self._limit:
            _BLAS.exit()


class keep_subnormals:
    """Context: kernels keep IEEE gradual underflow (for tests and benchmarks
    that show what flushing changes and what it saves). Not thread-safe."""

    def __enter__(self) -> keep_subnormals:
        self._prev = _state["enabled"]
        _state["enabled"] = False
        return self

    def __exit__(self, *exc) -> None:
        _state["enabled"] = self._prev


def jit_entry(func: Callable | None = None, *, blas: bool = True,
              contract: bool = True) -> Callable:
    """Compile ``func`` with the project's options and wrap it with :func:`entry`
    (``blas=False`` for kernels that call no BLAS: nothing to limit;
    ``contract=False``: no FMA contraction, see :mod:`gradpath.kernels.jit`)."""
    if func is None:
        return lambda f: entry(jit(f, contract), blas=blas)
    return entry(jit(func, contract), blas=blas)


def entry(func: Callable, blas: bool = True) -> Callable:
    """Wrap a kernel (compiled, or Python code calling compiled row functions)
    as an entry point that runs in :class:`flushed`.

    A wrapped Numba dispatcher stays reachable as ``.kernel`` (for calls from
    other compiled code, which inherit the caller's environment).

    After a call that compiled long enough for the compile notice to show
    (:class:`gradpath.notice.CompileNotice`), the call prints the compile
    time and closes the notice; otherwise this costs one bool test.
    """
    notice = COMPILE_NOTICE

    @functools.wraps(func)
    def call(*args):
        with flushed(blas):
            out = func(*args)
        if notice.open:
            notice.finish()
        return out

    call.kernel = func
    return call
