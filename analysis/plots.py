"""Snakemake job: the study's figures (seaborn), a-f.

a. decay curves log10||dL_T/dh_t|| by lag, model x init (LSTM: hidden and cell path)
b. measured decay rate against gain with the mean-field 0.5 ln chi curve, and
   measured against theory with the identity line
c. training curves (task metric by step) by clipping mode, baseline drawn
d. success rate and final metric / baseline against sequence length
e. share of clipped updates and divergences by configuration
f. the decay curve before and after training for a few configurations
"""

import logging
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from gradpath.theory import critical_gain, mean_field  # noqa: E402

MODEL_ORDER = ["rnn-tanh", "rnn-relu", "lstm"]
MODEL_LABEL = {"rnn-tanh": "tanh RNN", "rnn-relu": "ReLU RNN", "lstm": "LSTM"}
INIT_ORDER = ["identity", "gaussian", "orthogonal"]
CLIP_ORDER = ["none", "norm", "value"]
INIT_PALETTE = dict(zip(INIT_ORDER, sns.color_palette("colorblind", 3), strict=True))
DPI = 110
CAP = 1e3  # metrics above CAP x baseline are drawn at that level


def theme() -> None:
    """One theme for every figure."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind",
                  rc={"figure.dpi": DPI, "axes.titlesize": 11, "axes.labelsize": 10})


def _models(df: pd.DataFrame) -> list[str]:
    return [m for m in MODEL_ORDER if m in set(df["model"])]


def _present(order: list[str], values) -> list[str]:
    s = set(values)
    return [v for v in order if v in s]


def _empty(path: str, text: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_decay_curves(runs: pd.DataFrame, curves: pd.DataFrame, path: str) -> None:
    """(a) log10 rms ||dL_T/dh_t|| against lag, rows = model, columns = init, hue = gain."""
    pr = runs[runs["kind"] == "probe"]
    if pr.empty:
        return _empty(path, "no probe runs in this study")
    cv = curves.merge(pr[["run_id", "model", "init", "gain"]], on="run_id")
    gains = sorted(pr["gain"].unique())
    if len(gains) > 5:  # keep the panels readable: five gains spanning the range
        gains = [gains[i] for i in np.unique(np.linspace(0, len(gains) - 1, 5).round().astype(int))]
    cv = cv[cv["gain"].isin(gains)]
    hid = cv[["model", "init", "gain", "lag", "log10_grad_norm"]].rename(
        columns={"log10_grad_norm": "log10"})
    hid["path"] = "hidden h"
    cel = cv[cv["model"] == "lstm"][["model", "init", "gain", "lag", "log10_cell_grad_norm"]]
    cel = cel.rename(columns={"log10_cell_grad_norm": "log10"})
    cel["path"] = "cell c"
    data = pd.concat([hid, cel], ignore_index=True)
    data = data.groupby(["model", "init", "gain", "path", "lag"], as_index=False)["log10"].mean()
    data["gain"] = data["gain"].map(lambda g: f"{g:g}")
    models, inits = _models(data), _present(INIT_ORDER, data["init"])
    g = sns.relplot(data=data, x="lag", y="log10", hue="gain", style="path", row="model",
                    col="init", row_order=models, col_order=inits, kind="line",
                    style_order=["hidden h", "cell c"],
                    palette="viridis", height=2.3, aspect=1.35,
                    facet_kws={"sharey": False, "margin_titles": True})
    g.set_axis_labels("lag T-1-t (steps)", "log10 ||dL_T/dh_t||")
    g.set_titles(row_template="{row_name}", col_template="{col_name} init")
    for ax in g.axes.flat:
        ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
    g.figure.suptitle("Gradient norm by lag at initialisation (input-driven, random unit "
                      "adjoint at the last step)", y=1.02)
    g.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(g.figure)


def fig_decay_theory(runs: pd.DataFrame, path: str) -> None:
    """(b) measured decay rate vs gain with 0.5 ln chi; measured vs theory."""
    pr = runs[(runs["kind"] == "probe") & (runs["cell"] == "rnn")]
    pr = pr[pr["init"].isin(["gaussian", "orthogonal"])]
    if pr.empty:
        return _empty(path, "no gaussian/orthogonal RNN probes in this study")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    u, b = float(pr["input_std"].iloc[0]), float(pr["bias_std"].iloc[0])
    grid = np.linspace(max(0.05, pr["gain"].min() * 0.9), pr["gain"].max() * 1.05, 200)
    colors = {"rnn-tanh": "C0", "rnn-relu": "C3"}
    markers = {"gaussian": "o", "orthogonal": "s"}
    for model in _models(pr):
        act = "relu" if model == "rnn-relu" else "tanh"
        th = [mean_field(act, float(g), u, b).slope for g in grid]
        ax1.plot(grid, th, color=colors[model], lw=1.5, label=f"{MODEL_LABEL[model]}: ½ ln χ")
        for init in _present(["gaussian", "orthogonal"], pr["init"]):
            s = pr[(pr["model"] == model) & (pr["init"] == init)]
            s = s.groupby("gain", as_index=False)["decay_rate"].mean()
            ax1.scatter(s["gain"], s["decay_rate"], color=colors[model], marker=markers[init],
                        s=28, zorder=3, label=f"{MODEL_LABEL[model]}, {init} (measured)")
    ax1.axhline(0, color="0.4", lw=0.8)
    for act, lab in (("tanh", "tanh edge"), ("relu", "ReLU edge √2")):
        gc = critical_gain(act, u, b)
        ax1.axvline(gc, color="0.6", lw=0.8, ls="--")
        ax1.text(gc, ax1.get_ylim()[0], f" {lab} {gc:.2f}", fontsize=7, va="bottom",
                 color="0.4", rotation=90)
    ax1.set_xlabel("recurrent gain σ_w")
    ax1.set_ylabel("decay rate (slope of ln||δ|| per step)")
    ax1.set_title(f"Decay rate against gain (σ_u = {u:g}, σ_b = {b:g})")
    ax1.legend(fontsize=7, loc="lower right")
    ok = pr.dropna(subset=["theory_slope"])
    ok = ok[np.isfinite(ok["theory_slope"])]
    ok = ok[~((ok["model"] == "rnn-relu") & (ok["gain"] >= math.sqrt(2)))]
    for (model, init), s in ok.groupby(["model", "init"]):
        ax2.scatter(s["theory_slope"], s["decay_rate"], color=colors[model],
                    marker=markers[init], s=28, label=f"{MODEL_LABEL[model]}, {init}")
    if len(ok):
        lo = float(min(ok["theory_slope"].min(), ok["decay_rate"].min())) - 0.05
        hi = float(max(ok["theory_slope"].max(), ok["decay_rate"].max())) + 0.05
        ax2.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="identity")
        err = (ok["decay_rate"] - ok["theory_slope"]).abs().max()
        ax2.set_title(f"Measured against mean-field theory (max |error| {err:.3f})")
    ax2.set_xlabel("theory ½ ln χ (per step)")
    ax2.set_ylabel("measured decay rate (per step)")
    ax2.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_training_curves(runs: pd.DataFrame, training: pd.DataFrame, path: str) -> None:
    """(c) training metric by step at the longest length, rows = model, cols = clip."""
    tr = runs[runs["kind"] == "train"]
    if tr.empty:
        return _empty(path, "no training runs in this study")
    task = tr["task"].iloc[0]
    tr = tr[tr["task"] == task]
    T = int(tr["seq_len"].max())
    sel = tr[tr["seq_len"] == T]
    d = training.merge(sel[["run_id", "model", "init", "clip", "seed"]], on="run_id")
    d = d[np.isfinite(d["metric"])]
    # smooth each run's noisy per-batch metric over a window of 5% of its steps
    win = max(1, int(d["step"].max() * 0.05))
    d = d.sort_values(["run_id", "step"])
    d["smoothed"] = d.groupby("run_id")["metric"].transform(
        lambda s: s.rolling(win, min_periods=1).mean())
    d = d[d["step"] % max(1, win // 2) == 0]
    base = float(sel["baseline"].iloc[0])
    cap = CAP * base  # exploded runs are drawn at the top edge instead of squashing the rest
    d["smoothed"] = d["smoothed"].clip(upper=cap)
    models, clips = _models(sel), _present(CLIP_ORDER, sel["clip"])
    g = sns.relplot(data=d, x="step", y="smoothed", hue="init", row="model", col="clip",
                    row_order=models, col_order=clips, hue_order=_present(INIT_ORDER, d["init"]),
                    palette=INIT_PALETTE, kind="line", estimator="median",
                    errorbar=("pi", 50), height=2.3, aspect=1.4,
                    facet_kws={"margin_titles": True})
    for ax in g.axes.flat:
        ax.axhline(base, color="k", lw=1, ls="--")
        ax.set_yscale("log")
        ax.set_ylim(top=cap * 1.5)
    g.set_axis_labels("update step", "train metric (smoothed)")
    g.set_titles(row_template="{row_name}", col_template="clip: {col_name}")
    g.figure.suptitle(f"Training on {task}, T = {T}: median over seeds (band: inter-quartile); "
                      f"dashed: baseline {base:.3g}; capped at {CAP:g}x baseline. "
                      "Diverged runs end early.",
                      y=1.02)
    g.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(g.figure)


def fig_success_by_length(runs: pd.DataFrame, path: str) -> None:
    """(d) success rate and final metric / baseline against sequence length."""
    tr = runs[runs["kind"] == "train"].copy()
    if tr.empty:
        return _empty(path, "no training runs in this study")
    tr["final / baseline"] = (tr["final_metric"] / tr["baseline"]).clip(upper=CAP)
    tr["success rate"] = tr["success"].astype(float)
    models = _models(tr)
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 6.4), squeeze=False,
                             sharex=True)
    inits = _present(INIT_ORDER, tr["init"])
    clips = _present(CLIP_ORDER, tr["clip"])
    dashes = {"none": (1, 0), "norm": (4, 2), "value": (1, 1.5)}
    for j, model in enumerate(models):
        s = tr[tr["model"] == model]
        agg = s.groupby(["init", "clip", "seq_len"], as_index=False).agg(
            success=("success rate", "mean"), ratio=("final / baseline", "median"))
        for init in inits:
            for clip in clips:
                a = agg[(agg["init"] == init) & (agg["clip"] == clip)]
                if a.empty:
                    continue
                kw = dict(color=INIT_PALETTE[init], dashes=dashes[clip], marker="o", ms=3.5,
                          label=f"{init}, clip {clip}")
                axes[0, j].plot(a["seq_len"], a["success"], **kw)
                axes[1, j].plot(a["seq_len"], a["ratio"], **kw)
        axes[0, j].set_title(MODEL_LABEL[model])
        axes[0, j].set_ylim(-0.05, 1.05)
        axes[1, j].set_yscale("log")
        axes[1, j].axhline(1.0, color="k", lw=1, ls="--")
        axes[1, j].set_xlabel("sequence length T")
        axes[1, j].set_xticks(sorted(tr["seq_len"].unique()))
    axes[0, 0].set_ylabel("success rate over seeds")
    axes[1, 0].set_ylabel(f"held-out metric / baseline\n(median, capped at {CAP:g}; "
                          "gaps: diverged)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(inits), fontsize=8,
               bbox_to_anchor=(0.5, -0.06))
    task = tr["task"].iloc[0]
    fig.suptitle(f"Which remedy works at which length ({task}; success = held-out metric "
                 "below 10% of the baseline)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_clipping(runs: pd.DataFrame, path: str) -> None:
    """(e) share of clipped updates and number of diverged runs, by configuration."""
    tr = runs[runs["kind"] == "train"].copy()
    if tr.empty:
        return _empty(path, "no training runs in this study")
    tr["config"] = tr["model"].map(MODEL_LABEL) + ", " + tr["init"]
    order = [f"{MODEL_LABEL[m]}, {i}" for m in MODEL_ORDER for i in INIT_ORDER
             if f"{MODEL_LABEL[m]}, {i}" in set(tr["config"])]
    clips = _present(CLIP_ORDER, tr["clip"])
    share = tr.pivot_table(index="config", columns="clip", values="clipped_fraction",
                           aggfunc="mean").reindex(index=order, columns=clips)
    tr["diverged"] = (tr["status"] == "diverged").astype(int)
    div = tr.pivot_table(index="config", columns="clip", values="diverged",
                         aggfunc="sum").reindex(index=order, columns=clips)
    total = tr.pivot_table(index="config", columns="clip", values="run_id",
                           aggfunc="count").reindex(index=order, columns=clips)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 0.45 * len(order) + 1.8))
    sns.heatmap(share, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, ax=ax1,
                cbar_kws={"label": "share of updates clipped"})
    ax1.set_title("Share of clipped updates (mean over lengths, seeds)")
    labels = div.astype(int).astype(str) + "/" + total.astype(int).astype(str)
    sns.heatmap(div, annot=labels, fmt="", cmap="Reds", vmin=0,
                vmax=max(1, float(np.nanmax(div.to_numpy()))), ax=ax2,
                cbar_kws={"label": "diverged runs"})
    ax2.set_title("Diverged runs / runs")
    for ax in (ax1, ax2):
        ax.set_xlabel("clipping")
        ax.set_ylabel("")
    ax2.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_before_after(runs: pd.DataFrame, curves: pd.DataFrame, path: str) -> None:
    """(f) decay curve at initialisation and after training (seed 0, longest T)."""
    tr = runs[(runs["kind"] == "train") & (runs["status"] == "finished")]
    if tr.empty:
        return _empty(path, "no finished training runs in this study")
    T = int(tr["seq_len"].max())
    wanted = [("rnn-relu", "identity"), ("lstm", "orthogonal"), ("rnn-tanh", "orthogonal"),
              ("rnn-tanh", "gaussian")]
    clip = "norm" if "norm" in set(tr["clip"]) else tr["clip"].iloc[0]
    picks = []
    for model, init in wanted:
        s = tr[(tr["model"] == model) & (tr["init"] == init) & (tr["seq_len"] == T)
               & (tr["clip"] == clip)].sort_values("seed")
        if len(s):
            picks.append(s.iloc[0])
    if not picks:
        return _empty(path, "none of the showcased configurations is in this study")
    fig, axes = plt.subplots(1, len(picks), figsize=(3.3 * len(picks), 3.2), squeeze=False,
                             sharey=False)
    for ax, r in zip(axes[0], picks, strict=True):
        c = curves[(curves["run_id"] == r["run_id"]) & curves["phase"].isin(["init", "final"])]
        for phase, color in (("init", "0.5"), ("final", "C2")):
            s = c[c["phase"] == phase]
            ax.plot(s["lag"], s["log10_grad_norm"], color=color, label=phase)
        ax.set_title(f"{MODEL_LABEL[r['model']]}, {r['init']}\nclip {clip}, T = {T}",
                     fontsize=9)
        ax.set_xlabel("lag (steps)")
    axes[0, 0].set_ylabel("log10 ||dL_T/dh_t||")
    axes[0, 0].legend(title="phase", fontsize=8)
    fig.suptitle("Decay curve before and after training (held-out batch, loss at the last "
                 "step)", y=1.03)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def main(inputs: dict, outputs: dict, log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    theme()
    runs = pd.read_parquet(inputs["runs"])
    curves = pd.read_parquet(inputs["curves"])
    training = pd.read_parquet(inputs["training"])
    fig_decay_curves(runs, curves, outputs["a"])
    fig_decay_theory(runs, outputs["b"])
    fig_training_curves(runs, training, outputs["c"])
    fig_success_by_length(runs, outputs["d"])
    fig_clipping(runs, outputs["e"])
    fig_before_after(runs, curves, outputs["f"])
    for key, path in outputs.items():
        logging.info("figure %s: %s", key, path)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main({k: sm.input[k] for k in ("runs", "curves", "training")},
         {k: sm.output[k] for k in "abcdef"}, sm.log[0])
