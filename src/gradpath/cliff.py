"""Pascanu, Mikolov & Bengio (2013), section 3: the exploding gradient's "cliff".

A single recurrent sigmoid unit ``x_t = w * sigmoid(x_{t-1}) + b`` from
``x_0 = 0.5``, with loss ``(sigmoid(x_T) - target)^2`` at T = 50. As (w, b)
crosses the bifurcation where the unit's dynamics switch between fixed
points, x_T jumps: the loss surface has a wall, along which the gradient is
orders of magnitude larger than anywhere else. A plain gradient step taken
on the wall is thrown far across the surface; clipping the gradient's norm
keeps the step's length bounded and its direction.

Everything here is exact (forward-mode derivatives of the recursion) and
vectorised over arrays of (w, b).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import integer, number

X0 = 0.5
T = 50
TARGET = 0.7


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def loss_and_grad(w, b, steps: int = T, target: float = TARGET, x0: float = X0):
    """Loss and its gradient (dL/dw, dL/db) at arrays ``w``, ``b`` (any shape).

    Forward-mode: dx_t/dw = s_{t-1} + w s'_{t-1} dx_{t-1}/dw and
    dx_t/db = 1 + w s'_{t-1} dx_{t-1}/db, with s = sigmoid(x).
    """
    integer(steps, "steps")
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x = np.full(w.shape, float(x0))
    dw = np.zeros(w.shape)
    db = np.zeros(w.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            s = _sigmoid(x)
            ds = s * (1.0 - s)
            dw, db = s + w * ds * dw, 1.0 + w * ds * db
            x = w * s + b
        s = _sigmoid(x)
        e = s - target
        g = 2.0 * e * s * (1.0 - s)
        return e * e, g * dw, g * db


@dataclass
class Trajectory:
    """Parameters (w, b) after each SGD step, the loss there, and step lengths."""

    w: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    step_length: np.ndarray


def sgd(w0: float, b0: float, lr: float, steps: int, clip: float | None = None) -> Trajectory:
    """Plain gradient descent from (w0, b0); with ``clip``, the gradient's norm is
    clipped at ``clip`` first (Pascanu et al. 2013, Algorithm 1)."""
    number(lr, "lr", positive=True)
    integer(steps, "steps")
    if clip is not None:
        number(clip, "clip", positive=True)
    w, b = [float(w0)], [float(b0)]
    losses, lengths = [float(loss_and_grad(w0, b0)[0])], []
    for _ in range(steps):
        _, gw, gb = loss_and_grad(w[-1], b[-1])
        gw, gb = float(gw), float(gb)
        norm = float(np.hypot(gw, gb))
        if clip is not None and norm >= clip:
            gw, gb = gw * clip / norm, gb * clip / norm
        w.append(w[-1] - lr * gw)
        b.append(b[-1] - lr * gb)
        lengths.append(lr * float(np.hypot(gw, gb)))
        losses.append(float(loss_and_grad(w[-1], b[-1])[0]))
    return Trajectory(np.array(w), np.array(b), np.array(losses), np.array(lengths))


def surface(w_range=(0.0, 10.0), b_range=(-6.0, 1.0), n: int = 241):
    """Loss and gradient norm on an n x n grid of (w, b): (W, B, loss, grad_norm)."""
    W, B = np.meshgrid(np.linspace(*w_range, n), np.linspace(*b_range, n))
    loss, gw, gb = loss_and_grad(W, B)
    return W, B, loss, np.hypot(gw, gb)
