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
    def tile(typingctx, a, a_off, lda, p, p_off, k, c, c_off, ldc):
        """``C[i, :NR] = sum_k A[i, k] P[k, :NR]`` for i < mr: A at ``a_off``
        with leading dimension ``lda``, one packed panel P (K x NR, contiguous)
        at ``p_off``, C at ``c_off`` with ``ldc``; all one float dtype."""
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)
                and p.dtype == a.dtype and c.dtype == a.dtype):
            return None
        dtype = a.dtype
        nr = panel_width(dtype)
        sig = types.void(a, a_off, lda, p, p_off, k, c, c_off, ldc)

        def codegen(context, builder, signature, args):
            av, ao, lda_, pv, po, k_, cv, co, ldc_ = args
            tys = signature.args
            intp = context.get_value_type(types.intp)

            def idx(i):
                return context.cast(builder, args[i], tys[i], types.intp)

            ao, lda_, po, k_, co, ldc_ = (idx(i) for i in (1, 2, 4, 5, 7, 8))
            fty = context.get_value_type(dtype)
            vty = llvm_ir.VectorType(fty, nr)
            esize = dtype.bitwidth // 8

            def data(aryty, value):
                return context.make_array(aryty)(context, builder, value).data

            a_ptr, p_ptr, c_ptr = data(tys[0], av), data(tys[3], pv), data(tys[6], cv)
            zero = llvm_ir.Constant(vty, [llvm_ir.Constant(fty, 0.0)] * nr)
            mask = llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), nr),
                                    [llvm_ir.Constant(llvm_ir.IntType(32), 0)] * nr)
            fma = cgutils.get_or_insert_function(
                builder.module, llvm_ir.FunctionType(vty, [vty] * 3),
                f"llvm.fma.v{nr}{'f32' if esize == 4 else 'f64'}")
            accs = [cgutils.alloca_once_value(builder, zero) for _ in range(mr)]
            rows = [builder.add(ao, builder.mul(llvm_ir.Constant(intp, i), lda_))
                    for i in range(mr)]
            nr_c = llvm_ir.Constant(intp, nr)
            with cgutils.for_range(builder, k_) as loop:
                kk = loop.index
                bptr = builder.gep(p_ptr, [builder.add(po, builder.mul(kk, nr_c))])
                bvec = builder.load(builder.bitcast(bptr, vty.as_pointer()), align=esize)
                for i in range(mr):
                    ai = builder.load(builder.gep(a_ptr, [builder.add(rows[i], kk)]))
                    splat = builder.shuffle_vector(
                        builder.insert_element(llvm_ir.Constant(vty, None), ai,
                                               llvm_ir.Constant(llvm_ir.IntType(32), 0)),
                        llvm_ir.Constant(vty, None), mask)
                    builder.store(builder.call(fma, [splat, bvec, builder.load(accs[i])]), accs[i])
            for i in range(mr):
                off = builder.add(co, builder.mul(llvm_ir.Constant(intp, i), ldc_))
                cptr = builder.bitcast(builder.gep(c_ptr, [off]), vty.as_pointer())
                builder.store(builder.load(accs[i]), cptr, align=esize)
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
                left = rows - i
                if w == nr:
                    mr = _run_tile(left, A, i * lda, lda, P, poff, K, out, i * ldc + c0, ldc)
                else:
                    mr = _run_tile(left, A, i * lda, lda, P, poff, K, tmp, 0, nr)
                    for r in range(mr):
                        orow = out[i + r]
                        trow = tmp[r]
                        for j in range(w):
                            orow[c0 + j] = trow[j]
                i += mr


@jit_inline
def _run_tile(left, a, a_off, lda, p, p_off, k, c, c_off, ldc):
    """Run the largest tile (8, 4, 2 or 1 rows, at most MR) that fits ``left``
    rows; return its rows."""
    if MR >= 8 and left >= 8:
        _tile8(a, a_off, lda, p, p_off, k, c, c_off, ldc)
        return 8
    if left >= 4:
        _tile4(a, a_off, lda, p, p_off, k, c, c_off, ldc)
        return 4
    if left >= 2:
        _tile2(a, a_off, lda, p, p_off, k, c, c_off, ldc)
        return 2
    _tile1(a, a_off, lda, p, p_off, k, c, c_off, ldc)
    return 1
