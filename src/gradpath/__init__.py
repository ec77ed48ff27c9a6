"""gradpath: exact gradients of recurrent cells, and the pathologies they show.

The public API::

    import gradpath as gp
    model = gp.RNN(input_size=D, hidden_size=H, output_size=O, activation="tanh")
    params = model.init_params(init="identity", gain=1.0, seed=0)
    res = model.loss_and_grads(params, x, target, loss="mse", score="last")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .cells import REGISTRY
from .clipping import ClipResult, clip_by_norm, clip_by_value, global_norm
from .models import ACTIVATIONS, INITS, LOSSES, SCORES, Forward, LossGrads
from .warmup import warmup

try:
    __version__ = version("gradpath")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

# Every registered cell's model class under its own name: gp.RNN, gp.LSTM, ...
globals().update({cls.__name__: cls for cls in REGISTRY.values()})

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "LOSSES",
    "SCORES",
    *(cls.__name__ for cls in REGISTRY.values()),
    "ClipResult",
    "Forward",
    "LossGrads",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "warmup",
    "__version__",
]
