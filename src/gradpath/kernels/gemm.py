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

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import jit, jit_inline

_WIDE = "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
#: Bytes of one panel's row: two 512-bit vectors with AVX-512, else two 256-bit.
PANEL_BYTES = 128 if _WIDE else 64
#: Rows per micro-kernel tile: MR x 2 vector accumulators stay in registers
#: (16 of AVX-512's 32 zmm; 8 of AVX2's 16 ymm with MR 4).
MR = 8 if _WIDE else 4


def panel_width(dtype) -> int:
    """Columns per panel for a numpy/Numba float dtype."""
    return PANEL_BYTES // (dtype.bitwidth // 8 if hasattr(dtype, "bitwidth") else dtype.itemsize)


def _make_tile(mr: int):
    @intrinsic
    def tile(typingctx, a, a_off, a_rs, a_cs, p, p_off, ldp, k, c, c_off, ldc, beta):
        """``C[i, :NR] (+)= sum_k A[i, k] P[k, :NR]`` for i < mr.

        A's entry (i, k) is ``a[a_off + i*a_rs + k*a_cs]``, P's row k the NR
        entries from ``p[p_off + k*ldp]``, C's row i the NR entries from
        ``c[c_off + i*ldc]``; with ``beta`` true the sums start from C (the FMA
        chain goes on), else from 0. One float dtype throughout.
        """
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)
                and p.dtype == a.dtype and c.dtype == a.dtype):
            return None
        dtype = a.dtype
        nr = panel_width(dtype)
        sig = types.void(a, a_off, a_rs, a_cs, p, p_off, ldp, k, c, c_off, ldc, beta)

        def codegen(context, builder, signature, args):
            tys = signature.args
            intp = context.get_value_type(types.intp)
            ao, a_rs_, a_cs_, po, ldp_, k_, co, ldc_ = (
                context.cast(builder, args[i], tys[i], types.intp)
                for i in (1, 2, 3, 5, 6, 7, 9, 10))
            beta_ = context.cast(builder, args[11], tys[11], types.boolean)
            fty = context.get_value_type(dtype)
            vty = llvm_ir.VectorType(fty, nr)
            esize = dtype.bitwidth // 8

            def data(i):
                return context.make_array(tys[i])(context, builder, args[i]).data

            a_ptr, p_ptr, c_ptr = data(0), data(4), data(8)
            fma = cgutils.get_or_insert_function(
                builder.module, llvm_ir.FunctionType(vty, [vty] * 3),
                f"llvm.fma.v{nr}{'f32' if esize == 4 else 'f64'}")
            zero = llvm_ir.Constant(vty, [llvm_ir.Constant(fty, 0.0)] * nr)
            i32 = llvm_ir.IntType(32)
            mask = llvm_ir.Constant(llvm_ir.VectorType(i32, nr), [llvm_ir.Constant(i32, 0)] * nr)

            def c_row(i):
                off = builder.add(co, builder.mul(llvm_ir.Constant(intp, i), ldc_))
                return builder.bitcast(builder.gep(c_ptr, [off]), vty.as_pointer())

            accs = [cgutils.alloca_once_value(builder, zero) for _ in range(mr)]
            with builder.if_then(beta_):
                for i in range(mr):
                    builder.store(builder.load(c_row(i), align=esize), accs[i])
            rows = [builder.add(ao, builder.mul(llvm_ir.Constant(intp, i), a_rs_))
                    for i in range(mr)]
            with cgutils.for_range(builder, k_) as loop:
                kk = loop.index
                bptr = builder.gep(p_ptr, [builder.add(po, builder.mul(kk, ldp_))])
                bvec = builder.load(builder.bitcast(bptr, vty.as_pointer()), align=esize)
                col = builder.mul(kk, a_cs_)
                for i in range(mr):
                    ai = builder.load(builder.gep(a_ptr, [builder.add(rows[i], col)]))
                    splat = builder.shuffle_vector(
                        builder.insert_element(llvm_ir.Constant(vty, None), ai,
                                               llvm_ir.Constant(i32, 0)),
                        llvm_ir.Constant(vty, None), mask)
                    builder.store(builder.call(fma, [splat, bvec, builder.load(accs[i])]),
                                  accs[i])
            for i in range(mr):
                builder.store(builder.load(accs[i]), c_row(i), align=esize)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile8 = _make_tile(8)
_tile4 = _make_tile(4)
_tile2 = _make_tile(2)
_tile1 = _make_tile(1)


