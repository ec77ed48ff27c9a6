"""A spin barrier between the threads of one kernel call, and counters one thread waits on.

When a call splits the recurrent product's columns (hidden units) across
threads (:mod:`gradpath.kernels.parallel`), every step needs every thread's
part of the last one: a barrier per step, thousands per call. A futex or
Python-level event costs tens of microseconds per wait; this barrier is one
atomic add and a spin on an atomic load (about a hundred nanoseconds when the
other thread is close), with ``pause`` in the spin and ``sched_yield`` once it
has spun long (a descheduled partner on a loaded machine then gets the core).

The state is one int64 counter, fresh per call, that only grows: a thread
that has passed ``n`` barriers adds 1 and waits until the counter reaches
``parties * (n + 1)``. Nothing is reset, so no thread can race ahead of a
reset. The add is sequentially consistent and the wait's load acquires, so
every write a thread made before the barrier is visible to every thread after
it. Numba has no atomics of its own; these are LLVM's, through ``@intrinsic``.

The same counters pass work from one thread to another without a barrier:
a producer :func:`advance` s a counter per finished item, a consumer
:func:`wait_for` s the count it needs, and :func:`take` hands out numbered
work items (the weight gradients that trail the backward pass,
:func:`gradpath.cells.pipeline.trail`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .arch import X86
from .jit import jit, jit_inline

#: Spins (each with a pause, ~40-140 cycles) before the waiting thread yields the core.
SPINS_BEFORE_YIELD = 4096


#: Bytes each counter of :func:`counters` has to itself: two cache lines (Intel's
#: spatial prefetcher fetches lines in pairs).
COUNTER_BYTES = 128


def counters(n: int) -> tuple[np.ndarray, ...]:
    """``n`` zeroed counters (int64 arrays of shape (1,)), each alone in the
    aligned :data:`COUNTER_BYTES` of memory around it.

    A waiting thread reads its counter in a tight loop. A counter that
    shared a cache line with anything another thread writes (``np.zeros(1)``
    lands wherever malloc puts it: beside a small array's data or an
    array's reference count) would cost the writer a line transfer at every
    write, by where the allocator happened to put it. Here the counters are
    :data:`COUNTER_BYTES` apart with as much padding before the first and
    after the last, so whatever the buffer's address, the aligned block
    around each holds nothing else.
    """
    step = COUNTER_BYTES // 8
    buf = np.zeros((n + 1) * step + 1, np.int64)
    return tuple(buf[i * step:i * step + 1] for i in range(1, n + 1))


def _counter_ptr(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, ary).data


def _rmw(op: str):
    """An intrinsic ``f(state, n)``: atomically apply LLVM's ``atomicrmw op``
    with ``n`` to ``state[0]`` (an int64 array), sequentially consistent;
    return the value before."""
    @intrinsic
    def rmw(typingctx, state, n):
        if not (isinstance(state, types.Array) and state.dtype == types.int64
                and isinstance(n, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            ptr = _counter_ptr(context, builder, signature.args[0], args[0])
            amount = context.cast(builder, args[1], signature.args[1], types.int64)
            return builder.atomic_rmw(op, ptr, amount, "seq_cst")

        return types.int64(state, n), codegen

    return rmw


_add = _rmw("add")
_max = _rmw("max")


@intrinsic
def _count(typingctx, state):
    """``state[0]``, read atomically with acquire ordering."""
    if not (isinstance(state, types.Array) and state.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ptr = _counter_ptr(context, builder, signature.args[0], args[0])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(state), codegen


@intrinsic
def _relax(typingctx, spins):
    """One spin of a wait: ``pause`` (x86), and ``sched_yield`` past
    :data:`SPINS_BEFORE_YIELD` spins."""
    def codegen(context, builder, signature, args):
        if X86:  # elsewhere the spin is a plain load loop (sched_yield still bounds it)
            fn = cgutils.get_or_insert_function(
                builder.module, llvm_ir.FunctionType(llvm_ir.VoidType(), []),
                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        long = builder.icmp_signed(">", args[0], llvm_ir.Constant(llvm_ir.IntType(64),
                                                                  SPINS_BEFORE_YIELD))
        with builder.if_then(long, likely=False):
            fn = cgutils.get_or_insert_function(
                builder.module, llvm_ir.FunctionType(llvm_ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(types.int64), codegen


@jit_inline
def take(state):
    """Add 1 to ``state[0]`` and return the value before: each caller gets a
    number of its own (a claim on a work item)."""
    return _add(state, 1)


@jit_inline
def raise_to(state, n):
    """Set ``state[0]`` to ``n`` if it is less (a count that is complete,
    whatever was counted before)."""
    _max(state, n)


@jit_inline
def advance(state):
    """Count one more finished item in ``state`` (every write before it is
    visible to a thread that :func:`wait_for` saw the count)."""
    _add(state, 1)


@jit_inline
def wait_for(state, n):
    """Spin until ``state[0] >= n``: ``pause``, then ``sched_yield`` once it
    has spun long (:func:`_relax`)."""
    spins = 0
    while _count(state) < n:
        spins += 1
        _relax(spins)


@jit_inline
def barrier(state, parties, passed):
    """Wait until all ``parties`` threads reached their barrier number
    ``passed`` (0, 1, 2, ...); return ``passed + 1``. With one party, nothing."""
    if parties > 1:
        _add(state, 1)
        wait_for(state, parties * (passed + 1))
    return passed + 1


#: What :func:`open_barriers` adds to a counter: more barriers than any call passes.
OPENED = 1 << 40


@jit
def open_barriers(state):
    """Let every thread through every later barrier of ``state`` (a thread
    that failed calls it, so that its partners do not wait for it forever;
    their results are then discarded with the failed call)."""
    _add(state, OPENED)
