"""Building blocks shared by the cells' kernels (:mod:`gradpath.cells`).

Scalar activations, the per-step recurrent product, robust norms, the output
head (linear read-out + loss + its gradient) over the scored steps, and the
weight gradients of a dense cell from its stored pre-activation gradients.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .gemm import grad_product
from .jit import ACT_RELU, LOSS_MSE, SCORE_ALL, jit, jit_inline

# Size thresholds live here, beside the kernels that freeze them at compile time:
# Numba's cache is invalidated by changes to this file only.
#: Below this many multiply-adds, the recurrent product runs as an explicit
#: loop; above it, as a BLAS GEMM. Measured here: scipy's BLAS called from
#: Numba wins from about 1 x 64 x 64 up, so only trivial products use the loop.
SMALL_MATMUL_FLOPS = 2048

#: Up to this many inputs per step, the input projection is a fused loop in
#: the time step; above it, a GEMM.
SMALL_INPUT = 8

# -- scalar transcendentals --------------------------------------------------
# libm's exp costs ~4.5 ns and tanh ~30 ns per call here (Numba has no SVML);
# an inlined exp written as straight-line arithmetic vectorises and costs
# ~2 ns. float64 arguments compute in float64; float32 arguments compute in
# float32 throughout (twice the vector lanes, divides several times cheaper),
# with polynomials accurate to float32. The three entry points (exp_, tanh_,
# sigmoid_) choose by the argument's type at compile time.
# Accuracy against libm (tests/test_transcendentals.py): exp <= 1 ulp,
# sigmoid <= 3, tanh <= 4 in float64; exp <= 1, sigmoid <= 3, tanh <= 3 in float32.


@intrinsic
def _f64_bits(typingctx, x):
    """The IEEE-754 bits of a float64 as an int64 (an LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, i):
    """The float64 whose IEEE-754 bits are the int64 ``i``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _f32_bits(typingctx, x):
    """The IEEE-754 bits of a float32, widened to an int64."""
    def codegen(context, builder, signature, args):
        return builder.sext(builder.bitcast(args[0], llvm_ir.IntType(32)), llvm_ir.IntType(64))
    return types.int64(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, i):
    """The float32 whose IEEE-754 bits are the low 32 bits of the int64 ``i``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], llvm_ir.IntType(32)), llvm_ir.FloatType())
    return types.float32(types.int64), codegen


@intrinsic
def fma_(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``), one float type.

    With FMA contraction on, ``a * b + c * d`` may compile to either
    ``fma(a, b, c * d)`` or ``fma(c, d, a * b)``, and the choice was seen to
    differ between the process that compiled a kernel and one that loaded it
    from Numba's cache (1 ulp in the LSTM's cell state). Writing the fused
    operation out leaves the compiler nothing to choose.
    """
    if not (a in (types.float32, types.float64) and b == a and c == a):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        name = "llvm.fma.f32" if signature.return_type == types.float32 else "llvm.fma.f64"
        fn = cgutils.get_or_insert_function(builder.module,
                                            llvm_ir.FunctionType(ty, [ty, ty, ty]), name)
        return builder.call(fn, list(args))
    return a(a, b, c), codegen


@intrinsic
def borrow(typingctx, a):
    """``a`` borrowed: an array with the same data, shape and strides but no
    reference to its memory's owner; a tuple with each array in it borrowed
    (nested tuples too), other items as they are.

    Numba counts every array it passes to a compiled function, and every view
    it makes, up and down with an atomic add on the owner's count. The
    threads of a call share arrays (the row blocks of a split call: the
    states, the weights, the batch; a trailing helper: the states and the
    gradients), and an array Numba allocated has one count for every thread
    that is handed it. So the count's cache line passed between the cores at
    every row and step: ``NRT_incref``/``NRT_decref`` took 12 % of the
    samples of rnn B16 H64 T100 float32, a split call (``perf``). A borrowed
    array, and every view of it, has no owner to count (the counting sees a
    null pointer and returns at once).

    It must not outlive ``a``. Kernels borrow their own arguments, which the
    caller holds for the length of the call, and arrays they made themselves
    and hold to the end (a use after the last use of the borrowed copy:
    :func:`keep`); they never return or store what they borrowed.
    """
    if not _borrowable(a):
        return None

    def codegen(context, builder, signature, args):
        return _borrowed(context, builder, a, args[0])
    return a(a), codegen


def _borrowable(ty) -> bool:
    if isinstance(ty, types.Array):
        return True
    return isinstance(ty, types.BaseTuple) and any(_borrowable(t) for t in ty)


def _borrowed(context, builder, ty, value):
    """LLVM value of :func:`borrow` for a value of Numba type ``ty``."""
    if isinstance(ty, types.Array):
        ary = context.make_array(ty)(context, builder, value=value)
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()
    if isinstance(ty, types.BaseTuple):
        for i, t in enumerate(ty):
            if _borrowable(t):
                item = _borrowed(context, builder, t, builder.extract_value(value, i))
                value = builder.insert_value(value, item, i)
    return value


@intrinsic
def keep(typingctx, a):
    """A use of ``a`` that compiles to nothing: placed after the last use of
    what was borrowed from ``a``, it keeps ``a`` (an array the kernel made
    itself) alive until there. Numba releases a variable after its last use,
    and a borrowed array does not count as one."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()
    return types.none(a), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody & Waite)
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: x + _ROUND holds round(x) in its low bits
_ROUND_BITS = 0x4338000000000000
_E2, _E3, _E4, _E5, _E6, _E7 = (1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040)
_E8, _E9, _E10, _E11, _E12, _E13 = (1 / 40320, 1 / 362880, 1 / 3628800, 1 / 39916800,
                                    1 / 479001600, 1 / 6227020800)