@jit
def pack(M, nblk):
    """Panels of ``M`` (K, N) for :func:`product`: (nblk, panels, K, NR), each of
    the ``nblk`` column blocks (width N / nblk) padded to whole panels with zeros."""
    K, N = M.shape
    Hb = N // nblk
    nr = PANEL_BYTES // M.itemsize
    npan = -(-Hb // nr)
    P = np.zeros((nblk, npan, K, nr), M.dtype)
    for g in range(nblk):
        for q in range(npan):
            c0 = g * Hb + q * nr
            w = min(nr, Hb - q * nr)
            panel = P[g, q]
            for kk in range(K):
                row = M[kk]
                for j in range(w):
                    panel[kk, j] = row[c0 + j]
    return P


@jit
def pack_recurrent(W_hh):
    """The panels of a cell's recurrent weights W_hh (G, H) for both passes:
    W_hh.T in its G / H gate blocks (forward, ``h @ W_hh.T``) and W_hh
    (backward, ``dL/dz @ W_hh``)."""
    G, H = W_hh.shape
    return pack(np.ascontiguousarray(W_hh.T), G // H), pack(W_hh, 1)


@jit
def product(A, P, out):
    """``out[...] = A @ M`` from ``P = pack(M, nblk)``: every column (see :func:`product_units`)."""
    product_units(A, P, out, 0, out.shape[1] // P.shape[0])


@jit
def product_units(A, P, out, j0, j1):
    """``out[:, g*Hb + j] = (A @ M)[:, g*Hb + j]`` for every block g and
    ``j0 <= j < j1``, from ``P = pack(M, nblk)``; j0 a multiple of the panel width.

    ``A`` (rows, K) and ``out`` (rows, N) are row-major with unit column stride
    (views of batch rows are fine). Other columns of ``out`` are left alone.
    """
    rows, K = A.shape
    nblk, npan, _, nr = P.shape
    Hb = out.shape[1] // nblk
    lda = A.strides[0] // A.itemsize
    ldc = out.strides[0] // out.itemsize
    tmp = np.empty((MR, nr), out.dtype)
    for g in range(nblk):
        for q in range(j0 // nr, -(-j1 // nr)):
            c0 = g * Hb + q * nr
            w = min(nr, j1 - q * nr)
            poff = (g * npan + q) * K * nr
            i = 0
            while i < rows:
                mr = _tile_rows(rows - i)
                if w == nr:
                    _run_tile(mr, A, i * lda, lda, 1, P, poff, nr, K, out, i * ldc + c0,
                                   ldc, False)
                else:
                    _run_tile(mr, A, i * lda, lda, 1, P, poff, nr, K, tmp, 0, nr, False)
                    for r in range(mr):
                        orow = out[i + r]
                        trow = tmp[r]
                        for j in range(w):
                            orow[c0 + j] = trow[j]
                i += mr


#: Bytes of a chunk of X in :func:`grad_product`: the chunk (its rows of the
#: summed dimension) stays in L2 while every tile of the block's rows passes over it.
CHUNK_BYTES = 1 << 18


@jit
def grad_product(Dz, X, C, g0, g1):
    """``C[g0:g1] += Dz[:, g0:g1].T @ X``: a weight gradient summed over n rows
    (every (t, b) of a pass), for the rows ``g0 <= g < g1`` of C; g0 a multiple of 8.

    ``Dz`` (n, G), ``X`` (n, H) and ``C`` (G, H) are row-major with unit column
    stride. Each entry of C is one FMA chain over the n rows in order, from
    C's value on entry: the same bits for any split of the rows of C.
    """
    n, G = Dz.shape
    H = X.shape[1]
    nr = PANEL_BYTES // X.itemsize
    full = H // nr
    w = H - full * nr
    ldd = Dz.strides[0] // Dz.itemsize
    ldx = X.strides[0] // X.itemsize
    ldc = C.strides[0] // C.itemsize
    KC = max(16, min(512, CHUNK_BYTES // (H * X.itemsize)))
    tail = np.zeros((KC, nr), X.dtype)  # the last, partial panel of a chunk of X, zero-padded
    tmp = np.empty((MR, nr), C.dtype)
    for k0 in range(0, n, KC):
        kc = min(KC, n - k0)
        if w > 0:
            for r in range(kc):
                xr = X[k0 + r]
                for j in range(w):
                    tail[r, j] = xr[full * nr + j]
        i = g0
        while i < g1:
            mr = _tile_rows(g1 - i)
            for q in range(full):
                _run_tile(mr, Dz, k0 * ldd + i, 1, ldd, X, k0 * ldx + q * nr, ldx, kc,
                               C, i * ldc + q * nr, ldc, True)
            if w > 0:
                for r in range(mr):
                    for j in range(w):
                        tmp[r, j] = C[i + r, full * nr + j]
                _run_tile(mr, Dz, k0 * ldd + i, 1, ldd, tail, 0, nr, kc, tmp, 0, nr, True)
                for r in range(mr):
                    for j in range(w):
                        C[i + r, full * nr + j] = tmp[r, j]
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
def _run_tile(mr, a, a_off, a_rs, a_cs, p, p_off, ldp, k, c, c_off, ldc, beta):
    """The micro-kernel of ``mr`` rows (a :func:`_tile_rows` value)."""
    if mr == 8:
        _tile8(a, a_off, a_rs, a_cs, p, p_off, ldp, k, c, c_off, ldc, beta)
    elif mr == 4:
        _tile4(a, a_off, a_rs, a_cs, p, p_off, ldp, k, c, c_off, ldc, beta)
    elif mr == 2:
        _tile2(a, a_off, a_rs, a_cs, p, p_off, ldp, k, c, c_off, ldc, beta)
    else:
        _tile1(a, a_off, a_rs, a_cs, p, p_off, ldp, k, c, c_off, ldc, beta)
