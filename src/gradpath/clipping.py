"""Gradient clipping: by global norm (Pascanu et al. 2013, Algorithm 1) and by value.

Non-finite gradients are reported, never clipped into finite numbers: a NaN
or Inf anywhere leaves the gradients untouched and ``finite=False``, so the
training loop can record the divergence instead of hiding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .checks import number
from .kernels.optim import norm_parts, scale_norm_parts, views


@dataclass
class ClipResult:
    """Outcome of a clipping call.

    Attributes
    ----------
    grads : dict of str to ndarray
        The (possibly) clipped gradients; new arrays when clipped, the input
        arrays otherwise.
    norm_before, norm_after : float
        Global L2 norm over all parameters before and after clipping
        (``inf`` or ``nan`` when the gradients are not finite).
    clipped : bool
        Whether any gradient was changed.
    finite : bool
        Whether every gradient entry was finite.
    """

    grads: dict[str, np.ndarray]
    norm_before: float
    norm_after: float
    clipped: bool
    finite: bool


def _norm_parts(grads: dict[str, np.ndarray]) -> tuple[float, float, bool]:
    """(m, r, finite): the global norm is m * r with m the max |entry|.

    Kept apart so that clipping can rescale by (theta / m) / r even when the
    norm itself exceeds the float64 range while every entry is finite.
    """
    _check(grads)
    return _norm_of(_flat(grads.values()))


def _norm_of(arrays: tuple[np.ndarray, ...]) -> tuple[float, float, bool]:
    """:func:`_norm_parts` of 1-D arrays the compiled passes take (:func:`_flat`)."""
    if not arrays:
        return 0.0, 0.0, True
    m, s, finite, nan = norm_parts(arrays)
    if not finite:
        return (math.nan if nan else math.inf), 1.0, False
    return m, math.sqrt(s), True


_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def _views(arrays) -> tuple[np.ndarray, ...] | None:
    """1-D views of C-contiguous arrays that share float32 or float64, for
    the compiled passes (which sum in float64 either way); else None."""
    arrays = tuple(arrays)
    if not arrays:
        return None
    dt = arrays[0].dtype
    if dt not in _NATIVE or not all(a.dtype == dt and a.flags.c_contiguous for a in arrays):
        return None
    return views(arrays)


def _flat(grads, native: tuple[np.ndarray, ...] | None = None) -> tuple[np.ndarray, ...]:
    """:func:`_views` of the gradients (``native``, when already taken), or
    float64 copies (any other mixture: one type, so one compiled version)."""
    grads = tuple(grads)
    if native is None:
        native = _views(grads)
    if native is not None:
        return native
    return tuple(np.ascontiguousarray(g, dtype=np.float64).reshape(-1) for g in grads)


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """L2 norm over every entry of every gradient.

    Accumulated in float64 with max-abs rescaling, so no intermediate
    overflows; NaN anywhere gives NaN, else Inf anywhere gives Inf.
    """
    m, r, _ = _norm_parts(grads)
    return m * r


def clip_by_norm(grads: dict[str, np.ndarray], max_norm: float) -> ClipResult:
    """Rescale all gradients together when their global norm reaches ``max_norm``.

    Pascanu et al. (2013), Algorithm 1: if ``||g|| >= max_norm`` then
    ``g <- max_norm * g / ||g||``. The direction is kept.

    Parameters
    ----------
    grads : dict of str to ndarray
    max_norm : float
        Positive threshold (theta).

    Returns
    -------
    ClipResult
    """
    _check_threshold(max_norm, "max_norm")
    _check(grads)
    src = _views(grads.values())  # taken once: the norm's pass and the product's
    m, r, finite = _norm_of(_flat(grads.values(), src))
    norm = m * r
    if not finite:
        return ClipResult(grads, norm, norm, False, False)
    if norm >= max_norm and norm > 0.0:
        scale = (max_norm / m) / r
        if src is None:
            new = {k: (g * scale).astype(g.dtype, copy=False) for k, g in grads.items()}
            return ClipResult(new, norm, global_norm(new), True, True)
        new = {k: np.empty(g.shape, g.dtype) for k, g in grads.items()}
        # one pass: the product in the gradients' dtype (numpy's g * scale with a
        # Python float) and the norm after it, from the stored values
        m2, s2 = scale_norm_parts(src, _views(new.values()), src[0].dtype.type(scale))
        return ClipResult(new, norm, m2 * math.sqrt(s2), True, True)
    return ClipResult(grads, norm, norm, False, True)


def clip_by_value(grads: dict[str, np.ndarray], limit: float) -> ClipResult:
    """Clip every gradient entry into ``[-limit, limit]`` (direction not kept).

    Parameters
    ----------
    grads : dict of str to ndarray
    limit : float
        Positive bound.

    Returns
    -------
    ClipResult
    """
    _check_threshold(limit, "limit")
    m, r, finite = _norm_parts(grads)
    norm = m * r
    if not finite:
        return ClipResult(grads, norm, norm, False, False)
    if m > limit:
        new = {k: np.clip(g, -limit, limit).astype(g.dtype, copy=False)
               for k, g in grads.items()}
        return ClipResult(new, norm, global_norm(new), True, True)
    return ClipResult(grads, norm, norm, False, True)


def _check(grads) -> None:
    if not isinstance(grads, dict):
        raise ValueError(f"grads: expected a dict of arrays, got {type(grads).__name__}")


def _check_threshold(value, name: str) -> None:
    number(value, name, positive=True)
