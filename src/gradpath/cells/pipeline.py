"""The kernel pipeline, written once for every cell.

Forward -> head -> backward -> weight gradients.

A cell module (:mod:`gradpath.cells.rnn`, ...) supplies its step functions,
all compiled, with one signature per role (:class:`Kernels`); this module
runs them in order, on the calling thread (:func:`serial`, itself compiled)
or over row blocks on several threads (:func:`loss_and_grads`,
:mod:`gradpath.kernels.parallel`), each block every role in one compiled call
(:func:`block`) with a barrier between the passes. The blocks depend on the
shape only, so the bits do not depend on the thread count.

The roles (``st`` is the cell's tuple of state arrays, ``st[0]`` the hidden
states hs (T+1, B, H) with ``hs[t + 1] = h_t``; ``rec`` its recurrent
parameters as the kernels take them; ``w`` what :attr:`Kernels.prepare`
makes of them)::

    prepare(rec) -> w                        transposes etc., once per call
    start(st, init)                          the initial states (h0[, c0])
    forward_rows(x, lengths, act, w, st, cols, b0, b1)
    adjoints(x, st) -> (carry, norms)        zeroed (B, H) carries and (T, B) norms
    grad_parts(x, st) -> part                a row block's own gradient sums
    backward_rows(dy, W_out, x, lengths, act, w, st, carry, norms, part, cols, b0, b1)
    grad_arrays(x, st) -> (acc, G)           zeroed after-the-loop gradient arrays
    grad_columns(x, st, acc, g0, g1, t0, t1) columns g0..g1 of those gradients,
                                             summed over the steps t0..t1
    grads_done(x, st, acc, part) -> grads    the recurrent parameters' gradients

A block's step functions do the elementwise work of its rows b0..b1 and its
share ``cols`` of each step's recurrent product (:func:`step_product`): its
rows, or, when the call splits the product by hidden units, every row and its
units, between barriers. Either way every number is computed by the same
operations in the same order, so the split never changes a bit.

A cell accumulates its weight gradients either during the backward pass,
per row block (``part``; the blocks' parts are summed in block order), or
after it, over column blocks of the stored pre-activation gradients
(``acc``); a role it does not use returns ``()`` or does nothing.

Trailing weight gradients. A call too small to split its rows (one
sequence, say) still has a second core: there the after-the-loop weight
gradients are summed in chunks of steps from the last step back
(:func:`trail`, chunk size :func:`gradpath.kernels.parallel.trail_steps`),
and a helper thread (:attr:`Kernels.trail`) sums each chunk as soon as the
backward pass has finished its steps, while that pass goes on. The chunks
are fixed by the shape and summed in the same order whoever sums them, so
the bits do not depend on the thread count either.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels.common import borrow, keep, output_head
from ..kernels.fpenv import entry
from ..kernels.gemm import pack_recurrent, product_units
from ..kernels.jit import jit, jit_inline
from ..kernels.parallel import (
    bounds,
    n_blocks,
    n_column_blocks,
    run_beside,
    run_blocks,
    run_phases,
    sum_parts,
    threads,
    trail_steps,
    unit_bounds,
)
from ..kernels.sync import advance, barrier, counters, raise_to, take, wait_for


class Kernels(NamedTuple):
    """A cell's compiled step functions (the roles of the module docstring)
    and its compiled :func:`serial` and :func:`block` specialisations."""

    prepare: object
    start: object
    forward_rows: object
    adjoints: object
    grad_parts: object
    backward_rows: object
    grad_arrays: object
    grad_columns: object
    grads_done: object
    serial: object
    #: The cell's compiled :func:`block` specialisation.
    block: object
    #: The cell's compiled :func:`trail` specialisation (the helper thread's
    #: share of a call that is not split), for a cell with ``grad_columns``.
    trail: object = None
    #: Whether the cell has a dense recurrent product (W_hh h), which a call
    #: may split by hidden units (the IndRNN's is elementwise: rows only).
    dense: bool = True


@jit_inline
def serial(prepare, start, forward_rows, adjoints, grad_parts, backward_rows, grad_columns,
           grads_done, x, rec, init, W_out, b_out, lengths, target_f, target_i, act, loss_code,
           score, st, dy, acc, G, sync):
    """The whole call on the calling thread, every role once over all rows;
    the after-the-loop weight gradients (``acc`` and its G columns, from
    ``grad_arrays``) by :func:`trail`, with a helper thread or alone.

    A cell calls this from its own compiled ``serial`` with its step
    functions. It is inlined there (at Numba's IR level), so the step
    functions are called directly: passed as first-class function values
    between compiled functions, they would make the caller uncacheable.
    """
    B = x.shape[1]
    w = prepare(rec)
    start(st, init)
    cols = whole(x, st, sync[0])
    # the passes run on what a helper thread shares (see trail), borrowed;
    # what the call returns comes from the caller's own arrays (a borrowed
    # array must not outlive the call)
    xb, lb, Wb, stb, dyb, wb, cb = borrow((x, lengths, W_out, st, dy, w, cols))
    forward_rows(xb, lb, act, wb, stb, cb, 0, B)
    loss, dW_out, db_out = output_head(st[0], lengths, score, W_out, b_out, target_f, target_i,
                                       loss_code, dy)
    carry, norms = adjoints(x, st)
    part = grad_parts(x, st)
    ab, nb, pb = borrow((carry, norms, part))
    backward_rows(dyb, Wb, xb, lb, act, wb, stb, ab, nb, pb, cb, 0, B)
    keep((w, cols))  # made here, used through their borrowed copies until now
    raise_to(sync[0], x.shape[0])  # every step is through (a cell may not count them)
    trail(grad_columns, x, st, acc, G, sync)
    return loss, grads_done(x, st, acc, part), dW_out, db_out, carry, norms


@jit_inline
def trail(grad_columns, x, st, acc, G, sync):
    """The after-the-loop weight gradients in chunks of ``steps`` steps, from
    the last step back, each summed once its steps are through the backward
    pass; on the calling thread after that pass, or on a helper thread
    behind it (each thread calls this; they share ``sync``).

    ``sync`` = (progress, claim, done, steps): ``progress`` counts the
    backward pass's finished steps (:func:`step_done`), ``claim`` hands out
    the chunks in order, ``done`` counts the chunks summed. A chunk waits for
    its steps and for the chunk before it, so every entry of the gradients is
    one chain of sums in the same order, whoever sums each chunk. Returns
    when every chunk is summed.
    """
    # shared with the other thread of the call: borrowed (see block)
    x, st, acc, sync = borrow((x, st, acc, sync))
    progress, claim, done, steps = sync
    T = x.shape[0]
    n = -(-T // steps)
    c = take(claim)
    while c < n:
        t1 = T - c * steps
        t0 = max(0, t1 - steps)
        wait_for(progress, T - t0)
        wait_for(done, c)
        grad_columns(x, st, acc, 0, G, t0, t1)
        advance(done)
        c = take(claim)
    wait_for(done, n)


#: The phases of a split call (:func:`block`): forward, output head, backward,
#: the weight gradients after the loop.
PHASES = 4


@jit_inline
def block(forward_rows, backward_rows, grad_columns, x, lengths, act, w, st, head, out, carry,
          norms, acc, phase, part, fcols, bcols, c, g0, g1, parties, p0, p1, b0, b1):
    """Phases ``p0 <= p < p1`` of row block ``c`` (rows b0..b1) of a split call.

    0: the forward pass of its rows (``fcols``' share of each step's product);
    1: block 0 alone: the output head over every row (``head`` = W_out, b_out,
    target_f, target_i, loss_code, score, dy), into ``out`` = loss (1,),
    dW_out, db_out; 2: the backward pass of its rows (``bcols``),
    its gradient sums into ``part``; 3: columns g0..g1 of the after-the-loop
    weight gradients. A barrier of ``parties`` threads (counter ``phase``)
    opens phase 0 and separates consecutive phases: a block on a thread of
    its own runs all of them in one call, and one thread runs the blocks
    phase by phase (one party). The first barrier is the calling thread's
    ready signal to its helpers (``run_phases``' ``ready``). Inlined into
    each cell's ``block``, like :func:`serial`.
    """
    # the blocks share these arrays: borrowed, no thread counts their owners' references
    x, lengths, w, st, head, out, carry, norms, acc, phase, part, fcols, bcols = borrow(
        (x, lengths, w, st, head, out, carry, norms, acc, phase, part, fcols, bcols))
    W_out, b_out, target_f, target_i, loss_code, score, dy = head
    passed = 0
    if p0 == 0:  # block 0's arrival, without the GIL, lets the others' threads take it
        passed = barrier(phase, parties, passed)
    for p in range(p0, p1):
        if p > p0:
            passed = barrier(phase, parties, passed)
        if p == 0:
            forward_rows(x, lengths, act, w, st, fcols, b0, b1)
        elif p == 1:
            if c == 0:
                v, dW, db = output_head(st[0], lengths, score, W_out, b_out, target_f,
                                        target_i, loss_code, dy)
                out[0][0] = v
                out[1][...] = dW
                out[2][...] = db
        elif p == 2:
            backward_rows(dy, W_out, x, lengths, act, w, st, carry, norms, part, bcols, b0, b1)
        else:  # a split call sums every step at once (trail_steps: one chunk)
            grad_columns(x, st, acc, g0, g1, 0, x.shape[0])


@entry
def loss_and_grads(k: Kernels, gates: int, x, rec, init, W_out, b_out, lengths, target_f,
                   target_i, act, loss_code, score, st, dy):
    """Loss, the recurrent parameters' gradients (a tuple in ``rec``'s order),
    dW_out, db_out, the carries dL/d(initial states) and the per-step norms.

    ``st`` (the cell's state arrays) and ``dy`` (T, B, O) are scratch space.
    Small calls run :attr:`Kernels.serial`; larger ones split rows over
    threads (:func:`gradpath.kernels.parallel.n_blocks`, which sizes the work
    by the cell's ``gates``, H-row blocks of its pre-activation), and the
    recurrent product by rows or by units (:func:`block_cols`). Each block
    runs the whole call (:attr:`Kernels.block`, the :data:`PHASES`), so the
    threads are handed work once per call.
    """
    T, B, _ = x.shape
    H = st[0].shape[2]
    nb = n_blocks(T, B, H, gates * H)
    if nb == 1:
        acc, G = k.grad_arrays(x, st)
        steps = trail_steps(T, B, H, G, x.dtype.itemsize) if k.trail is not None else T
        sync = (*counters(3), steps)
        args = (x, rec, init, W_out, b_out, lengths, target_f, target_i, act, loss_code, score,
                st, dy, acc, G, sync)
        if steps < T and threads() > 1:
            # the helper has nothing to sum before the backward pass's first step
            return run_beside(k.serial, args, k.trail, (x, st, acc, G, sync), counters=sync[:3],
                              ready=(sync[0], 1))
        return k.serial(*args)
    w = k.prepare(rec)
    k.start(st, init)
    # the counters of the call's barriers: between the phases, and (split by
    # units) at every step of the forward and of the backward pass
    phase, fwd, bwd = counters(3)
    fcols = block_cols(nb, x, st, k.dense, fwd)
    bcols = block_cols(nb, x, st, k.dense, bwd)
    carry, norms = k.adjoints(x, st)
    parts = [k.grad_parts(x, st) for _ in fcols]
    acc, G = k.grad_arrays(x, st)
    columns = bounds(n_column_blocks(nb, G), G)
    columns += [(G, G)] * (len(fcols) - len(columns))  # blocks with no columns of their own
    loss = np.zeros(1)
    dW_out = np.empty_like(W_out)
    db_out = np.empty_like(b_out)
    own = [(p, f, b, c, g0, g1) for c, (p, f, b, (g0, g1)) in enumerate(zip(
        parts, fcols, bcols, columns, strict=True))]
    head = (W_out, b_out, target_f, target_i, loss_code, score, dy)
    run_phases(k.block, PHASES, nb, B, x, lengths, act, w, st, head, (loss, dW_out, db_out),
               carry, norms, acc, phase, per_block=own, barriers=(phase, fwd, bwd),
               ready=(phase, 1))
    part = tuple(sum_parts([p[i] for p in parts]) for i in range(len(parts[0])))
    return loss[0], k.grads_done(x, st, acc, part), dW_out, db_out, carry, norms


@entry
def states(k: Kernels, gates: int, x, rec, init, lengths, act, st):
    """The forward pass into the state arrays ``st`` (every one of them as the
    backward pass would find it), from the initial states ``init``."""
    T, B, _ = x.shape
    H = st[0].shape[2]
    w = k.prepare(rec)
    k.start(st, init)
    nb = n_blocks(T, B, H, gates * H)
    cols = block_cols(nb, x, st, k.dense, counters(1)[0])
    run_blocks(k.forward_rows, nb, B, x, lengths, act, w, st, per_block=[(c,) for c in cols])
    return st


def block_cols(nb: int, x, st, dense: bool, state) -> list[tuple]:
    """Each row block's ``cols`` (see :func:`step_product`): its own rows and
    every unit, or, when :func:`gradpath.kernels.parallel.split_by_units` says
    so (and the blocks run on threads of their own), every row and its own
    units. One pass's: ``state``, a fresh zero int64 (1,), is the counter of
    that pass's barriers."""
    B = x.shape[1]
    H = st[0].shape[2]
    shared = np.empty((B, H), x.dtype)
    units = unit_bounds(nb, H, x.dtype.itemsize) if dense else None
    # each block its own step count (no helper reads it, see trail): no cache
    # line passed between the threads at every step
    if units is not None and len(units) == nb and threads() > 1:
        progress = counters(len(units))
        return [(0, B, j0, j1, state, nb, shared, progress[i])
                for i, (j0, j1) in enumerate(units)]
    rows = bounds(nb, B)
    progress = counters(len(rows))
    return [(b0, b1, 0, H, state, 1, shared, progress[i]) for i, (b0, b1) in enumerate(rows)]


# -- roles that several cells share ---------------------------------------------


@jit_inline
def step_product(A, P, out, cols, passed, t):
    """``out = A @ M`` (``P`` = M packed), this block's share of step ``t``'s
    recurrent product; returns the barriers passed. The panels are visited in
    the opposite order at every other step (``product_units``' ``reverse``:
    the panels the last step ended with are still in cache).

    ``cols`` = (p0, p1, j0, j1, state, parties, shared, progress) says which share: a
    row split takes its own rows p0..p1 and every unit; a split by columns
    takes every row and its own units j0..j1, between two barriers (every row
    of ``A`` is complete before, every unit of ``out`` after). With one party
    the barriers are no-ops. ``shared`` is a (B, H) scratch array that every
    block of the call sees; ``progress`` counts the backward pass's finished
    steps (:func:`step_done`).
    """
    p0, p1, j0, j1, state, parties, _, _ = cols
    passed = barrier(state, parties, passed)
    product_units(A[p0:p1], P, out[p0:p1], j0, j1, t % 2 == 1)
    return barrier(state, parties, passed)


@jit_inline
def step_done(cols):
    """One more step of the backward pass finished, every row of it (what a
    trailing helper waits for: :func:`trail`)."""
    advance(cols[7])


@jit_inline
def whole(x, st, progress):
    """``cols`` for a block that takes every row and every unit (one thread)."""
    B = x.shape[1]
    H = st[0].shape[2]
    return (0, B, 0, H, np.zeros(1, np.int64), 1, np.empty((B, H), x.dtype), progress)


@jit
def prepare_dense(rec):
    """(W_hh.T packed, W_ih.T, b, W_hh packed) of a cell with dense W_ih, W_hh
    and b: the recurrent weights in panels for both passes
    (:func:`gradpath.kernels.gemm.pack_recurrent`, once per call), the input
    weights' transpose C-contiguous."""
    W_ih, W_hh, b = rec
    fwd, bwd = pack_recurrent(W_hh)
    return fwd, np.ascontiguousarray(W_ih.T), b, bwd


@jit
def start_h(st, init):
    """hs[0] = h0."""
    st[0][0] = init[0]


@jit
def adjoints_h(x, st):
    """A zero carry (B, H) for dL/dh and zero norms (T, B) of a cell whose state is h."""
    T, B, _ = x.shape
    H = st[0].shape[2]
    return (np.zeros((B, H), x.dtype),), (np.zeros((T, B), x.dtype),)


@jit
def no_parts(x, st):
    """No per-block gradient sums (a cell that computes them after the loop)."""
    return ()


@jit
def no_arrays(x, st):
    """No after-the-loop gradients (a cell that sums them during the loop)."""
    return (), 0


@jit
def no_columns(x, st, acc, g0, g1, t0, t1):
    pass


@jit
def parts_done(x, st, acc, part):
    """The gradients a cell summed per row block during the loop, as they are."""
    return part


def empty_states(shapes: tuple[tuple[int, ...], ...], dtype) -> tuple[np.ndarray, ...]:
    """Fresh state arrays of the given shapes."""
    return tuple(np.empty(s, dtype) for s in shapes)
