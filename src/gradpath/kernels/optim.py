"""Compiled passes of the optimisers, of gradient clipping and of the
parameter checks over all parameters.

One call per update over a tuple of 1-D views of the arrays, one pass per
array, instead of numpy's five to eight temporaries per array
(``gradpath.train``, ``gradpath.clipping`` and the cells' parameter checks
call them). The arithmetic is
the numpy formulas', in the same order and precision (scalars arrive in the
arrays' dtype), without FMA contraction, so the results are numpy's to the bit.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from .fpenv import jit_entry
from .jit import jit


def views(arrays) -> tuple[np.ndarray, ...]:
    """1-D views of the arrays (of C-contiguous ones; ``reshape`` copies
    others): the tuples the passes below take."""
    return tuple(a.reshape(-1) for a in arrays)


@jit_entry(blas=False, contract=False)
def norm_parts(gs):
    """(m, s, finite, nan) over every entry of every array: m = max |g| and
    s = sum((g / m)**2), both in float64 (the global norm is m sqrt(s), with
    no intermediate overflow); s = 0 when m = 0 or an entry is not finite."""
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
    return m, _scaled_sum_squares(gs, m) if finite and m > 0.0 else 0.0, finite, nan


@jit_entry(blas=False, contract=False)
def scale_norm_parts(gs, outs, scale):
    """outs = gs * scale, array by array (``scale`` in the arrays' dtype, as
    numpy multiplies by a Python float), and (m, s) of :func:`norm_parts`
    over ``outs``: the norm after clipping, from the stored values."""
    m = 0.0
    for k in range(len(gs)):
        g, o = gs[k], outs[k]
        for i in range(g.shape[0]):
            v = g[i] * scale
            o[i] = v
            a = abs(np.float64(v))
            if a > m:
                m = a
    return m, _scaled_sum_squares(outs, m) if m > 0.0 else 0.0


@partial(jit, contract=False)
def _scaled_sum_squares(gs, m):
    s = 0.0
    for k in range(len(gs)):
        g = gs[k]
        for i in range(g.shape[0]):
            d = np.float64(g[i]) / m
            s += d * d
    return s


@jit_entry(blas=False)
def all_finite(gs):
    """Whether every entry of every array is finite (the cells' parameter check)."""
    for k in range(len(gs)):
        g = gs[k]
        for i in range(g.shape[0]):
            if not math.isfinite(g[i]):
                return False
    return True


@jit_entry(blas=False, contract=False)
def adam_update(ps, gs, ms, vs, lr, b1, b2, eps, c1, c2, omb1, omb2):
    """m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m/c1) / (sqrt(v/c2) + eps).

    ``omb1``, ``omb2`` are 1 - b1 and 1 - b2, computed in float64 and then
    cast, as numpy does with Python scalars. Returns whether every updated
    parameter is finite (as do the other updates)."""
    finite = True
    for k in range(len(ps)):
        p, g, m, v = ps[k], gs[k], ms[k], vs[k]
        for i in range(p.shape[0]):
            gi = g[i]
            mi = m[i] * b1 + omb1 * gi
            vi = v[i] * b2 + omb2 * gi * gi
            m[i] = mi
            v[i] = vi
            pi = p[i] - lr * (mi / c1) / (np.sqrt(vi / c2) + eps)
            p[i] = pi
            finite &= math.isfinite(pi)  # no branch: the loop stays vectorised
    return finite


@jit_entry(blas=False, contract=False)
def sgd_update(ps, gs, vels, lr, mu):
    """vel = mu vel - lr g; p += vel (heavy-ball momentum)."""
    finite = True
    for k in range(len(ps)):
        p, g, vel = ps[k], gs[k], vels[k]
        for i in range(p.shape[0]):
            vi = vel[i] * mu - lr * g[i]
            vel[i] = vi
            pi = p[i] + vi
            p[i] = pi
            finite &= math.isfinite(pi)  # no branch: the loop stays vectorised
    return finite


@jit_entry(blas=False, contract=False)
def rmsprop_update(ps, gs, ss, lr, rho, eps, omrho):
    """s = rho s + (1-rho) g^2; p -= lr g / (sqrt(s) + eps)."""
    finite = True
    for k in range(len(ps)):
        p, g, s = ps[k], gs[k], ss[k]
        for i in range(p.shape[0]):
            gi = g[i]
            si = s[i] * rho + omrho * gi * gi
            s[i] = si
            pi = p[i] - lr * gi / (np.sqrt(si) + eps)
            p[i] = pi
            finite &= math.isfinite(pi)  # no branch: the loop stays vectorised
    return finite
