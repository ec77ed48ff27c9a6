"""Load (or compile, on a cache miss) every kernel specialisation once."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from . import vocab
from .clipping import clip_by_norm
from .kernels import jit
from .kernels.parallel import threads
from .models import make_model
from .notice import COMPILE_NOTICE, QUIET_ENV
from .train import make_optimizer

#: The dtypes every kernel is compiled for.
DTYPES = (np.float64, np.float32)

# What the second process runs: the float32 half of the compile.
_CHILD = "import numpy as np; from gradpath.warmup import _call_every_kernel; " \
         "_call_every_kernel((np.float32,))"


def warmup(parallel: bool | None = None) -> None:
    """Call every kernel once on tiny inputs, in float32 and float64.

    In a process that hits Numba's on-disk cache this only loads the
    compiled code; in a fresh checkout it compiles and fills the cache,
    saying so once on stderr (:class:`gradpath.notice.CompileNotice`).

    Parameters
    ----------
    parallel : bool, optional
        Compile the float32 kernels in a second process while this one
        compiles the float64 ones (each compile is single-threaded). The
        default, ``None``, does so when the cache is cold
        (:func:`gradpath.kernels.jit.cache_is_cold`), a kernel call may use
        two threads or more (:func:`gradpath.kernels.parallel.threads`), and
        the cache's writes are locked
        (:data:`gradpath.kernels.jit.CACHE_WRITES_LOCKED`); ``True`` still
        needs the lock. Loading a warm cache stays in this process.
    """
    if parallel is None:
        parallel = jit.cache_is_cold() and threads() > 1
    parallel = parallel and jit.CACHE_WRITES_LOCKED
    with COMPILE_NOTICE.grouped():
        if not parallel:
            _call_every_kernel(DTYPES)
            return
        child = subprocess.Popen([sys.executable, "-c", _CHILD], env={**os.environ, QUIET_ENV: "1"},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _call_every_kernel((np.float64,))
        finally:
            _, err = child.communicate()
        if child.returncode:
            raise RuntimeError(f"the float32 half of the warm-up failed (exit {child.returncode}):"
                               f"\n{err[-3000:]}")
        _call_every_kernel((np.float32,))  # loads what the child compiled


def _call_every_kernel(dtypes) -> None:
    for dt in dtypes:
        x = np.zeros((2, 1, 1), dt)
        for model in (make_model(cell, 1, 2, 1) for cell in vocab.CELLS):
            p = model.init_params("identity", seed=0, dtype=dt)
            res = model.loss_and_grads(p, x, np.zeros((1, 1), dt))
            model.loss_and_grads(p, x, np.zeros(1, np.int64), loss="xent")
            model.forward(p, x)
            clip_by_norm(res.grads, 1.0)
            for name in vocab.OPTIMIZERS:
                make_optimizer(name, p, 1e-3).step(p, res.grads)