def exp_(x):
    """exp(x) in the argument's precision (<= 1 ulp in either).

    NaN stays NaN, overflow gives inf, underflow gives (denormals then) 0.
    Compiled code only (chosen by type, inlined).
    """
    raise TypeError("exp_ is for compiled kernels")


def tanh_(x):
    """tanh from one exp (a few ulp at every x, NaN and +-Inf too), in the
    argument's precision. Compiled code only."""
    raise TypeError("tanh_ is for compiled kernels")


def sigmoid_(x):
    """Logistic sigmoid, overflow-free (exp(-x) -> inf gives exactly 0), in the
    argument's precision. Compiled code only."""
    raise TypeError("sigmoid_ is for compiled kernels")


@overload(exp_, inline="always")
def _exp_typed(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    return lambda x: _exp(np.float64(x))


@overload(tanh_, inline="always")
def _tanh_typed(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: _tanh64(np.float64(x))


@overload(sigmoid_, inline="always")
def _sigmoid_typed(x):
    if x == types.float32:
        return lambda x: _ONE_F / (_ONE_F + _exp32(-x))
    return lambda x: 1.0 / (1.0 + _exp(-np.float64(x)))


@jit_inline
def _exp(x):
    """exp of a float64: x = k ln2 + r, |r| <= ln2/2, exp(r) by its Taylor
    polynomial of degree 13 (truncation < 1e-17 relative), times 2**k built
    from bits."""
    xc = x if x < 709.8 else 709.8
    xc = xc if xc > -745.2 else -745.2
    kf = xc * _LOG2E + _ROUND
    k = kf - _ROUND
    ki = _f64_bits(kf) - _ROUND_BITS
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 + r * (1.0 + r * (_E2 + r * (_E3 + r * (_E4 + r * (_E5 + r * (_E6 + r * (
        _E7 + r * (_E8 + r * (_E9 + r * (_E10 + r * (_E11 + r * (
            _E12 + r * _E13))))))))))))
    k1 = ki >> 1  # 2**k as two factors, so k = 1024 or -1074 stays representable
    y = p * _bits_f64((k1 + 1023) << 52) * _bits_f64((ki - k1 + 1023) << 52)
    y = math.inf if x > 709.79 else y
    return x if x != x else y


# float32 constants: a float64 literal would promote every float32 expression.
_F = np.float32
_ONE_F = _F(1.0)
#: 1 and 0 for the kernels' elementwise arithmetic in either precision: exact
#: in both, a float32 constant keeps float32 arithmetic in float32 (a float64
#: literal such as ``1.0`` would promote ``1.0 - x`` and every product after it
#: to float64, scalar conversions included), and float64 arithmetic is what it
#: was (the constant widens exactly).
ONE = _ONE_F
ZERO = _F(0.0)
_TWO_F = _F(2.0)
_INF_F = _F(np.inf)
_LOG2E_F = _F(_LOG2E)
_LN2_HI_F = _F(0.693359375)  # 355/512: k * _LN2_HI_F is exact for |k| < 2**15
_LN2_LO_F = _F(-2.12194440e-4)
_ROUND_F = _F(12582912.0)  # 1.5 * 2**23
_ROUND_BITS_F = 0x4B400000
_EXP_HI_F = _F(88.72283)  # just below ln(FLT_MAX): above it, inf
_EXP_LO_F = _F(-104.0)  # below ln(smallest subnormal): 0
_E2F, _E3F, _E4F, _E5F, _E6F, _E7F = (_F(c) for c in (_E2, _E3, _E4, _E5, _E6, _E7))


@jit_inline
def _exp32(x):
    """exp of a float32 in float32: the float64 algorithm with a degree-7
    polynomial (truncation < 6e-9 relative, under float32's half ulp)."""
    xc = x if x < _EXP_HI_F else _EXP_HI_F
    xc = xc if xc > _EXP_LO_F else _EXP_LO_F
    kf = xc * _LOG2E_F + _ROUND_F
    k = kf - _ROUND_F
    ki = _f32_bits(kf) - _ROUND_BITS_F
    r = (xc - k * _LN2_HI_F) - k * _LN2_LO_F
    p = _ONE_F + r * (_ONE_F + r * (_E2F + r * (_E3F + r * (_E4F + r * (_E5F + r * (
        _E6F + r * _E7F))))))
    k1 = ki >> 1
    y = p * _bits_f32((k1 + 127) << 23) * _bits_f32((ki - k1 + 127) << 23)
    y = _INF_F if x > _EXP_HI_F else y
    return x if x != x else y


# Taylor coefficients of tanh(x) = x * P(x^2), used for small |x| where
# (1 - e)/(1 + e) loses relative precision: |x| < 0.1 in float64 (to _T13,
# truncation < 2e-17), |x| < 0.4 in float32 (to _T13, < 4e-9).
_T3 = -1.0 / 3.0
_T5 = 2.0 / 15.0
_T7 = -17.0 / 315.0
_T9 = 62.0 / 2835.0
_T11 = -1382.0 / 155925.0
_T13 = 21844.0 / 6081075.0
_T3F, _T5F, _T7F, _T9F, _T11F, _T13F = (_F(c) for c in (_T3, _T5, _T7, _T9, _T11, _T13))
_TANH_SMALL_F = _F(0.4)


@jit_inline
def _tanh64(x):
    """tanh of a float64. Both branches are computed and one is selected, so
    the loop has no data-dependent jump to mispredict."""
    ax = abs(x)
    z = x * x
    small = x * (1.0 + z * (_T3 + z * (_T5 + z * (_T7 + z * (_T9 + z * (
        _T11 + z * _T13))))))
    e = _exp(-2.0 * ax)
    t = (1.0 - e) / (1.0 + e)
    big = t if x >= 0.0 else -t
    return small if ax < 0.1 else big


@jit_inline
def _tanh32(x):
    """tanh of a float32 in float32, as :func:`_tanh64`."""
    ax = abs(x)
    z = x * x
    small = x * (_ONE_F + z * (_T3F + z * (_T5F + z * (_T7F + z * (_T9F + z * (
        _T11F + z * _T13F))))))
    e = _exp32(-_TWO_F * ax)
    t = (_ONE_F - e) / (_ONE_F + e)
    big = t if x >= ZERO else -t
    return small if ax < _TANH_SMALL_F else big


@jit_inline
def activate(v, act):
    """Apply the activation with integer code ``act`` to a scalar."""
    if act == ACT_RELU:
        return v if v > ZERO else ZERO * v  # keeps NaN as NaN
    return tanh_(v)


@jit_inline
def activation_grad(h, act):
    """phi'(a) written in terms of h = phi(a): 1 - h^2 for tanh, [h > 0] for ReLU."""
    if act == ACT_RELU:
        return ONE if h > ZERO else ZERO
    return ONE - h * h


# Row kernels: the elementwise body of a time step, one batch row at a time.
# They are separate (not inlined) functions on purpose: inlined into the
# time-step loop nest, the same code runs 4-5x slower (LLVM gives up on it).


@jit
def activate_row(a, h, act):
    """``h[:] = phi(a)`` for one row."""
    for i in range(h.shape[0]):
        h[i] = activate(a[i], act)


@jit
def matmul_into(A, M, out, rows):
    """``out[...] = A @ M`` for C-contiguous 2-D arrays.

    Small products run as an axpy loop that LLVM vectorises without
    reassociation; large ones call BLAS (the call overhead then is noise).
    ``rows`` is the row count of the whole batch that ``A`` is a block of: the
    choice depends on it, not on the block, so every block of a batch takes
    the path (and gives the bits) of the whole.
    """
    nb, nk = A.shape
    nn = M.shape[1]
    if rows * nk * nn >= SMALL_MATMUL_FLOPS:
        np.dot(A, M, out)
        return
    for b in range(nb):
        row = out[b]
        for n in range(nn):
            row[n] = 0.0
        for k in range(nk):
            a = A[b, k]
            mk = M[k]
            for n in range(nn):
                row[n] += a * mk[n]


@jit
def sum_squares(v):
    """Sum of squares of a 1-D array in float64, in four accumulators (so it
    pipelines without fastmath's reassociation)."""
    n = v.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = 0
    while i + 4 <= n:
        a0 = np.float64(v[i])
        a1 = np.float64(v[i + 1])
        a2 = np.float64(v[i + 2])
        a3 = np.float64(v[i + 3])
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
        i += 4
    while i < n:
        a0 = np.float64(v[i])
        s0 += a0 * a0
        i += 1
    return (s0 + s1) + (s2 + s3)


#: Below this sum of squares (2**-900), squares of the smallest entries may
#: have underflowed: the norm is recomputed with scaling.
_SAFE_SUM_SQUARES = 2.0 ** -900


@jit
def row_norm(v):
    """Euclidean norm of a 1-D array, accumulated in float64; see :func:`norm_from`."""
    return norm_from(v, sum_squares(v))


@jit
def norm_from(v, s):
    """||v|| given its plain float64 sum of squares ``s``.

    When ``s`` overflowed or may have underflowed, the norm is recomputed
    scaled by the largest entry: norms of exploding adjoints stay finite and
    those of vanishing ones accurate down to the smallest nonzero entry. An
    all-zero row costs one extra (vectorised) pass.
    """
    if s >= _SAFE_SUM_SQUARES and s < math.inf:
        return math.sqrt(s)
    m = 0.0
    if s != s or s == math.inf:
        for i in range(v.shape[0]):
            d = abs(np.float64(v[i]))
            if not math.isfinite(d):
                return math.inf if not math.isnan(d) else math.nan
            m = max(m, d)
    else:
        for i in range(v.shape[0]):
            m = max(m, abs(np.float64(v[i])))
    if m == 0.0:
        return 0.0
    s = 0.0
    for i in range(v.shape[0]):
        d = np.float64(v[i]) / m
        s += d * d
    return m * math.sqrt(s)


@jit
def renormalise(v, logs, b):
    """Divide v (row b's adjoint) by its norm; return ln of its true norm,
    ``logs[b] + ln||v||``, and keep that in ``logs[b]`` when it is finite.

    The probes' adjoints are renormalised after every step, so ln||dL/dh_t||
    is exact and finite at any lag (a rate of -0.7 per step over 10,000 steps
    is about -7000 in ln, far below float64's range but fine as a number).
    """
    n = row_norm(v)
    if n > 0.0 and math.isfinite(n):
        for i in range(v.shape[0]):
            v[i] /= n
        lg = logs[b] + math.log(n)
        if math.isfinite(lg):
            logs[b] = lg
        return lg
    if n == 0.0:
        return -math.inf
    return math.nan if math.isnan(n) else math.inf


@jit
def add_norm_scale(d, c, h, act):
    """One BPTT step of a row, in one pass: ``d += c`` makes d the total
    dL/dh_t; return ||d||; then ``d *= phi'(a_t)`` (from h = phi(a_t)).

    The norm is exact for overflowing and underflowing rows too (:func:`norm_from`).
    """
    H = d.shape[0]
    for i in range(H):
        d[i] += c[i]
    n = norm_from(d, sum_squares(d))
    if act == ACT_RELU:
        for j in range(H):
            d[j] = d[j] if h[j] > ZERO else ZERO * d[j]
    else:
        for j in range(H):
            d[j] *= ONE - h[j] * h[j]
    return n


@jit
def _loss_and_dy(y, target_f, target_i, b, row, loss_code, inv_n):
    """Loss of one scored read-out ``y`` (O,) of sequence b against target row
    ``row``, and dL/dy (for a mean over n) written into ``y``."""
    O = y.shape[0]
    loss = 0.0
    if loss_code == LOSS_MSE:
        tgt = target_f[row, b]
        for o in range(O):
            e = y[o] - tgt[o]
            loss += 0.5 * np.float64(e) * np.float64(e)
            y[o] = e * inv_n
        return loss
    m = -math.inf
    for o in range(O):
        if y[o] > m:
            m = np.float64(y[o])
    s = 0.0
    for o in range(O):
        s += math.exp(np.float64(y[o]) - m)
    lse = m + math.log(s)
    c = target_i[row, b]
    loss = lse - np.float64(y[c])
    for o in range(O):
        y[o] = math.exp(np.float64(y[o]) - lse) * inv_n
    y[c] -= inv_n
    return loss


@jit
def output_head(hs, lengths, score, W_out, b_out, target_f, target_i, loss_code, dy):
    """Read-out, loss and their gradients over the scored steps.

    ``hs`` is (T+1, B, H) with ``hs[t + 1] = h_t``. Returns the loss (mean
    over scored (t, b), float64), dW_out and db_out, and fills ``dy`` (T, B,
    O) with dL/dy_t at the scored steps (zero elsewhere); the backward pass
    injects dL/dh_t = dy_t W_out step by step, so no (T, B, H) array of it is
    ever stored. ``score == SCORE_ALL`` scores every t < lengths[b] against
    target[t, b]; otherwise t = lengths[b] - 1 against target[0, b].
    """
    T = hs.shape[0] - 1
    B, H = hs.shape[1], hs.shape[2]
    O = W_out.shape[0]
    dt = hs.dtype
    w_out_t = np.ascontiguousarray(W_out.T)
    dy[:] = 0.0
    loss = 0.0
    db_out = np.zeros(O, dt)
    if score == SCORE_ALL:
        n = 0
        for b in range(B):
            n += lengths[b]
        inv_n = 1.0 / n
        h2 = hs[1:].reshape(T * B, H)
        y2 = dy.reshape(T * B, O)
        np.dot(h2, w_out_t, y2)
        for t in range(T):
            for b in range(B):
                y = y2[t * B + b]
                if t >= lengths[b]:
                    y[:] = 0.0
                    continue
                for o in range(O):
                    y[o] += b_out[o]
                loss += _loss_and_dy(y, target_f, target_i, b, t, loss_code, inv_n)
                for o in range(O):
                    db_out[o] += y[o]
        dW_out = np.dot(y2.T, h2)
        return loss * inv_n, dW_out, db_out
    inv_n = 1.0 / B
    hsc = np.empty((B, H), dt)
    for b in range(B):
        hsc[b] = hs[lengths[b], b]
    ysc = np.dot(hsc, w_out_t)
    for b in range(B):
        y = ysc[b]
        for o in range(O):
            y[o] += b_out[o]
        loss += _loss_and_dy(y, target_f, target_i, b, 0, loss_code, inv_n)
        for o in range(O):
            db_out[o] += y[o]
        dy[lengths[b] - 1, b] = y
    return loss * inv_n, np.dot(ysc.T, hsc), db_out


@jit
def inject(d, dy_tb, W_out):
    """``d[:] = dy_tb @ W_out``: the loss's direct dL/dh_t for one row."""
    d[:] = 0.0
    for o in range(W_out.shape[0]):
        c = dy_tb[o]
        if c != 0.0:
            w = W_out[o]
            for j in range(d.shape[0]):
                d[j] += c * w[j]


@jit
def add_drive(a, xt, w_ih_t, b, tmp, rows):
    """``a += xt @ W_ih.T + b`` for one step; ``w_ih_t`` is W_ih.T (D, G), C-contiguous;
    ``rows`` as in :func:`matmul_into`.

    With few inputs (D <= SMALL_INPUT) the product is a fused loop; otherwise a
    GEMM into ``tmp``. Done per step, so no (T, B, G) projection array is ever
    allocated or streamed through memory.
    """
    nb, G = a.shape
    D = xt.shape[1]
    if D > SMALL_INPUT:
        matmul_into(xt, w_ih_t, tmp, rows)
        for r in range(nb):
            for g in range(G):
                a[r, g] += tmp[r, g] + b[g]
        return
    for r in range(nb):
        ar = a[r]
        for g in range(G):
            ar[g] += b[g]
        for d in range(D):
            v = xt[r, d]
            wd = w_ih_t[d]
            for g in range(G):
                ar[g] += v * wd[g]


@jit
def weight_grad_arrays(dpre, hs, x):
    """What :func:`weight_grads_block` fills: ``(Cx, dW_hh, xo)`` with Cx
    (D+1, G) = [dW_ih^T; db^T] and dW_hh (G, H) zeroed, and ``xo`` (T*B, D+1)
    = [x_t | 1] over every (t, b), the input side of both as one matrix."""
    T, B, G = dpre.shape
    D = x.shape[2]
    n = T * B
    dt = dpre.dtype
    xo = np.empty((n, D + 1), dt)
    xo[:, :D] = x.reshape(n, D)
    xo[:, D] = 1.0
    return np.zeros((D + 1, G), dt), np.zeros((G, hs.shape[2]), dt), xo


@jit
def weight_grads_block(dpre, dpre_h, hs, acc, g0, g1, t0, t1):
    """Columns ``g0 <= g < g1`` of the weight gradients from dL/d(pre-activation)
    after the loop, summed over the steps ``t0 <= t < t1`` (added to what
    ``acc`` holds): ``dpre`` (T, B, G) of the input product W_ih x_t + b and
    ``dpre_h`` of the recurrent product W_hh h_{t-1} (the same array for the
    LSTM, whose cell sums the two; not for the GRU, whose reset gate scales
    the recurrent product's n block); ``acc`` from :func:`weight_grad_arrays`.

    Two products over those (t, b) (:func:`gradpath.kernels.gemm.grad_product`):
    dW_hh rows g from ``hs`` (T+1, B, H), which holds h_{t-1} at index t, and
    [dW_ih^T; db^T] columns g from [x_t | 1], so the bias sums and the input
    weights' gradient of any D are one product with full vector panels.
    """
    Cx, dW_hh, xo = acc
    T, B, G = dpre.shape
    H = hs.shape[2]
    r0 = t0 * B
    r1 = t1 * B
    grad_product(dpre_h.reshape(T * B, G)[r0:r1], hs.reshape((T + 1) * B, H)[r0:r1], dW_hh,
                 g0, g1, 0, H)
    grad_product(xo[r0:r1], dpre.reshape(T * B, G)[r0:r1], Cx, 0, Cx.shape[0], g0, g1)


@jit
def weight_grads_done(acc):
    """(dW_ih (G, D), dW_hh, db) from what :func:`weight_grads_block` summed."""
    Cx, dW_hh, _ = acc
    D = Cx.shape[0] - 1
    return np.ascontiguousarray(Cx[:D].T), dW_hh, Cx[D].copy()
