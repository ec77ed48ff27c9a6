"""GEMM called directly from compiled code: scipy's BLAS ``sgemm``/``dgemm``.

Numba's ``np.dot`` takes whole contiguous arrays. The kernels also need
products of column blocks (each thread computes its block of a weight
gradient, which is a strided sub-matrix) without copying them, so they call
BLAS themselves: :func:`gemm` is the Fortran interface of ``?gemm`` from
``scipy.linalg.cython_blas`` (the library Numba's ``np.dot`` uses too).

The functions' addresses are registered with LLVM under fixed names when this
module is imported, and compiled code refers to those names, so it can be
cached on disk and loaded by another process.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from .jit import jit_inline

_SYMBOLS = {types.float32: "gradpath_sgemm", types.float64: "gradpath_dgemm"}
for _name in ("sgemm", "dgemm"):
    llvm.add_symbol(f"gradpath_{_name}",
                    get_cython_function_address("scipy.linalg.cython_blas", _name))

#: ``trans`` codes of :func:`gemm` (the characters BLAS expects).
NO_TRANS = ord("N")
TRANS = ord("T")


@intrinsic
def _gemm(typingctx, transa, transb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
          c, c_off, ldc):
    """Column-major ``C = alpha op(A) op(B) + beta C`` on sub-matrices that start
    ``*_off`` elements into the arrays ``a``, ``b``, ``c`` (one float dtype)."""
    if not (isinstance(a, types.Array) and a.dtype in _SYMBOLS
            and b.dtype == a.dtype and c.dtype == a.dtype):
        return None
    dtype = a.dtype

    def codegen(context, builder, signature, args):
        (ta, tb, m_, n_, k_, al, av, ao, lda_, bv, bo, ldb_, be, cv, co, ldc_) = args
        fty = context.get_value_type(dtype)
        i8, i32 = llvm_ir.IntType(8), llvm_ir.IntType(32)

        def slot(ty, value):
            p = cgutils.alloca_once(builder, ty)
            builder.store(value, p)
            return p

        def data(aryty, value, off):
            ptr = context.make_array(aryty)(context, builder, value).data
            return builder.gep(ptr, [off])

        ptr_f = fty.as_pointer()
        fnty = llvm_ir.FunctionType(llvm_ir.VoidType(), [
            i8.as_pointer(), i8.as_pointer(), i32.as_pointer(), i32.as_pointer(),
            i32.as_pointer(), ptr_f, ptr_f, i32.as_pointer(), ptr_f, i32.as_pointer(), ptr_f,
            ptr_f, i32.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[dtype])
        as_f = lambda v, ty: context.cast(builder, v, ty, dtype)  # noqa: E731
        builder.call(fn, [
            slot(i8, builder.trunc(ta, i8)), slot(i8, builder.trunc(tb, i8)),
            slot(i32, builder.trunc(m_, i32)), slot(i32, builder.trunc(n_, i32)),
            slot(i32, builder.trunc(k_, i32)),
            slot(fty, as_f(al, signature.args[5])),
            data(signature.args[6], av, ao), slot(i32, builder.trunc(lda_, i32)),
            data(signature.args[9], bv, bo), slot(i32, builder.trunc(ldb_, i32)),
            slot(fty, as_f(be, signature.args[12])),
            data(signature.args[13], cv, co), slot(i32, builder.trunc(ldc_, i32)),
        ])
        return context.get_dummy_value()

    return types.void(transa, transb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                      c, c_off, ldc), codegen


@jit_inline
def gemm(transa, transb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """BLAS ``?gemm`` (column-major, Fortran conventions) on array offsets.

    Arguments as in BLAS, with each matrix given as (array, element offset,
    leading dimension). Callers check shapes; nothing here does.
    """
    if m > 0 and n > 0:
        _gemm(transa, transb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
              c, c_off, ldc)
