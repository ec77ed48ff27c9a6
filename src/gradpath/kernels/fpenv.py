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

* the calling thread's floating-point mode (MXCSR on x86, FPCR on aarch64)
  gets FTZ (flush-to-zero: a result that would be subnormal is 0) and DAZ
  (denormals-are-zero: a subnormal input reads as 0); the previous mode is
  restored afterwards, also when the call raises, so
  numpy code outside the kernels keeps IEEE gradual underflow;
* BLAS (which Numba's ``np.dot`` calls through scipy) is limited to one
  thread for the duration: OpenBLAS worker threads keep their own mode, so
  a GEMM split across them would still compute subnormals on the workers.
  The kernels parallelise in their own code instead (batch rows across
  Numba's threads, :mod:`gradpath.kernels.parallel`), and every such thread
  copies the calling thread's mode for the duration of its share.

Where the bits are (:data:`gradpath.kernels.arch.FPENV`)
--------------------------------------------------------
* x86 (``"mxcsr"``): MXCSR's FTZ (bit 15) and DAZ (bit 6), read and written
  with the LLVM intrinsics ``llvm.x86.sse.stmxcsr`` and ``ldmxcsr``.
* aarch64 (``"fpcr"``): FPCR's FZ (bit 24), which flushes both subnormal
  results and subnormal inputs of the FP and Advanced SIMD (NEON)
  instructions, so it acts as FTZ and DAZ together; read and written with
  ``llvm.aarch64.get.fpcr`` and ``set.fpcr`` (``mrs``/``msr fpcr``). This
  path's code generation is checked for an aarch64 target
  (``tests/test_fpenv_arch.py``) but has not been run on an ARM CPU.
* anywhere else, or with ``GRADPATH_FPENV=none`` (``"none"``): nothing is
  flushed. :func:`fp_mode` is 0, :func:`set_fp_mode` does nothing, and the
  first kernel call warns once (:class:`SubnormalsKept`): results are IEEE
  arithmetic's (equal to the flushed ones wherever nothing is subnormal),
  but vanishing gradients end in subnormal numbers instead of 0 and may run
  several times slower. :func:`flushed` still limits BLAS.

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
import threading
import warnings
from collections.abc import Callable

from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..notice import COMPILE_NOTICE
from .arch import FPENV, MACHINE, X86
from .jit import jit

#: MXCSR bits (x86): flush-to-zero (results) and denormals-are-zero (inputs).
FTZ = 0x8000
DAZ = 0x0040
#: FPCR bit (aarch64): flush-to-zero, for results and inputs alike.
FPCR_FZ = 1 << 24

#: The bits :func:`flushed` sets in this machine's mode (0: nothing to set).
FLUSH_BITS = {"mxcsr": FTZ | DAZ, "fpcr": FPCR_FZ, "none": 0}[FPENV]
#: Bits of :func:`fp_mode` that are sticky exception flags, not mode: MXCSR
#: keeps them in the same register, FPCR does not (they are in FPSR).
STATUS_BITS = 0x3F if FPENV == "mxcsr" else 0


def _call(builder, name: str, ret, args: list):
    fnty = llvm_ir.FunctionType(ret, [a.type for a in args])
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), args)


def emit_read_mode(builder, kind: str):
    """LLVM IR: the calling thread's mode register as an i64 (``kind``
    ``"mxcsr"`` or ``"fpcr"``)."""
    i64 = llvm_ir.IntType(64)
    if kind == "fpcr":
        return _call(builder, "llvm.aarch64.get.fpcr", i64, [])
    slot = cgutils.alloca_once(builder, llvm_ir.IntType(32))
    _call(builder, "llvm.x86.sse.stmxcsr", llvm_ir.VoidType(),
          [builder.bitcast(slot, llvm_ir.IntType(8).as_pointer())])
    return builder.zext(builder.load(slot), i64)


