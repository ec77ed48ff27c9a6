"""The recurrent product, owned: weights packed once per call, a register-tiled micro-kernel.

Every time step of every cell multiplies a few batch rows by the same weight
matrix (``h_{t-1} @ W_hh.T`` forward, ``dL/dz_t @ W_hh`` backward). A BLAS
``?gemm`` call repacks the whole matrix at every one of those calls (OpenBLAS
with scalar code): at B = 16, H = 512 the packing costs more than the
arithmetic it feeds. Here the matrix is packed once per kernel call
(:func:`pack`) into column panels of :data:`PANEL_BYTES` (32 float32 or 16
float64 columns, the last panel of a block zero-padded), each panel's K rows
contiguous, and every step runs :func:`product`: for each panel, for each tile
of up to :data:`MR` rows, one micro-kernel keeps the tile's MR x NR sums in
vector registers over all K and stores them once.

The micro-kernel is written in LLVM IR (:func:`_tile`): explicit
``<NR x float>`` vectors and ``llvm.fma``, which LLVM lowers to whatever the
CPU has (two zmm registers per row with AVX-512, four ymm with AVX2, eight
NEON registers on aarch64).

Bits. Every output element is one fused multiply-add chain over k = 0..K-1 in
order, starting from 0: its value depends on neither the tile it is computed
in, nor the panel, nor the thread, nor the CPU's vector width. So results are
bit-identical for any split of rows or columns across threads and on any
machine with FMA (``tests/test_gemm.py``).

Blocks. A packed matrix has ``nblk`` column blocks of equal width (the gate
blocks of a gated cell: i, f, g, o of the LSTM), each padded to whole panels
on its own, so that hidden units ``j0 <= j < j1`` of every block are whole
panels when j0 is a multiple of the panel width (a column split by units).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .arch import host_features, l1d_bytes
from .jit import jit, jit_inline

_WIDE = "+avx512f" in host_features()
#: Bytes of one panel's row: two 512-bit vectors with AVX-512, else two 256-bit
#: (on aarch64: four 128-bit NEON vectors).
PANEL_BYTES = 128 if _WIDE else 64
#: Rows per micro-kernel tile: MR x 2 vector accumulators stay in registers
#: (16 of AVX-512's 32 zmm; 8 of AVX2's 16 ymm with MR 4).
MR = 8 if _WIDE else 4
#: Packed panels up to this size count as staying in the L1 data cache from
#: one step's product to the next (with room for the step's other data).
L1_FIT = l1d_bytes() * 3 // 4


def panel_width(dtype) -> int:
    """Columns per panel for a numpy/Numba float dtype."""
    return PANEL_BYTES // (dtype.bitwidth // 8 if hasattr(dtype, "bitwidth") else dtype.itemsize)


def _make_tile(mr: int, npan: int):
    @intrinsic
    def tile(typingctx, a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta,
             w):
        """``C[i, jNR:(j+1)NR] (+)= sum_k A[i, k] P_j[k, :NR]`` for i < mr, j < npan.

        A's entry (i, k) is ``a[a_off + i*a_rs + k*a_cs]``, panel j's row k the
        NR entries from ``p[p_off + j*pstride + k*ldp]``, C's row i the
        npan*NR entries from ``c[c_off + i*ldc]``; with ``beta`` true the sums
        start from C (the FMA chain goes on), else from 0. Only the first ``w``
        columns of the last panel are C's (read and written one by one; the
        panel's other columns must be readable). One float dtype.
        """
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)
                and p.dtype == a.dtype and c.dtype == a.dtype):
            return None
        dtype = a.dtype
        nr = panel_width(dtype)
        sig = types.void(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta,
                         w)

        def codegen(context, builder, signature, args):
            tys = signature.args
            intp = context.get_value_type(types.intp)
            ao, a_rs_, a_cs_, po, ldp_, ps_, k_, co, ldc_, w_ = (
                context.cast(builder, args[i], tys[i], types.intp)
                for i in (1, 2, 3, 5, 6, 7, 8, 10, 11, 13))
            beta_ = context.cast(builder, args[12], tys[12], types.boolean)
            fty = context.get_value_type(dtype)
            vty = llvm_ir.VectorType(fty, nr)
            esize = dtype.bitwidth // 8

            def data(i):
                return context.make_array(tys[i])(context, builder, args[i]).data

            a_ptr, p_ptr, c_ptr = data(0), data(4), data(9)
            fma = cgutils.get_or_insert_function(
                builder.module, llvm_ir.FunctionType(vty, [vty] * 3),
                f"llvm.fma.v{nr}{'f32' if esize == 4 else 'f64'}")
            zero = llvm_ir.Constant(vty, [llvm_ir.Constant(fty, 0.0)] * nr)
            i32 = llvm_ir.IntType(32)
            mask = llvm_ir.Constant(llvm_ir.VectorType(i32, nr), [llvm_ir.Constant(i32, 0)] * nr)

            def c_at(i, j):
                off = builder.add(co, llvm_ir.Constant(intp, j * nr))
                return builder.gep(c_ptr, [builder.add(off, builder.mul(
                    llvm_ir.Constant(intp, i), ldc_))])

            whole = builder.icmp_signed("==", w_, llvm_ir.Constant(intp, nr))
            part = cgutils.alloca_once(builder, vty)  # a partial panel's row, lane by lane
            part_f = builder.bitcast(part, fty.as_pointer())

            def load_c(i, j, into):
                ptr = c_at(i, j)
                if j < npan - 1:
                    builder.store(builder.load(builder.bitcast(ptr, vty.as_pointer()),
                                               align=esize), into)
                    return
                with builder.if_else(whole) as (then, otherwise):
                    with then:
                        builder.store(builder.load(builder.bitcast(ptr, vty.as_pointer()),
                                                   align=esize), into)
                    with otherwise:
                        builder.store(zero, part)
                        with cgutils.for_range(builder, w_) as lane:
                            builder.store(builder.load(builder.gep(ptr, [lane.index])),
                                          builder.gep(part_f, [lane.index]))
                        builder.store(builder.load(part), into)

            def store_c(i, j, value):
                ptr = c_at(i, j)
                if j < npan - 1:
                    builder.store(value, builder.bitcast(ptr, vty.as_pointer()), align=esize)
                    return
                with builder.if_else(whole) as (then, otherwise):
                    with then:
                        builder.store(value, builder.bitcast(ptr, vty.as_pointer()), align=esize)
                    with otherwise:
                        builder.store(value, part)
                        with cgutils.for_range(builder, w_) as lane:
                            builder.store(builder.load(builder.gep(part_f, [lane.index])),
                                          builder.gep(ptr, [lane.index]))

            accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(npan)]
                    for _ in range(mr)]
            with builder.if_then(beta_):
                for i in range(mr):
                    for j in range(npan):
                        load_c(i, j, accs[i][j])
            rows = [builder.add(ao, builder.mul(llvm_ir.Constant(intp, i), a_rs_))
                    for i in range(mr)]
            panels = [builder.add(po, builder.mul(llvm_ir.Constant(intp, j), ps_))
                      for j in range(npan)]
            with cgutils.for_range(builder, k_) as loop:
                kk = loop.index
                krow = builder.mul(kk, ldp_)
                bvecs = [builder.load(builder.bitcast(
                    builder.gep(p_ptr, [builder.add(panels[j], krow)]), vty.as_pointer()),
                    align=esize) for j in range(npan)]
                col = builder.mul(kk, a_cs_)
                for i in range(mr):
                    ai = builder.load(builder.gep(a_ptr, [builder.add(rows[i], col)]))
                    splat = builder.shuffle_vector(
                        builder.insert_element(llvm_ir.Constant(vty, None), ai,
                                               llvm_ir.Constant(i32, 0)),
                        llvm_ir.Constant(vty, None), mask)
                    for j in range(npan):
                        builder.store(builder.call(fma, [splat, bvecs[j],
                                                         builder.load(accs[i][j])]),
                                      accs[i][j])
            for i in range(mr):
                for j in range(npan):
                    store_c(i, j, builder.load(accs[i][j]))
            return context.get_dummy_value()

        return sig, codegen

    return tile


# (rows, panels) of the tiles: many rows share a panel's loads; a few rows take
# several panels at once, so that 8 or more independent FMA chains hide the
# FMA's latency (a lone row over one panel would wait on it at every k).
_tile81 = _make_tile(8, 1)
_tile41 = _make_tile(4, 1)
_tile22 = _make_tile(2, 2)
_tile21 = _make_tile(2, 1)
_tile14 = _make_tile(1, 4)
_tile12 = _make_tile(1, 2)
_tile11 = _make_tile(1, 1)


#: Rows of a panel filled per pass when :func:`pack` reads a transposed view:
#: one pass reads a short piece of each of the panel's source rows and writes
#: TRANSPOSE_ROWS whole panel rows, all of it in L1.
TRANSPOSE_ROWS = 16


@jit
def pack(M, nblk):
    """Panels of ``M`` (K, N) for :func:`product`: (nblk, panels, K, NR), each of
    the ``nblk`` column blocks (width N / nblk) padded to whole panels with zeros.

    ``M`` may be a transposed view (``W.T``, column-major): it is then read in
    tiles of :data:`TRANSPOSE_ROWS` panel rows, never copied. A C-contiguous
    transposed copy of a (4H, H) float32 matrix is a strided walk over all of
    it (3.5 ms at H = 512, as much as packing both passes' panels).
    """
    K, N = M.shape
    Hb = N // nblk
    nr = PANEL_BYTES // M.itemsize
    npan = -(-Hb // nr)
    P = np.empty((nblk, npan, K, nr), M.dtype)  # only the padding is zeroed
    for g in range(nblk):
        for q in range(npan):
            c0 = g * Hb + q * nr
            w = min(nr, Hb - q * nr)
            panel = P[g, q]
            if M.strides[0] < M.strides[1]:  # a transposed view: M[k, j] contiguous in k
                for k0 in range(0, K, TRANSPOSE_ROWS):
                    k1 = min(K, k0 + TRANSPOSE_ROWS)
                    for j in range(w):
                        for kk in range(k0, k1):
                            panel[kk, j] = M[kk, c0 + j]
            else:  # row-major: a panel row is a contiguous piece of M's row
                for kk in range(K):
                    row = M[kk]
                    for j in range(w):
                        panel[kk, j] = row[c0 + j]
            for kk in range(K):
                for j in range(w, nr):
                    panel[kk, j] = 0.0
    return P


@jit
def pack_recurrent(W_hh):
    """The panels of a cell's recurrent weights W_hh (G, H) for both passes:
    W_hh.T in its G / H gate blocks (forward, ``h @ W_hh.T``) and W_hh
    (backward, ``dL/dz @ W_hh``)."""
    G, H = W_hh.shape
    return pack(W_hh.T, G // H), pack(W_hh, 1)


@jit
def product(A, P, out):
    """``out[...] = A @ M`` from ``P = pack(M, nblk)``: every column (see :func:`product_units`)."""
    product_units(A, P, out, 0, out.shape[1] // P.shape[0], False)


@jit
def product_units(A, P, out, j0, j1, reverse):
    """``out[:, g*Hb + j] = (A @ M)[:, g*Hb + j]`` for every block g and
    ``j0 <= j < j1``, from ``P = pack(M, nblk)``; j0 a multiple of the panel width.

    ``A`` (rows, K) and ``out`` (rows, N) are row-major with unit column stride
    (views of batch rows are fine). Other columns of ``out`` are left alone.

    ``reverse``: visit the panels last to first. A recurrence multiplies by the
    same panels at every step; when they fill the L1 cache, or nearly (W_hh
    of an RNN at H = 64 in float64 is exactly its 32 KB), the same order at
    every step evicts each panel just before it is needed again (the cache
    keeps the most recently used lines), while alternating the order every
    step starts each product on the panels the last one ended with. Each
    output entry is the same FMA chain either way: the same bits.
    """
    rows, K = A.shape
    nblk, npan, _, nr = P.shape
    Hb = out.shape[1] // nblk
    lda = A.strides[0] // A.itemsize
    ldc = out.strides[0] // out.itemsize
    q0 = j0 // nr
    q1 = -(-j1 // nr)
    n8 = rows // 8 * 8 if MR >= 8 else 0
    # a lone row takes up to 4 panels per tile; but when those would be the
    # step's only group and the panels do not stay in L1, 2, so that the
    # reversed order has a group to start on that the last step left in cache
    wide = 4
    if nblk * (q1 - q0) <= 4 and P.size * P.itemsize > L1_FIT:
        wide = 2
    for gg in range(nblk):
        g = nblk - 1 - gg if reverse else gg
        # rows in tiles of 8, panel by panel: a panel stays in cache across the tiles
        for qq in range(q0, q1):
            q = q0 + q1 - 1 - qq if reverse else qq
            poff = (g * npan + q) * K * nr
            w = min(nr, j1 - q * nr)
            for i in range(0, n8, 8):
                _tile81(A, i * lda, lda, 1, P, poff, nr, 0, K, out, i * ldc + g * Hb + q * nr,
                        ldc, False, w)
        # the rows left over (all of them at small batches), several panels per
        # tile: groups of _panels() from the first panel on, or from the last back
        i = n8
        while i < rows:
            mr = _tile_rows(rows - i)
            q = q1 if reverse else q0
            while q > q0 if reverse else q < q1:
                if reverse:
                    m = _panels(mr, q - q0, wide)
                    q -= m
                else:
                    m = _panels(mr, q1 - q, wide)
                _run_tile(mr, m, A, i * lda, lda, 1, P, (g * npan + q) * K * nr, nr, K * nr,
                          K, out, i * ldc + g * Hb + q * nr, ldc, False,
                          min(nr, j1 - (q + m - 1) * nr))
                if not reverse:
                    q += m
            i += mr


#: Bytes of a chunk of X in :func:`grad_product`: the chunk (its rows of the
#: summed dimension) stays in L2 while every tile of the block's rows passes over it.
CHUNK_BYTES = 1 << 18


@jit
def grad_product(Dz, X, C, g0, g1, h0, h1):
    """``C[g0:g1, h0:h1] += Dz[:, g0:g1].T @ X[:, h0:h1]``: a weight gradient
    summed over n rows (every (t, b) of a pass).

    ``Dz`` (n, G), ``X`` (n, H) and ``C`` (G, H) are row-major with unit column
    stride. Each entry of C is one FMA chain over the n rows in order, from
    C's value on entry: the same bits for any split of C into blocks.
    """
    n = Dz.shape[0]
    nr = PANEL_BYTES // X.itemsize
    full = (h1 - h0) // nr
    w = h1 - h0 - full * nr
    ct = h0 + full * nr  # first column of the partial panel
    ldd = Dz.strides[0] // Dz.itemsize
    ldx = X.strides[0] // X.itemsize
    ldc = C.strides[0] // C.itemsize
    KC = max(16, min(512, CHUNK_BYTES // (max(1, h1 - h0) * X.itemsize)))
    # the partial panel of a chunk of X, zero-padded (X's rows may end inside it)
    tail = np.zeros((KC if w > 0 else 0, nr), X.dtype)
    for k0 in range(0, n, KC):
        kc = min(KC, n - k0)
        for r in range(kc if w > 0 else 0):
            xr = X[k0 + r]
            for j in range(w):
                tail[r, j] = xr[ct + j]
        i = g0
        while i < g1:
            mr = _tile_rows(g1 - i)
            q = 0
            while q < full:
                m = _panels(mr, full - q, 4)
                _run_tile(mr, m, Dz, k0 * ldd + i, 1, ldd, X, k0 * ldx + h0 + q * nr, ldx, nr,
                          kc, C, i * ldc + h0 + q * nr, ldc, True, nr)
                q += m
            if w > 0:
                _run_tile(mr, 1, Dz, k0 * ldd + i, 1, ldd, tail, 0, nr, 0, kc, C,
                          i * ldc + ct, ldc, True, w)
            i += mr


@jit_inline
def _tile_rows(left):
    """The rows of the largest tile (8, 4, 2 or 1, at most MR) that fits ``left`` rows."""
    if MR >= 8 and left >= 8:
        return 8
    if left >= 4:
        return 4
    return 2 if left >= 2 else 1


@jit_inline
def _panels(mr, left, wide):
    """Panels a tile of ``mr`` rows takes at once out of ``left``: up to
    ``wide`` (4 or 2) for one row, 2 for two, so that a few rows still run 8
    independent FMA chains (4 with ``wide`` 2: enough where a 512-bit FMA
    issues once a cycle, as on AMD's Zen 4)."""
    if mr == 1:
        if wide >= 4 and left >= 4:
            return 4
        return 2 if left >= 2 else 1
    if mr == 2 and left >= 2:
        return 2
    return 1


@jit_inline
def _run_tile(mr, npn, a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w):
    """The micro-kernel of ``mr`` rows (a :func:`_tile_rows` value) and ``npn``
    panels (a :func:`_panels` value)."""
    if mr == 8:
        _tile81(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w)
    elif mr == 4:
        _tile41(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w)
    elif mr == 2:
        if npn == 2:
            _tile22(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w)
        else:
            _tile21(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w)
    elif npn == 4:
        _tile14(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w)
    elif npn == 2:
        _tile12(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w)
    else:
        _tile11(a, a_off, a_rs, a_cs, p, p_off, ldp, pstride, k, c, c_off, ldc, beta, w)
