"""Snakemake job: one of the study's figures (seaborn), a row of figure_table.py.

a. decay curves log10||dL_T/dh_t|| by lag, model x init (LSTM: hidden and cell path)
b. measured decay rate against gain with the mean-field 0.5 ln chi curve, and
   measured against theory with the identity line
c. training curves (held-out metric by step) of the reported runs, by length
   and model, baseline drawn
d. success rate and final metric / baseline against sequence length
e. gradient norms over training with the clipping threshold, by clip mode,
   and the diverged runs
f. the decay curve at every checkpoint through training, for the remedies
g. the Lyapunov spectrum at initialisation
i. success and divergence against the learning rate, clipped and unclipped
j. the copy task's curves, with the positive control
k. lambda_1 and the decay slope against 0.5 ln chi
l. float32 against float64: the training loss of each pair, and their gap
Every training figure is faceted by task when a study has several.
"""

import logging
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from figure_table import DPI, FIGURES  # noqa: E402 - analysis/, beside this script

from gradpath import vocab  # noqa: E402
from gradpath.claims import (  # noqa: E402
    PAIR_KEYS,
    PRECISION_RTOL,
    PRECISION_STEPS,
    SUCCESS_FRACTION,
    primary,
    report_runs,
    successes,
)
from gradpath.tasks import SUCCESS_FRACTIONS  # noqa: E402
from gradpath.theory import THEORY_INITS, critical_gain, mean_field  # noqa: E402

# Orders and names from the vocabulary: a new model, init or clip mode gets
# its place, its title and a colour without an edit here.
MODEL_ORDER = list(vocab.MODELS)
MODEL_LABEL = {label: m.title for label, m in vocab.MODELS.items()}
INIT_ORDER = list(vocab.INITS)
CLIP_ORDER = list(vocab.CLIPS)


def _palette(names: list[str], first: tuple[int, ...] = ()) -> dict:
    """A colorblind-palette colour per name, the palette indices ``first``
    first (the figures' established colours), then the rest of the palette."""
    colours = sns.color_palette("colorblind")
    order = [*first, *(i for i in range(len(colours)) if i not in first)]
    return {n: colours[order[i % len(order)]] for i, n in enumerate(names)}