def emit_write_mode(builder, kind: str, value) -> None:
    """LLVM IR: load the i64 ``value`` into the calling thread's mode register."""
    if kind == "fpcr":
        _call(builder, "llvm.aarch64.set.fpcr", llvm_ir.VoidType(), [value])
        return
    slot = cgutils.alloca_once(builder, llvm_ir.IntType(32))
    builder.store(builder.trunc(value, llvm_ir.IntType(32)), slot)
    _call(builder, "llvm.x86.sse.ldmxcsr", llvm_ir.VoidType(),
          [builder.bitcast(slot, llvm_ir.IntType(8).as_pointer())])


@intrinsic
def _read_mode(typingctx):
    """The calling thread's mode register (this machine's :data:`FPENV`)."""
    def codegen(context, builder, signature, args):
        return emit_read_mode(builder, FPENV)
    return types.int64(), codegen


@intrinsic
def _write_mode(typingctx, value):
    """Load ``value`` into the calling thread's mode register."""
    def codegen(context, builder, signature, args):
        emit_write_mode(builder, FPENV, args[0])
        return context.get_dummy_value()
    return types.void(types.int64), codegen


# One definition per mechanism, each on its own lines: Numba's disk cache
# keys a function by its name and first line, so a process with another
# FPENV (GRADPATH_FPENV=none on x86) never loads these compiled for MXCSR.
if FPENV == "mxcsr":
    @jit
    def fp_mode():
        """The calling thread's floating-point mode (MXCSR)."""
        return _read_mode()

    @jit
    def set_fp_mode(mode):
        """Set the calling thread's floating-point mode (MXCSR)."""
        _write_mode(mode)

    @jit
    def _enter_flush():
        """Set FTZ and DAZ; return the previous mode."""
        old = _read_mode()
        _write_mode(old | FLUSH_BITS)
        return old
elif FPENV == "fpcr":  # pragma: no cover - aarch64 only
    @jit
    def fp_mode():
        """The calling thread's floating-point mode (FPCR)."""
        return _read_mode()

    @jit
    def set_fp_mode(mode):
        """Set the calling thread's floating-point mode (FPCR)."""
        _write_mode(mode)

    @jit
    def _enter_flush():
        """Set FZ; return the previous mode."""
        old = _read_mode()
        _write_mode(old | FLUSH_BITS)
        return old
else:
    @jit
    def fp_mode():
        """The calling thread's floating-point mode: 0, none is managed."""
        return 0

    @jit
    def set_fp_mode(mode):
        """Nothing: no floating-point mode is managed here."""
        return None

    @jit
    def _enter_flush():
        """Nothing to set; 0."""
        return 0


#: Names for tests and diagnostics.
read_mxcsr = fp_mode
write_mxcsr = set_fp_mode


class SubnormalsKept(RuntimeWarning):
    """Kernels cannot flush subnormals here and keep IEEE gradual underflow."""


_warned = {"subnormals_kept": False}


def _warn_subnormals_kept() -> None:
    """Warn, once per process, that kernels keep subnormals (FPENV ``"none"``)."""
    if _warned["subnormals_kept"]:
        return
    _warned["subnormals_kept"] = True
    why = ("GRADPATH_FPENV=none" if X86 or MACHINE in ("aarch64", "arm64")
           else f"no flush-to-zero support for {MACHINE or 'this CPU'}")
    warnings.warn(
        f"gradpath: subnormal numbers are kept, not flushed to zero ({why}). Results are "
        "unchanged wherever nothing is subnormal; vanishing gradients end in subnormal "
        "numbers instead of 0 and those calls may run several times slower.",
        SubnormalsKept, stacklevel=3)


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

    Re-entrant; sets no bits while :func:`keep_subnormals` is active, nor
    where :data:`FPENV` is ``"none"`` (then it warns once instead).
    """

    __slots__ = ("_old", "_limit")

    def __init__(self, blas: bool = True) -> None:
        self._limit = blas

    def __enter__(self) -> flushed:
        self._old = None
        if self._limit:
            _BLAS.enter()
        try:
            if _state["enabled"]:
                if FLUSH_BITS:
                    self._old = _enter_flush()
                else:
                    _warn_subnormals_kept()
        except BaseException:
            if self._limit:
                _BLAS.exit()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            set_fp_mode(self._old)
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
