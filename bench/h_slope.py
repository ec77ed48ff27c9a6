"""gradpath's time against the hidden size, and its log-log slope (the scaling target).

    python bench/h_slope.py [--cells rnn,lstm,gru] [--hidden 256,512,1024]

Forward + backward (mse over every step), B = 16, T = 100, D = 2, float32,
the process's usual threads; the median of 7 calls per size after one
warm-up call, and the slope of log time against log H fitted over the sizes.
``bench/peers.py --scaling`` measures the same with the peers beside it, at
far greater cost (PyTorch's explicit loops at T = 10 000).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from gradpath.models import make_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="rnn,lstm,gru")
    ap.add_argument("--hidden", default="256,512,1024")
    args = ap.parse_args(argv)
    sizes = [int(h) for h in args.hidden.split(",")]
    for cell in args.cells.split(","):
        ms = []
        for H in sizes:
            rng = np.random.default_rng(0)
            model = make_model(cell, 2, H, 1)
            p = model.init_params("orthogonal", seed=0, dtype=np.float32)
            x = rng.standard_normal((100, 16, 2)).astype(np.float32)
            y = rng.standard_normal((100, 16, 1)).astype(np.float32)
            model.loss_and_grads(p, x, y, loss="mse", score="all")
            samples = []
            for _ in range(7):
                t = time.perf_counter()
                model.loss_and_grads(p, x, y, loss="mse", score="all")
                samples.append(time.perf_counter() - t)
            ms.append(1e3 * statistics.median(samples))
        slope = np.polyfit(np.log(sizes), np.log(ms), 1)[0]
        print(f"{cell}: " + ", ".join(f"H {H} {t:.1f} ms" for H, t in zip(sizes, ms, strict=True))
              + f"; slope {slope:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
