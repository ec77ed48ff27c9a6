"""Load (or compile, on a cache miss) every kernel specialisation once."""

from __future__ import annotations

import numpy as np

from . import vocab
from .clipping import clip_by_norm
from .models import make_model
from .notice import COMPILE_NOTICE
from .train import make_optimizer


def warmup() -> None:
    """Call every kernel once on tiny inputs, in float32 and float64.

    In a process that hits Numba's on-disk cache this only loads the
    compiled code; in a fresh checkout it compiles and fills the cache,
    saying so once on stderr (:class:`gradpath.notice.CompileNotice`).
    """
    with COMPILE_NOTICE.grouped():
        _call_every_kernel()


def _call_every_kernel() -> None:
    for dt in (np.float64, np.float32):
        x = np.zeros((2, 1, 1), dt)
        for model in (make_model(cell, 1, 2, 1) for cell in vocab.CELLS):
            p = model.init_params("identity", seed=0, dtype=dt)
            res = model.loss_and_grads(p, x, np.zeros((1, 1), dt))
            model.loss_and_grads(p, x, np.zeros(1, np.int64), loss="xent")
            model.forward(p, x)
            clip_by_norm(res.grads, 1.0)
            for name in vocab.OPTIMIZERS:
                make_optimizer(name, p, 1e-3).step(p, res.grads)
