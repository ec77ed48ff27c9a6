"""Gradient clipping: by global norm (Pascanu et al. 2013, Algorithm 1) and by value.

Non-finite gradients are reported, never clipped into finite numbers: a NaN
or Inf anywhere leaves the gradients untouched and ``finite=False``, so the
training loop can record the divergence instead of hiding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """L2 norm over every entry of every gradient, overflow-safe.

    Accumulated in float64 with max-abs rescaling, so a finite gradient
    always has a finite norm; NaN anywhere gives NaN, else Inf gives Inf.
    """
    _check(grads)
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in grads.values()]
    if not arrays:
        return 0.0
    flat = np.concatenate(arrays)
    if np.isnan(flat).any():
        return math.nan
    m = float(np.max(np.abs(flat))) if flat.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * float(np.sqrt(np.sum(np.square(flat / m))))


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
    norm = global_norm(grads)
    if not math.isfinite(norm):
        return ClipResult(grads, norm, norm, False, False)
    if norm >= max_norm and norm > 0.0:
        scale = max_norm / norm
        new = {k: (g * scale).astype(g.dtype, copy=False) for k, g in grads.items()}
        return ClipResult(new, norm, global_norm(new), True, True)
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
    norm = global_norm(grads)
    if not math.isfinite(norm):
        return ClipResult(grads, norm, norm, False, False)
    if any(np.any(np.abs(g) > limit) for g in grads.values()):
        new = {k: np.clip(g, -limit, limit) for k, g in grads.items()}
        return ClipResult(new, norm, global_norm(new), True, True)
    return ClipResult(grads, norm, norm, False, True)


def _check(grads) -> None:
    if not isinstance(grads, dict):
        raise ValueError(f"grads: expected a dict of arrays, got {type(grads).__name__}")


def _check_threshold(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}")
