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


@intrinsic
def _clock_ns(typingctx, clock):
    """``clock_gettime(clock)`` in nanoseconds (``clock``: a ``time.CLOCK_*`` id)."""
    if not isinstance(clock, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i64, i32 = llvm_ir.IntType(64), llvm_ir.IntType(32)
        ts = cgutils.alloca_once(builder, llvm_ir.ArrayType(i64, 2))
        fn = cgutils.get_or_insert_function(
            builder.module, llvm_ir.FunctionType(i32, [i32, cgutils.voidptr_t]), "clock_gettime")
        clk = context.cast(builder, args[0], signature.args[0], types.int32)
        builder.call(fn, [clk, builder.bitcast(ts, cgutils.voidptr_t)])
        sec = builder.load(cgutils.gep(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, llvm_ir.Constant(i64, 1_000_000_000)), nsec)

    return types.int64(clock), codegen


@intrinsic
def _count_at(typingctx, addr):
    """The int64 at address ``addr``, read atomically with acquire ordering."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i64 = llvm_ir.IntType(64)
        ptr = builder.inttoptr(context.cast(builder, args[0], signature.args[0], types.int64),
                               i64.as_pointer())
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(addr), codegen


@jit_inline
def _spin(addr, n, budget_ns, clock):
    """Spin until the counter at ``addr`` reaches ``n``: True; or, with
    ``budget_ns >= 0``, until that many nanoseconds of ``clock`` have passed
    without it: False. ``pause``, then ``sched_yield`` once it has spun long."""
    start = _clock_ns(clock) if budget_ns >= 0 else 0
    spins = 0
    while _count_at(addr) < n:
        spins += 1
        _relax(spins)
        if budget_ns >= 0 and spins % 64 == 0 and _clock_ns(clock) - start > budget_ns:
            return _count_at(addr) >= n
    return True


@intrinsic
def _address(typingctx, state):
    """The address of ``state[0]`` (an int64 array), as an int64."""
    if not (isinstance(state, types.Array) and state.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ptr = _counter_ptr(context, builder, signature.args[0], args[0])
        return builder.ptrtoint(ptr, llvm_ir.IntType(64))

    return types.int64(state), codegen


@jit
def spin_until(state, n, budget_ns, clock):
    """:func:`_spin` on ``state[0]``, with the GIL released (a caller waiting
    for its helper's end)."""
    return _spin(_address(state), n, budget_ns, clock)


@jit
def publish(posted, n, ready, counter, count):
    """Post job ``n`` to a worker spinning in :func:`finish_then_spin`: first
    ``ready`` = (the address of ``counter[0]``, ``count``), or no ready
    signal if ``counter`` is ``ready`` itself; then ``posted[0]`` = n
    (sequentially consistent, so the worker that sees n sees them)."""
    addr = _address(counter)
    ready[0] = 0 if addr == _address(ready) else addr
    ready[1] = count
    _max(posted, n)


@jit
def finish_then_spin(done, finished, posted, n, ready, budget_ns, ready_ns, clock):
    """A worker between jobs, in one call with the GIL released: raise
    ``done[0]`` to ``finished``; :func:`spin_until` ``posted[0] >= n`` (False
    if ``budget_ns`` passes first); then, if ``ready[0]`` holds a counter's
    address, spin until that counter reaches ``ready[1]`` or ``ready_ns``
    pass (the caller's own kernel counts there once it runs without the GIL,
    so the worker does not go to sleep waiting for the GIL the caller holds)."""
    _max(done, finished)
    if not _spin(_address(posted), n, budget_ns, clock):
        return False
    if ready[0] != 0:
        _spin(ready[0], ready[1], ready_ns, clock)
    return True
