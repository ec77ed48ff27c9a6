"""Snakemake job: the Reproductions section (published claims as verdicts) and
the figure of Pascanu et al.'s cliff.

``reproductions.csv``: one row per published claim (:mod:`gradpath.claims`:
its kind, claim, source, the paper's result, the measure, the value measured
here, the three-valued verdict and why an undecided one is, the budget used,
and for a training reproduction both protocols and the deviations), then one
row per mean-field probe. ``protocols.csv``: the protocols field by field
(claim, field, paper, gradpath, deviation). Claims whose runs the study lacks
are "n/a" (``configs/paper.yaml`` has them all).
"""

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from figure_table import DPI  # noqa: E402 - analysis/, beside this script
from summarise import to_html  # noqa: E402

from gradpath.claims import (  # noqa: E402
    CLIFF_LR,
    CLIFF_START,
    REPRODUCTIONS,
    cliff_experiment,
    protocol_rows,
    reproductions,
)


def fig_cliff(path: str) -> None:
    """Loss surface of the one-unit network with its wall, and SGD across it."""
    (W, B, L, G), free, clipped = cliff_experiment()
    sns.set_theme(context="notebook", style="white")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    im = ax1.pcolormesh(W, B, np.log10(L + 1e-12), shading="auto", cmap="viridis")
    fig.colorbar(im, ax=ax1, label="log10 loss")
    ax1.contour(W, B, np.log10(G + 1e-12), levels=[1.0], colors="w", linewidths=0.8)
    traj = pd.concat([pd.DataFrame({"w": t.w, "b": t.b, "SGD": name})
                      for name, t in (("unclipped", free), ("norm clipped at 1", clipped))])
    sns.lineplot(data=traj, x="w", y="b", hue="SGD", sort=False, marker="o", markersize=3,
                 palette={"unclipped": "C3", "norm clipped at 1": "w"}, ax=ax1)
    ax1.set(xlim=(W.min(), W.max()), ylim=(B.min(), B.max()), xlabel="w", ylabel="b",
            title="Loss of x_t = w·σ(x_(t-1)) + b at T = 50 (white contour: |∇L| = 10)")
    steps = pd.concat([pd.DataFrame({"step": np.arange(1, len(t.step_length) + 1),
                                     "length": t.step_length, "SGD": name})
                       for name, t in (("unclipped", free), ("norm clipped at 1", clipped))])
    sns.lineplot(data=steps, x="step", y="length", hue="SGD",
                 palette={"unclipped": "C3", "norm clipped at 1": "C0"}, ax=ax2)
    ax2.set(yscale="log", xlabel="SGD step", ylabel="length of the update",
            title=f"Update lengths from (w, b) = {CLIFF_START}, lr {CLIFF_LR}")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def main(inputs: dict, outputs: dict, log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    tables = {name: pd.read_parquet(inputs[name]) for name in ("runs", "curves", "training")}
    rep = reproductions(tables)
    rep.to_csv(outputs["table"], index=False)
    with open(outputs["html"], "w") as f:
        f.write(to_html(rep, "Reproductions: published claims, measured here"))
    protocol_rows(REPRODUCTIONS, tables).to_csv(outputs["protocols"], index=False)
    fig_cliff(outputs["cliff"])
    for _, r in rep.iterrows():
        logging.info("%s: %s (%s)", r["claim"], r["verdict"], r["value"])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main({k: sm.input[k] for k in ("runs", "curves", "training")},
         {k: sm.output[k] for k in ("table", "html", "protocols", "cliff")}, sm.log[0])