INIT_PALETTE = _palette(INIT_ORDER)
CLIP_PALETTE = _palette(CLIP_ORDER, first=(3, 0, 4))  # none red, norm blue, value
MODEL_PALETTE = _palette(MODEL_ORDER, first=(0, 3))  # tanh RNN blue, ReLU RNN red
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
    # the cell path of the cells that have a cell state (NaN for the others)
    cel = cv[cv["log10_cell_grad_norm"].notna()][["model", "init", "gain", "lag",
                                                  "log10_cell_grad_norm"]]
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
    pr = runs[(runs["kind"] == "probe") & (runs["cell"] == "rnn")]  # where the theory applies
    pr = pr[pr["init"].isin(THEORY_INITS)].copy()
    if pr.empty:
        return _empty(path, "no gaussian/orthogonal RNN probes in this study")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    u, b = float(pr["input_std"].iloc[0]), float(pr["bias_std"].iloc[0])
    grid = np.linspace(max(0.05, pr["gain"].min() * 0.9), pr["gain"].max() * 1.05, 200)
    pr["network"] = pr["model"].map(MODEL_LABEL)
    theory = pd.DataFrame([
        {"gain": g, "slope": mean_field(vocab.MODELS[m].activation, float(g), u, b).slope,
         "network": MODEL_LABEL[m]} for m in _models(pr) for g in grid])
    palette = {MODEL_LABEL[m]: MODEL_PALETTE[m] for m in _models(pr)}
    sns.lineplot(data=theory, x="gain", y="slope", hue="network", palette=palette, ax=ax1,
                 legend=False, lw=1.5)
    meas = pr.groupby(["network", "init", "gain"], as_index=False)["decay_rate"].mean()
    sns.scatterplot(data=meas, x="gain", y="decay_rate", hue="network", style="init",
                    palette=palette, s=36, zorder=3, ax=ax1)
    ax1.axhline(0, color="0.4", lw=0.8)
    for act, lab in (("tanh", "tanh edge"), ("relu", "ReLU edge √2")):
        gc = critical_gain(act, u, b)
        ax1.axvline(gc, color="0.6", lw=0.8, ls="--")
        ax1.text(gc, ax1.get_ylim()[0], f" {lab} {gc:.2f}", fontsize=7, va="bottom",
                 color="0.4", rotation=90)
    gated = runs[(runs["kind"] == "probe") & (runs["cell"] != "rnn")]
    xlabel = "recurrent gain σ_w"
    if not gated.empty:  # measured, but with no theory to set them against
        xlabel += ("\n½ ln χ: n/a for the gated cells ("
                   + ", ".join(MODEL_LABEL[m] for m in _models(gated))
                   + "); their rates are in the probe table")
    ax1.set(xlabel=xlabel, ylabel="decay rate (slope of ln||δ|| per step)",
            title=f"Decay rate against gain (lines: ½ ln χ; σ_u = {u:g}, σ_b = {b:g})")
    ax1.legend(fontsize=7, loc="lower right")
    ok = pr.dropna(subset=["theory_slope"])
    ok = ok[np.isfinite(ok["theory_slope"])]
    ok = ok[~((ok["activation"] == "relu") & (ok["gain"] >= math.sqrt(2)))]  # q* diverges
    if len(ok):
        sns.scatterplot(data=ok, x="theory_slope", y="decay_rate", hue="network", style="init",
                        palette=palette, s=36, ax=ax2)
        lo = float(min(ok["theory_slope"].min(), ok["decay_rate"].min())) - 0.05
        hi = float(max(ok["theory_slope"].max(), ok["decay_rate"].max())) + 0.05
        ax2.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="identity")
        err = (ok["decay_rate"] - ok["theory_slope"]).abs().max()
        ax2.set_title(f"Measured against mean-field theory (max |error| {err:.3f})")
        ax2.legend(fontsize=7, loc="upper left")
    ax2.set(xlabel="theory ½ ln χ (per step)", ylabel="measured decay rate (per step)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _reported(runs: pd.DataFrame) -> pd.DataFrame:
    """Reported training runs at gain 1 (the remedies; the exploding regime is figure e),
    one set per configuration (the sweep-selected ones where there are)."""
    tr = report_runs(runs)
    return primary(tr[np.isclose(tr["gain"], 1.0)])


def _panel(tr: pd.DataFrame) -> pd.Series:
    """Facet label: the length, with the task when a study has several."""
    T = "T = " + tr["seq_len"].astype(str)
    return tr["task"] + ", " + T if tr["task"].nunique() > 1 else T


def _held_out_curves(tr: pd.DataFrame, training: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """The held-out metric of runs ``tr`` by step, from before training (step 0)
    to the end, with the runs' columns ``cols`` and ``ratio`` (metric over
    baseline, capped at CAP)."""
    cols = ["run_id", *cols, "baseline"]
    d = training.merge(tr[cols], on="run_id")
    d = d[np.isfinite(d["eval_metric"])]
    start = tr[cols].assign(step=0, eval_metric=tr["initial_metric"])  # before training
    d = pd.concat([start, d[cols + ["step", "eval_metric"]]], ignore_index=True)
    return d.assign(ratio=(d["eval_metric"] / d["baseline"]).clip(upper=CAP))


def _metric_axis(ax, col: str = "ratio", success: float = SUCCESS_FRACTION) -> None:
    """A ratio panel on a log scale with the baseline (dashed) and success
    (dotted, at ``success`` x the baseline), or a share panel on [0, 1]."""
    if col == "ratio":
        ax.set_yscale("log")
        ax.axhline(1.0, color="k", lw=1, ls="--")
        ax.axhline(success, color="C2", lw=1, ls=":")
    else:
        ax.set_ylim(-0.05, 1.05)


def fig_training_curves(runs: pd.DataFrame, training: pd.DataFrame, path: str) -> None:
    """(c) held-out metric / baseline by step of the reported runs (median over seeds)."""
    tr = _reported(runs)
    tr = tr[tr["clip"] == ("norm" if "norm" in set(tr["clip"]) else tr["clip"].iloc[0])] \
        if len(tr) else tr
    if tr.empty:
        return _empty(path, "no reported training runs in this study")
    tr = tr.assign(panel=_panel(tr))
    d = _held_out_curves(tr, training, ["model", "init", "seed", "panel"])
    models = _models(tr)
    panels = sorted(set(d["panel"]), key=lambda p: (p.split("T = ")[0],
                                                    int(p.split("T = ")[1])))
    g = sns.relplot(data=d, x="step", y="ratio", hue="init", row="panel", col="model",
                    row_order=panels, col_order=models, hue_order=_present(INIT_ORDER, d["init"]),
                    palette=INIT_PALETTE, kind="line", estimator="median", errorbar=("pi", 100),
                    marker="o", markersize=3, height=2.3, aspect=1.4,
                    facet_kws={"margin_titles": True, "sharex": "row"})
    for ax in g.axes.flat:
        _metric_axis(ax)
    g.set_axis_labels("update step", "held-out metric / baseline")
    g.set_titles(row_template="{row_name}", col_template="{col_name}")
    g.figure.suptitle("Training the remedies: reported seeds at the selected learning rate "
                      "(line: median, band: range over seeds).\nDashed: the baseline; dotted: "
                      f"success ({SUCCESS_FRACTION:.0%} of it). Diverged runs end early.", y=1.04)
    g.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(g.figure)


def fig_success_by_length(runs: pd.DataFrame, path: str) -> None:
    """(d) success rate and final metric / baseline against sequence length."""
    tr = _reported(runs)
    if tr.empty:
        return _empty(path, "no reported training runs in this study")
    tr = tr.assign(success=successes(tr).astype(float),
                   ratio=(tr["final_metric"] / tr["baseline"]).clip(upper=CAP))
    agg = tr.groupby(["task", "model", "init", "seq_len"], as_index=False).agg(
        success=("success", "mean"), ratio=("ratio", "median"))
    tasks, models = sorted(set(agg["task"])), _models(agg)
    inits = _present(INIT_ORDER, agg["init"])
    fig, axes = plt.subplots(2 * len(tasks), len(models), squeeze=False, sharex=True,
                             figsize=(3.8 * len(models), 5.6 * len(tasks)))
    for i, task in enumerate(tasks):
        for j, model in enumerate(models):
            a = agg[(agg["task"] == task) & (agg["model"] == model)]
            for k, (col, label) in enumerate((("success", "success rate over seeds"),
                                              ("ratio", "final held-out metric / baseline"))):
                ax = axes[2 * i + k, j]
                sns.lineplot(data=a, x="seq_len", y=col, hue="init", hue_order=inits,
                             palette=INIT_PALETTE, marker="o", ax=ax,
                             legend=(i == 0 and j == len(models) - 1 and k == 0))
                ax.set(xlabel="sequence length T", ylabel=label if j == 0 else "")
                _metric_axis(ax, col)
                if col != "ratio":
                    ax.set_title(f"{MODEL_LABEL[model]}" + (f" ({task})" if len(tasks) > 1
                                                            else ""))
    fig.suptitle(f"Which remedy learns at which length (median over seeds; success: final "
                 f"held-out metric below {SUCCESS_FRACTION:.0%} of the baseline, dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_clipping(runs: pd.DataFrame, training: pd.DataFrame, path: str) -> None:
    """(e) gradient norm over training by clip mode (clipping events marked,
    divergences crossed), its distribution over all updates, and the diverged
    runs, in the configurations trained with several clip modes."""
    tr = primary(report_runs(runs))
    keys = ["task", "model", "init", "gain", "seq_len"]
    multi = tr.groupby(keys)["clip"].transform("nunique") > 1
    tr = tr[multi]
    if tr.empty:
        return _empty(path, "no configuration trained with several clip modes")
    tr = tr.assign(config=tr["model"].map(MODEL_LABEL) + ", " + tr["init"] + ", gain "
                   + tr["gain"].map(lambda g: f"{g:g}") + ", T = " + tr["seq_len"].astype(str))
    d = training.merge(tr[["run_id", "config", "clip", "seed", "clip_threshold"]], on="run_id")
    d = d[np.isfinite(d["grad_norm_before"]) & (d["grad_norm_before"] > 0)]
    d = d.assign(log10_norm=np.log10(d["grad_norm_before"]))
    configs = sorted(set(tr["config"]))
    clips = _present(CLIP_ORDER, tr["clip"])
    fig, axes = plt.subplots(len(configs), 3, figsize=(15, 3.6 * len(configs)), squeeze=False,
                             gridspec_kw={"width_ratios": [2.4, 1.2, 0.9]})
    for i, cfg in enumerate(configs):
        ax, dist, bars = axes[i]
        s = d[d["config"] == cfg]
        c = tr[tr["config"] == cfg]
        sns.lineplot(data=s, x="step", y="log10_norm", hue="clip", hue_order=clips,
                     palette=CLIP_PALETTE, units="seed", estimator=None, lw=0.7, alpha=0.85,
                     ax=ax)
        ev = s[s["clipped"]]
        sns.scatterplot(data=ev, x="step", y="log10_norm", hue="clip", hue_order=clips,
                        palette=CLIP_PALETTE, marker="|", s=14, legend=False, ax=ax)
        thr = c[c["clip"] != "none"]["clip_threshold"]
        if len(thr):
            ax.axhline(np.log10(float(thr.iloc[0])), color="k", lw=1, ls="--")
        # a diverged run's last norm is not finite: cross it at the top, at its step
        div = c[c["status"] == "diverged"]
        top = float(s["log10_norm"].max()) if len(s) else 1.0
        for _, r in div.iterrows():
            ax.scatter(r["diverged_at"], top, marker="X", s=70, color=CLIP_PALETTE[r["clip"]],
                       edgecolor="k", zorder=5)
        ax.set(title=f"{cfg}: log10 ||g|| before clipping\n(ticks: clipped updates; X: "
                     "divergence; dashed: threshold)", xlabel="update step",
               ylabel="log10 ||g||")
        sns.violinplot(data=s, x="clip", y="log10_norm", order=clips, hue="clip",
                       hue_order=clips, palette=CLIP_PALETTE, cut=0, inner="quartile",
                       density_norm="width", legend=False, ax=dist)
        for j, clip in enumerate(clips):
            frac = c[c["clip"] == clip]["clipped_fraction"]
            n = int((s["clip"] == clip).sum())
            label = (f"{n} updates" + (f"\n{frac.mean():.0%} clipped" if clip != "none" else ""))
            dist.text(j, 1.01, label, transform=dist.get_xaxis_transform(), ha="center",
                      va="bottom", fontsize=8)
        if len(thr):
            dist.axhline(np.log10(float(thr.iloc[0])), color="k", lw=1, ls="--")
        dist.set_title("distribution over all updates", pad=26)
        dist.set(xlabel="clip", ylabel="log10 ||g||")
        c = c.assign(diverged=(c["status"] == "diverged").astype(int))
        counts = c.groupby("clip", as_index=False).agg(diverged=("diverged", "sum"),
                                                       runs=("run_id", "count"))
        sns.barplot(data=counts, x="clip", y="diverged", order=clips, hue="clip",
                    palette=CLIP_PALETTE, legend=False, ax=bars)
        for j, clip in enumerate(clips):
            row = counts[counts["clip"] == clip]
            if len(row):
                bars.text(j, float(row["diverged"].iloc[0]),
                          f"{int(row['diverged'].iloc[0])}/{int(row['runs'].iloc[0])}",
                          ha="center", va="bottom")
        bars.set(title="diverged runs / runs", ylim=(0, max(1, int(counts["runs"].max()))
                                                     + 0.5), ylabel="")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_checkpoints(runs: pd.DataFrame, curves: pd.DataFrame, path: str) -> None:
    """(f) decay curve log10 ||dL_T/dh_t|| at every checkpoint through training
    (seed 0 of the reported runs at the longest length)."""
    tr = _reported(runs)
    tr = tr[(tr["status"] == "finished")]
    if tr.empty:
        return _empty(path, "no finished reported training runs in this study")
    wanted = [("rnn-relu", "identity"), ("lstm", "orthogonal"), ("gru", "orthogonal"),
              ("rnn-tanh", "orthogonal"), ("rnn-tanh", "gaussian")]
    picks = []
    for task in sorted(set(tr["task"])):
        t_ = tr[tr["task"] == task]
        T = int(t_["seq_len"].max())
        for model, init in wanted:
            s = t_[(t_["model"] == model) & (t_["init"] == init) & (t_["seq_len"] == T)]
            s = s.sort_values(["dtype", "seed"])
            if len(s):
                picks.append(s.iloc[0])
    if not picks:
        return _empty(path, "none of the showcased configurations is in this study")
    sel = pd.DataFrame(picks)
    sel = sel.assign(panel=sel["model"].map(MODEL_LABEL) + ", " + sel["init"] + "\n"
                     + sel["task"] + ", T = " + sel["seq_len"].astype(str))
    c = curves.merge(sel[["run_id", "panel"]], on="run_id")
    g = sns.relplot(data=c, x="lag", y="log10_grad_norm", hue="step", col="panel",
                    col_wrap=min(4, len(sel)), kind="line", palette="viridis", height=2.8,
                    aspect=1.1, facet_kws={"sharey": False})
    g.set_titles(col_template="{col_name}")
    g.set_axis_labels("lag (steps)", "log10 ||dL_T/dh_t||")
    g.figure.suptitle("The decay curve through training, at every checkpoint (held-out batch, "
                      "loss at the last step; colour: update step)", y=1.04)
    g.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(g.figure)


def fig_lyapunov(runs: pd.DataFrame, path: str) -> None:
    """(g) the Lyapunov spectrum (top k) of each probed network, by gain."""
    pr = runs[(runs["kind"] == "probe")]
    if pr.empty or "lyapunov" not in pr:
        return _empty(path, "no probe runs in this study")
    rows = [{"model": r["model"], "init": r["init"], "gain": float(r["gain"]), "i": i + 1,
             "exponent": float(v)}
            for _, r in pr.iterrows() for i, v in enumerate(r["lyapunov"])]
    d = pd.DataFrame(rows)
    g = sns.relplot(data=d, x="i", y="exponent", hue="gain", row="model", col="init",
                    row_order=_models(d), col_order=_present(INIT_ORDER, d["init"]),
                    kind="line", marker="o", palette="viridis", height=2.3, aspect=1.3,
                    facet_kws={"sharey": False, "margin_titles": True})
    for ax in g.axes.flat:
        ax.axhline(0, color="0.4", lw=0.8)
    g.set_axis_labels("index i", "λ_i (per step)")
    g.set_titles(row_template="{row_name}", col_template="{col_name} init")
    g.figure.suptitle("Lyapunov spectrum at initialisation (QR method; λ_1 > 0: chaos, "
                      "exploding gradients)", y=1.02)
    g.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(g.figure)


def fig_clipping_rates(runs: pd.DataFrame, path: str) -> None:
    """(i) Pascanu et al.'s exploding regime: success and divergence against the
    learning rate, clipped and unclipped (the runs of a sweep over rates
    trained with several clip modes: every rate's runs are data here)."""
    tr = runs[(runs["kind"] == "train") & (runs["stage"] == "sweep")]
    keys = ["task", "model", "init", "gain", "seq_len"]
    tr = tr[tr.groupby(keys)["clip"].transform("nunique") > 1]
    if tr.empty:
        return _empty(path, "no learning-rate sweep with and without clipping in this study")
    tr = tr.assign(success=successes(tr).astype(float),
                   diverged=(tr["status"] != "finished").astype(float),
                   ratio=(tr["final_metric"] / tr["baseline"]).clip(upper=CAP),
                   setting=tr["model"].map(MODEL_LABEL) + ", gain " + tr["gain"].map("{:g}".format)
                   + ", T = " + tr["seq_len"].astype(str))
    clips = _present(CLIP_ORDER, tr["clip"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (col, label) in zip(axes, (("success", "success rate over seeds"),
                                       ("diverged", "diverged share of seeds"),
                                       ("ratio", "final held-out metric / baseline")),
                                strict=True):
        sns.lineplot(data=tr, x="lr", y=col, hue="clip", hue_order=clips, palette=CLIP_PALETTE,
                     style="setting", marker="o", errorbar=None,
                     estimator="median" if col == "ratio" else "mean", ax=ax,
                     legend=ax is axes[0])
        ax.set(xscale="log", xlabel="learning rate (plain SGD)", ylabel=label)
        _metric_axis(ax, col)
    n = int(tr.groupby(["clip", "lr", "setting"])["seed"].nunique().min())
    fig.suptitle("Which learning rates train, clipped against unclipped (Pascanu et al. 2013): "
                 f"{n} seeds per point; median ratio (diverged runs omitted)", y=1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_copy(runs: pd.DataFrame, training: pd.DataFrame, path: str) -> None:
    """(j) the copy task: held-out cross-entropy / baseline by step for every
    model (median and range over the reported seeds), by length: the models
    that stay at the memoryless baseline and the positive control that solves it."""
    tr = primary(report_runs(runs))
    tr = tr[tr["task"] == "copy"]
    if tr.empty:
        return _empty(path, "no copy-task runs in this study")
    d = _held_out_curves(tr, training, ["model", "seed", "seq_len"])
    d = d.assign(panel="T = " + d["seq_len"].astype(str))
    models = _models(tr)
    g = sns.relplot(data=d, x="step", y="ratio", hue="model", hue_order=models,
                    palette=MODEL_PALETTE, col="panel",
                    col_order=[f"T = {t}" for t in sorted(set(tr["seq_len"]))], kind="line",
                    estimator="median", errorbar=("pi", 100), height=3.2, aspect=1.5)
    for ax in g.axes.flat:
        _metric_axis(ax, success=SUCCESS_FRACTIONS["copy"])
    g.set_axis_labels("update step", "held-out cross-entropy / baseline")
    g.set_titles(col_template="{col_name}")
    g.figure.suptitle("The copy task (Arjovsky et al. 2016): dashed, the memoryless baseline "
                      "10 ln 8 / (T + 20); dotted, success (10 % of it)", y=1.04)
    g.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(g.figure)


def fig_three_rates(runs: pd.DataFrame, path: str) -> None:
    """(k) three measures of one rate: lambda_1 and the BPTT decay slope against
    the mean-field 0.5 ln chi, for the input-driven vanilla RNN probes."""
    pr = runs[(runs["kind"] == "probe") & (runs["cell"] == "rnn")]
    pr = pr[pr["init"].isin(THEORY_INITS) & np.isfinite(pr["theory_slope"].astype(float))]
    pr = pr[~((pr["activation"] == "relu") & (pr["gain"] >= math.sqrt(2)))]
    if pr.empty:
        return _empty(path, "no gaussian/orthogonal RNN probes with a mean-field rate")
    d = pd.concat([pr.assign(measure="λ₁ (Lyapunov, QR)", value=pr["lyapunov_1"]),
                   pr.assign(measure="BPTT decay slope", value=pr["decay_rate"])])
    d = d.assign(network=d["model"].map(MODEL_LABEL))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    sns.scatterplot(data=d, x="theory_slope", y="value", hue="measure", style="network", s=40,
                    ax=ax1)
    lo = float(min(d["theory_slope"].min(), d["value"].min())) - 0.05
    hi = float(max(d["theory_slope"].max(), d["value"].max())) + 0.05
    ax1.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="identity")
    ax1.set(xlabel="½ ln χ (mean field, per step)", ylabel="measured rate (per step)",
            title="λ₁ and the decay slope against ½ ln χ")
    ax1.legend(fontsize=7)
    pr = pr.assign(network=pr["model"].map(MODEL_LABEL),
                   gap=pr["lyapunov_1"] - pr["decay_rate"])
    sns.scatterplot(data=pr, x="gain", y="gap", hue="network", style="init", s=40, ax=ax2)
    ax2.axhline(0, color="0.4", lw=0.8)
    ax2.set(xlabel="recurrent gain σ_w", ylabel="λ₁ − decay slope (per step)",
            title=f"The two measured rates per probe (N = {int(pr['hidden'].min())})")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def fig_precision(runs: pd.DataFrame, training: pd.DataFrame, path: str) -> None:
    """(l) float32 against float64: the training loss of every reported run
    trained in both precisions (same settings and seed), and the relative gap
    of each pair by update, with the float32 finding's tolerance."""
    tr = report_runs(runs)
    keys = [k for k in PAIR_KEYS if k in tr.columns]
    # a pair differs in its precision alone (NaN settings count as equal)
    tr = tr.assign(pair=tr[keys].map(repr).agg("|".join, axis=1))
    both = tr.groupby("pair")["dtype"].transform(lambda d: {"float32", "float64"} <= set(d))
    tr = tr[both & tr["dtype"].isin(["float32", "float64"])]
    if tr.empty:
        return _empty(path, "no configuration trained in both precisions in this study")
    tr = tr.assign(config=tr["model"].map(MODEL_LABEL) + ", " + tr["init"] + ", T = "
                   + tr["seq_len"].astype(str))
    d = training.merge(tr[["run_id", "pair", "config", "seed", "dtype"]], on="run_id")
    wide = d.pivot_table(index=["pair", "config", "seed", "step"], columns="dtype",
                         values="loss").dropna().reset_index()
    wide = wide.assign(gap=(wide["float32"] - wide["float64"]).abs() / wide["float64"].abs())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    sns.lineplot(data=d, x="step", y="loss", hue="seed", style="dtype", units="pair",
                 estimator=None, palette="colorblind", style_order=["float32", "float64"],
                 ax=ax1)
    ax1.set(yscale="log", xlabel="update step", ylabel="training loss",
            title="Training loss, float32 (solid) and float64 (dashed)")
    sns.lineplot(data=wide, x="step", y="gap", hue="seed", units="pair", estimator=None,
                 palette="colorblind", legend=False, ax=ax2)
    ax2.axhline(PRECISION_RTOL, color="k", lw=1, ls="--")
    ax2.axvline(PRECISION_STEPS, color="0.5", lw=1, ls=":")
    ax2.set_yscale("symlog", linthresh=1e-7)  # a gap of exactly 0 stays on the axis
    ax2.set(xlabel="update step",
            ylabel="|loss32 - loss64| / |loss64|",
            title=f"Gap of each pair (dashed: tolerance {PRECISION_RTOL:g}, judged up to "
                  f"step {PRECISION_STEPS}, dotted)")
    fig.suptitle(", ".join(sorted(set(tr["config"]))), y=1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def main(name: str, inputs: dict, path: str, log: str) -> None:
    """Draw figure ``name`` of the table (figure_table.py) from its tables into ``path``."""
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    theme()
    fig = FIGURES[name]
    tables = [pd.read_parquet(inputs[t]) for t in fig.tables]
    globals()[fig.plot](*tables, path)
    logging.info("figure %s: %s", name, path)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(sm.params.figure, {t: sm.input[t] for t in FIGURES[sm.params.figure].tables},
         sm.output.figure, sm.log[0])
