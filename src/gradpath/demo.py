"""The lecture in one table: gradient norms at initialisation, by lag."""

from __future__ import annotations

import numpy as np

from . import vocab
from .claims import DEMO_VANISHES, IRNN_KEEPS
from .models import RNN
from .tasks import make_task

DEMO_LAGS: tuple[int, ...] = (0, 10, 50, 100)


def decay_table(hidden: int = 128, seq_len: int = 101, batch: int = 32, gain: float = 1.0,
                seed: int = 0, lags: tuple[int, ...] = DEMO_LAGS) -> list[dict]:
    """||dL/dh_t|| at the given lags for tanh/ReLU RNNs under each initialisation.

    The networks read adding-problem inputs (Le et al. 2015) and are scored
    at the last step with MSE; the norm is averaged over the batch. Lag k is
    the step t = T - 1 - k.

    Parameters
    ----------
    hidden, seq_len, batch : int
        H, T and B. ``seq_len`` must exceed the largest lag.
    gain : float
        Recurrent gain of every initialisation.
    seed : int
        Seeds the weights and the batch.
    lags : tuple of int

    Returns
    -------
    list of dict
        One row per (activation, init): ``activation``, ``init`` and
        ``lag_<k>`` for each lag.
    """
    if max(lags) >= seq_len:
        raise ValueError(f"seq_len: must exceed the largest lag {max(lags)}, got {seq_len}")
    task = make_task("adding", seq_len)
    data = task.batch(batch, seed)
    rows = []
    for activation in vocab.ACTIVATIONS:
        for init in vocab.INITS:
            model = RNN(task.input_size, hidden, task.output_size, activation)
            params = model.init_params(init, gain=gain, seed=seed)
            res = model.loss_and_grads(params, data.x, data.target)
            by_lag = res.grad_norms[::-1].mean(axis=1)
            row = {"activation": activation, "init": init}
            row.update({f"lag_{k}": float(by_lag[k]) for k in lags})
            rows.append(row)
    return rows


def format_table(rows: list[dict], lags: tuple[int, ...] = DEMO_LAGS) -> str:
    """Render :func:`decay_table` rows as a fixed-width text table."""
    head = f"{'activation':<11}{'init':<12}" + "".join(f"{'lag ' + str(k):>11}" for k in lags)
    head += f"{'lag ' + str(lags[-1]) + '/lag 0':>16}"
    lines = [head, "-" * len(head)]
    for r in rows:
        vals = [r[f"lag_{k}"] for k in lags]
        ratio = vals[-1] / vals[0] if vals[0] > 0 else float("nan")
        lines.append(f"{r['activation']:<11}{r['init']:<12}"
                     + "".join(f"{v:>11.2e}" for v in vals) + f"{ratio:>16.2e}")
    return "\n".join(lines)


def demo_lags_ok(rows: list[dict]) -> bool:
    """The lecture's claim (thresholds of :mod:`gradpath.claims`): tanh+gaussian
    loses at least ``DEMO_VANISHES`` of its norm by the last lag while
    ReLU+identity keeps more than ``IRNN_KEEPS`` of it."""
    get = {(r["activation"], r["init"]): r for r in rows}
    last = f"lag_{DEMO_LAGS[-1]}"
    tg, ri = get[("tanh", "gaussian")], get[("relu", "identity")]
    return bool(tg[last] / tg["lag_0"] < DEMO_VANISHES and ri[last] / ri["lag_0"] > IRNN_KEEPS
                and np.isfinite([tg[last], ri[last]]).all())
