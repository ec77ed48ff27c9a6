"""Compiled passes of the optimisers and of gradient clipping over all parameters.

One call per update over a tuple of 1-D views of the arrays, one pass per
array, instead of numpy's five to eight temporaries per array
(``gradpath.train`` and ``gradpath.clipping`` call them). The arithmetic is
the numpy formulas', in the same order and precision (scalars arrive in the
arrays' dtype), without FMA contraction, so the results are numpy's to the bit.
"""

from __future__ import annotations

import math

import numpy as np

from .fpenv import jit_entry


@jit_entry(blas=False, contract=False)
def max_abs(gs):
    """(max |g| over every array, every entry finite, any NaN), in float64."""
    m = 0.0
    finite = True
    nan = False
    for k in range(len(gs)):
        g = gs[k]
        for i in range(g.shape[0]):
            a = abs(np.float64(g[i]))
            if not math.isfinite(a):
                finite = False
                nan = nan or a != a
            elif a > m:
                m = a
    return m, finite, nan


@jit_entry(blas=False, contract=False)
def scaled_sum_squares(gs, m):
    """sum((g / m)**2) over every entry of every array, in float64."""
    s = 0.0
    for k in range(len(gs)):
        g = gs[k]
        for i in range(g.shape[0]):
            d = np.float64(g[i]) / m
            s += d * d
    return s


@jit_entry(blas=False, contract=False)
def adam_update(ps, gs, ms, vs, lr, b1, b2, eps, c1, c2, omb1, omb2):
    """m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m/c1) / (sqrt(v/c2) + eps).

    ``omb1``, ``omb2`` are 1 - b1 and 1 - b2, computed in float64 and then
    cast, as numpy does with Python scalars."""
    for k in range(len(ps)):
        p, g, m, v = ps[k], gs[k], ms[k], vs[k]
        for i in range(p.shape[0]):
            gi = g[i]
            mi = m[i] * b1 + omb1 * gi
            vi = v[i] * b2 + omb2 * gi * gi
            m[i] = mi
            v[i] = vi
            p[i] -= lr * (mi / c1) / (np.sqrt(vi / c2) + eps)


@jit_entry(blas=False, contract=False)
def sgd_update(ps, gs, vels, lr, mu):
    """vel = mu vel - lr g; p += vel (heavy-ball momentum)."""
    for k in range(len(ps)):
        p, g, vel = ps[k], gs[k], vels[k]
        for i in range(p.shape[0]):
            vi = vel[i] * mu - lr * g[i]
            vel[i] = vi
            p[i] += vi


@jit_entry(blas=False, contract=False)
def rmsprop_update(ps, gs, ss, lr, rho, eps, omrho):
    """s = rho s + (1-rho) g^2; p -= lr g / (sqrt(s) + eps)."""
    for k in range(len(ps)):
        p, g, s = ps[k], gs[k], ss[k]
        for i in range(p.shape[0]):
            gi = g[i]
            si = s[i] * rho + omrho * gi * gi
            s[i] = si
            p[i] -= lr * gi / (np.sqrt(si) + eps)
