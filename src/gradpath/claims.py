"""The claims gradpath measures, each written once: what is claimed, where it
comes from, the runs that decide it, the statistic and the threshold.

A :class:`Claim` judges a study's tables (``{"runs": ..., "curves": ...}``,
:mod:`gradpath.results`) and returns a :class:`Verdict`: the measured value, whether the claim holds
(None when the study has no runs that can decide it), and a detail line.
The workflow's findings table and reproductions section, the README's table
(generated from them), ``gradpath demo`` and the tests all read the claims
and thresholds from here.

Training claims count a configuration's *reported* runs (``stage ==
"report"``: the seeds run at the selected learning rate) and their final
held-out metric; success is ``final metric < fraction x baseline``, with the
task's fraction (:data:`gradpath.tasks.SUCCESS_FRACTIONS`, the threshold
training records as ``success``): 10 % for the adding problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .tasks import SUCCESS_FRACTIONS

#: A run of the adding problem, which the claims concern, succeeds when its
#: final held-out MSE is below this share of the baseline 1/6 (Le et al. 2015);
#: each task's share is its own (:data:`gradpath.tasks.SUCCESS_FRACTIONS`).
SUCCESS_FRACTION = SUCCESS_FRACTIONS["adding"]
#: "Learns": at least this share of the seeds succeed (2 of 3).
LEARNS_SHARE = 2 / 3
#: A decay rate (per step, of ln ||dL/dh_t||) below this vanishes ...
VANISHING_RATE = -0.01
#: ... and a rate within this of 0 holds the norm (the IRNN).
HOLDS_RATE = 0.02
#: Measured decay rates agree with mean-field theory to within this per step
#: at N >= 500 (0.05 below).
THEORY_TOLERANCE = {500: 0.02, 0: 0.05}
#: Mean-field theory's critical gain of the ReLU RNN.
RELU_EDGE = math.sqrt(2.0)
#: The lecture's demo: tanh + gaussian loses at least this factor of its norm
#: by the last lag, while ReLU + identity keeps more than IRNN_KEEPS.
DEMO_VANISHES = 1e-4
IRNN_KEEPS = 0.5


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging a claim on a study."""

    value: str
    holds: bool | None
    detail: str = ""

    @property
    def label(self) -> str:
        if self.holds is None:
            return "n/a (not in this study)"
        return "holds" if self.holds else "does not hold"


@dataclass(frozen=True)
class Claim:
    """One claim: statement, source, what decides it, and its judge."""

    key: str
    text: str
    source: str
    measure: str
    judge: Callable[[dict], Verdict]
    paper: str = ""
    budget: Callable[[dict], str] | None = None
    #: the paper's own training budget, as it reports it
    paper_budget: str = ""


def _na(why: str = "no runs of this kind") -> Verdict:
    return Verdict("", None, why)


# -- probes -------------------------------------------------------------------
def _probes(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["kind"] == "probe"]


def _vanishes(tables: dict) -> Verdict:
    runs = tables["runs"]
    pr = _probes(runs)
    sel = pr[(pr["model"] == "rnn-tanh") & (pr["init"] == "gaussian")
             & np.isclose(pr["gain"], 1.0)]
    if sel.empty:
        return _na()
    rate = float(sel["decay_rate"].mean())
    decades = rate * float(sel["seq_len"].iloc[0]) / math.log(10)
    return Verdict(f"{rate:+.3f}/step ({decades:.0f} decades)", rate < VANISHING_RATE)


def _explodes(tables: dict) -> Verdict:
    runs = tables["runs"]
    pr = _probes(runs)
    sel = pr[(pr["model"] == "rnn-relu") & (pr["init"] == "gaussian") & (pr["gain"] > RELU_EDGE)]
    if sel.empty:
        return _na()
    rates = sel.groupby("gain")["decay_rate"].mean()
    return Verdict(", ".join(f"gain {g:g}: {r:+.3f}" for g, r in rates.items()),
                   bool((rates > 0).all()))


def _carriers(tables: dict) -> Verdict:
    runs = tables["runs"]
    pr = _probes(runs)
    sel = pr[np.isclose(pr["gain"], 1.0)]
    irnn = sel[(sel["model"] == "rnn-relu") & (sel["init"] == "identity")]["decay_rate"]
    lstm = sel[(sel["model"] == "lstm") & (sel["init"] == "orthogonal")]["cell_decay_rate"]
    tanh = sel[(sel["model"] == "rnn-tanh") & (sel["init"] == "gaussian")]["decay_rate"]
    if irnn.empty or lstm.empty or tanh.empty:
        return _na()
    i, ll, t = float(irnn.mean()), float(lstm.mean()), float(tanh.mean())
    return Verdict(f"IRNN {i:+.4f}, LSTM cell {ll:+.3f}, tanh+gaussian {t:+.3f}",
                   abs(i) < HOLDS_RATE and ll > t)


def _theory_probes(runs: pd.DataFrame) -> pd.DataFrame:
    """Probes with both a measured decay rate and a mean-field value (not ReLU
    at or above sqrt(2), where q* diverges)."""
    th = _probes(runs)
    if th.empty:
        return th
    th = th[np.isfinite(th["theory_slope"].astype(float))
            & np.isfinite(th["decay_rate"].astype(float))]
    return th[~((th["model"] == "rnn-relu") & (th["gain"] >= RELU_EDGE))]


def theory_tolerance(hidden: int) -> float:
    """Agreement expected between measured decay rates and 0.5 ln chi at N = hidden."""
    return THEORY_TOLERANCE[500] if hidden >= 500 else THEORY_TOLERANCE[0]


def _theory(tables: dict) -> Verdict:
    runs = tables["runs"]
    th = _theory_probes(runs)
    if th.empty:
        return _na()
    err = (th["decay_rate"] - th["theory_slope"]).abs()
    n = int(th["hidden"].min())
    tol = theory_tolerance(n)
    return Verdict(f"{err.max():.4f} (median {err.median():.4f})", bool(err.max() < tol),
                   f"max |measured - 0.5 ln chi| over {len(th)} probes at N = {n}; "
                   f"tolerance {tol}")


# -- training -----------------------------------------------------------------
#: What makes a training configuration, apart from its seed and precision.
CONFIG_KEYS = ["task", "model", "init", "gain", "clip", "seq_len"]


def report_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The reported training runs of a study (every task): the seeds run at
    the selected learning rate, not the sweep runs."""
    return runs[(runs["kind"] == "train") & (runs["stage"] == "report")]


#: Which precision's runs stand for a configuration trained only at fixed
#: rates in several (:func:`primary`).
PRECISION_ORDER: tuple[str, ...] = ("float32", "float64")


def primary(tr: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Reported runs, one set per configuration (``keys``, default
    :data:`CONFIG_KEYS`): where a configuration was also trained outside its
    learning-rate sweep (e.g. the float64 twins of a precision check), the
    sweep-selected runs stand for it; where it was trained only at fixed
    rates in several precisions (``keys`` without ``dtype``), the runs of
    one precision do, float32 before float64. The grid allows at most one
    sweep-selected and one fixed-rate run per configuration, precision and
    seed (:func:`gradpath.grid.train_runs`), so each seed counts once."""
    if tr.empty:
        return tr
    groups = [tr[k] for k in keys or CONFIG_KEYS]
    swept = tr["selection"].fillna("") != ""
    has_sweep = swept.groupby(groups).transform("any")
    tr = tr[swept | ~has_sweep]
    groups = [tr[k] for k in keys or CONFIG_KEYS]
    rank = tr["dtype"].map({d: i for i, d in enumerate(PRECISION_ORDER)}).fillna(
        len(PRECISION_ORDER))
    return tr[rank == rank.groupby(groups).transform("min")]


def reported(runs: pd.DataFrame, task: str = "adding", **where) -> pd.DataFrame:
    """The reported training runs of one configuration (``where``: column =
    value), the sweep-selected ones where there are (:func:`primary`)."""
    tr = report_runs(runs)
    tr = tr[tr["task"] == task]
    for col, val in where.items():
        tr = tr[np.isclose(tr[col], val)] if isinstance(val, float) else tr[tr[col] == val]
    return primary(tr)


def successes(tr: pd.DataFrame) -> pd.Series:
    """Per run: finished with a final held-out metric below its task's success
    fraction (:data:`gradpath.tasks.SUCCESS_FRACTIONS`) x baseline, as training
    records it."""
    fraction = tr["task"].map(SUCCESS_FRACTIONS).astype(float)
    return (tr["status"] == "finished") & (tr["final_metric"] < fraction * tr["baseline"])


def _learning(model: str, init: str, seq_len: int, learns: bool) -> Callable:
    def judge(tables: dict) -> Verdict:
        tr = reported(tables["runs"], model=model, init=init, seq_len=seq_len, clip="norm")
        if tr.empty:
            return _na()
        ok = successes(tr)
        n, k = len(tr), int(ok.sum())
        ratios = ", ".join(f"{v:.3f}" if math.isfinite(v) else "diverged"
                           for v in (tr["final_metric"] / tr["baseline"]))
        lrs = ", ".join(f"{v:g}" for v in sorted(set(tr["lr"])))
        holds = k >= math.ceil(LEARNS_SHARE * n) if learns else k == 0
        return Verdict(f"{k} of {n} seeds (final MSE / baseline: {ratios})", holds,
                       f"lr {lrs}, {int(tr['steps'].iloc[0])} updates")
    return judge


def _exploding(tables: dict) -> Verdict:
    runs = tables["runs"]
    tr = primary(report_runs(runs))
    tr = tr[(tr["model"] == "rnn-relu") & (tr["init"] == "gaussian") & (tr["gain"] > RELU_EDGE)]
    none, norm = tr[tr["clip"] == "none"], tr[tr["clip"] == "norm"]
    if none.empty or norm.empty:
        return _na()
    d_none = int((none["status"] == "diverged").sum())
    d_norm = int((norm["status"] == "diverged").sum())
    over = norm["final_metric"] / norm["baseline"]
    # "trains": every clipped run finishes, its held-out metric lower at the end
    # than before the first update
    falls = bool((norm["final_metric"] < norm["initial_metric"]).all())
    holds = d_none > len(none) / 2 and d_norm == 0 and falls
    gains = ", ".join(f"{g:g}" for g in sorted(set(tr["gain"])))
    return Verdict(f"unclipped: {d_none} of {len(none)} diverged; norm-clipped: {d_norm} of "
                   f"{len(norm)} diverged, held-out metric "
                   f"{'fell' if falls else 'did not fall'} in every seed (final / baseline "
                   f"{over.min():.3g}-{over.max():.3g})", holds,
                   f"ReLU + gaussian at gain {gains}, T = "
                   f"{', '.join(str(t) for t in sorted(set(tr['seq_len'])))}")


#: float32 training is accurate enough when, run for run, its training loss
#: stays within this relative distance of float64's over the first updates,
#: and the two precisions' success rates differ by at most one seed. (Later
#: the runs part: training is chaotic, and a rounding difference of 1e-7 at
#: the first update grows about tenfold every ten updates here, as any
#: perturbation would in either precision.)
PRECISION_STEPS = 20
PRECISION_RTOL = 1e-3


def _precision(tables: dict) -> Verdict:
    runs, training = tables["runs"], tables.get("training")
    tr = report_runs(runs)
    keys = CONFIG_KEYS + ["optimizer", "lr", "hidden", "batch", "steps", "seed"]
    pairs = tr.pivot_table(index=keys, columns="dtype", values="run_id", aggfunc="first")
    if training is None or not {"float32", "float64"} <= set(pairs.columns):
        return _na("no configuration was trained in both precisions")
    pairs = pairs.dropna(subset=["float32", "float64"])
    if pairs.empty:
        return _na("no configuration was trained in both precisions")
    early = training[training["step"] <= PRECISION_STEPS].set_index(["run_id", "step"])["loss"]
    worst = 0.0
    for r32, r64 in zip(pairs["float32"], pairs["float64"], strict=True):
        a, b = early.loc[r32], early.loc[r64]
        n = min(len(a), len(b))
        worst = max(worst, float(np.max(np.abs(a.to_numpy()[:n] - b.to_numpy()[:n])
                                        / np.abs(b.to_numpy()[:n]))))
    by = tr.set_index("run_id")
    ok32 = successes(by.loc[pairs["float32"]]).sum()
    ok64 = successes(by.loc[pairs["float64"]]).sum()
    holds = worst <= PRECISION_RTOL and abs(int(ok32) - int(ok64)) <= 1
    return Verdict(f"{len(pairs)} run pairs: training loss within {worst:.1e} (relative) over "
                   f"the first {PRECISION_STEPS} updates; success in {int(ok32)} (float32) and "
                   f"{int(ok64)} (float64) seeds", holds,
                   "later the runs part: training is chaotic and amplifies any rounding "
                   "difference, in either precision")


FINDINGS: tuple[Claim, ...] = (
    Claim("tanh-gaussian-vanishes", "tanh + gaussian init (gain 1) vanishes",
          "lecture; Bengio et al. 1994",
          "probe decay rate of ln||dL/dh_t|| per step, and the decades lost over the lags",
          _vanishes),
    Claim("relu-explodes", "ReLU + gaussian above gain sqrt(2) explodes",
          "mean-field theory (chi = gain^2 / 2 > 1)", "probe decay rate at each gain > sqrt(2)",
          _explodes),
    Claim("carriers", "the IRNN and the LSTM carry gradients further than tanh + gaussian",
          "lecture; Le et al. 2015; Hochreiter & Schmidhuber 1997",
          "probe decay rate per step at gain 1: IRNN hidden path, LSTM (orthogonal) cell "
          "path, tanh + gaussian", _carriers),
    Claim("mean-field", "mean-field theory predicts the decay rates",
          "Poole et al. 2016; Chen, Pennington & Schoenholz 2018",
          "max |measured - 0.5 ln chi| over the gaussian / orthogonal RNN probes", _theory),
    *(Claim(f"{name}-learns-{T}",
            f"{label} learns the adding problem at T = {T}", source,
            f"seeds with a held-out MSE below {SUCCESS_FRACTION:.0%} of the baseline "
            f"(holds from {LEARNS_SHARE:.0%} of them)", _learning(model, init, T, True))
      for T in (100, 200)
      for name, label, model, init, source in (
          ("irnn", "the IRNN (ReLU + identity)", "rnn-relu", "identity", "Le et al. 2015"),
          ("lstm", "the LSTM", "lstm", "orthogonal", "Hochreiter & Schmidhuber 1997"),
          ("gru", "the GRU", "gru", "orthogonal", "Cho et al. 2014; Chung et al. 2014"))),
    *(Claim(f"tanh-fails-{T}", f"tanh + gaussian does not learn the adding problem at T = {T}",
            "lecture; Le et al. 2015",
            f"seeds with a held-out MSE below {SUCCESS_FRACTION:.0%} of the baseline "
            "(holds with none)", _learning("rnn-tanh", "gaussian", T, False))
      for T in (100, 200)),
    Claim("clipping", "in the exploding regime, unclipped training diverges in most seeds "
          "and norm clipping trains", "Pascanu et al. 2013",
          "diverged reported runs by clip mode; every clipped run must finish with a "
          "held-out metric below its value before training",
          _exploding),
    Claim("float32", "float32 training is as accurate as float64 training", "gradpath",
          f"the same runs in both precisions: training loss over the first {PRECISION_STEPS} "
          f"updates within {PRECISION_RTOL:.1%}, success rates within one seed", _precision),
)


# -- reproductions ------------------------------------------------------------
#: Lengths of the Le et al. (2015) adding-problem comparison.
LE_LENGTHS: tuple[int, ...] = (150, 200, 300, 400)
#: A model "beats the baseline" when the median of its seeds' final held-out
#: MSE is below this share of it: below 1/2 of Var(X1 + X2), a model must use
#: the first marked value too (predicting only the second leaves Var(X1) =
#: 1/12, half the baseline).
BEATS_SHARE = 0.5
#: "Stalls at the baseline": the median final metric within 10 % of it or above.
STALLS_SHARE = 0.9


def _budget(model: str, init: str, task: str = "adding", **where) -> Callable[[dict], str]:
    def budget(tables: dict) -> str:
        tr = reported(tables["runs"], task=task, model=model, init=init, **where)
        if tr.empty:
            return ""
        return f"{int(tr['steps'].iloc[0]):,} updates x {int(tr['batch'].iloc[0])} sequences"
    return budget


def _median_over(tr: pd.DataFrame) -> float:
    ratio = (tr["final_metric"] / tr["baseline"]).where(tr["status"] == "finished", np.inf)
    return float(np.median(ratio))


def _le(seq_len: int) -> Callable[[dict], Verdict]:
    def judge(tables: dict) -> Verdict:
        runs = tables["runs"]
        parts, ok = [], []
        for label, model, init, beats in (("IRNN", "rnn-relu", "identity", True),
                                          ("LSTM", "lstm", "orthogonal", True),
                                          ("tanh RNN", "rnn-tanh", "gaussian", False)):
            tr = reported(runs, model=model, init=init, seq_len=seq_len)
            if tr.empty:
                return _na()
            m = _median_over(tr)
            div = int((tr["status"] != "finished").sum())
            parts.append(f"{label} {m:.3g}" if math.isfinite(m) else f"{label} diverged")
            if div:
                parts[-1] += f" ({div} of {len(tr)} seeds diverged)"
            ok.append(m < BEATS_SHARE if beats else m >= BEATS_SHARE)
        base = float(reported(runs, seq_len=seq_len)["baseline"].iloc[0])
        return Verdict("median final MSE / baseline: " + ", ".join(parts), all(ok),
                       f"baseline {base:.4f} (1/6 = 0.1667)")
    return judge


def _copy(seq_len: int) -> Callable[[dict], Verdict]:
    def judge(tables: dict) -> Verdict:
        runs = tables["runs"]
        tr = reported(runs, task="copy", seq_len=seq_len)
        if tr.empty:
            return _na()
        base = float(tr["baseline"].iloc[0])
        formula = 10 * math.log(8) / (seq_len + 20)
        parts, stall = [], []
        for model, g in tr.groupby("model"):
            m = _median_over(g)
            parts.append(f"{model} {m:.3g}")
            if model in ("rnn-tanh", "lstm"):
                stall.append(m >= STALLS_SHARE)
        below = sorted(m for m, g in tr.groupby("model") if _median_over(g) < STALLS_SHARE)
        return Verdict(f"baseline {base:.4f} (formula {formula:.4f}); median final / baseline: "
                       + ", ".join(parts),
                       bool(abs(base - formula) < 1e-12 and all(stall) and stall),
                       "below the baseline: " + (", ".join(below) or "none"))
    return judge


def _hs97(seq_len: int) -> Callable[[dict], Verdict]:
    def judge(tables: dict) -> Verdict:
        tr = reported(tables["runs"], model="lstm", seq_len=seq_len)
        if tr.empty:
            return _na()
        ok = successes(tr)
        return Verdict(f"{int(ok.sum())} of {len(tr)} seeds below {SUCCESS_FRACTION:.0%} of the "
                       f"baseline (median final / baseline {_median_over(tr):.3g})",
                       int(ok.sum()) >= math.ceil(LEARNS_SHARE * len(tr)))
    return judge


def _pascanu_bound(tables: dict) -> Verdict:
    """For tanh with orthogonal W (sigma_max = gain < 1): every lag k obeys
    ln ||delta_{T-k}|| <= k ln(sigma_max) (||delta_T|| = 1)."""
    runs, curves = tables["runs"], tables.get("curves")
    pr = runs[(runs["kind"] == "probe") & (runs["model"] == "rnn-tanh")
              & (runs["init"] == "orthogonal") & (runs["gain"] < 1.0)]
    if pr.empty or curves is None:
        return _na()
    worst, checked = -math.inf, 0
    for _, r in pr.iterrows():
        c = curves[(curves["run_id"] == r["run_id"]) & (curves["lag"] > 0)]
        ln = c["log10_grad_norm"].to_numpy() * math.log(10.0)
        excess = ln / c["lag"].to_numpy() - math.log(r["gain"])
        excess = excess[np.isfinite(excess)]
        if excess.size:
            worst = max(worst, float(excess.max()))
            checked += excess.size
    gains = ", ".join(f"{g:g}" for g in sorted(set(pr["gain"])))
    return Verdict(f"max over lags of ln||delta_k||/k - ln(sigma_max): {worst:+.4f}",
                   worst <= 1e-9, f"{checked} lags of tanh + orthogonal probes at gain {gains}")


def cliff_experiment():
    """The cliff as the verdict and its figure use it: the loss surface
    ``(W, B, loss, |grad|)`` and plain SGD from next to the wall, unclipped and
    norm-clipped at 1."""
    from . import cliff

    free = cliff.sgd(*CLIFF_START, CLIFF_LR, CLIFF_STEPS)
    clipped = cliff.sgd(*CLIFF_START, CLIFF_LR, CLIFF_STEPS, clip=1.0)
    return cliff.surface(), free, clipped


def _cliff(tables: dict) -> Verdict:
    (_, _, _, g), free, clipped = cliff_experiment()
    ratio = float(g.max() / np.median(g))
    holds = ratio > 1e3 and free.step_length.max() > 10 * clipped.step_length.max() \
        and clipped.loss[-1] < free.loss[-1]
    return Verdict(f"wall / median gradient norm {ratio:.3g}; from (w, b) = {CLIFF_START}: "
                   f"largest step {free.step_length.max():.3g} unclipped, "
                   f"{clipped.step_length.max():.3g} clipped; final loss "
                   f"{free.loss[-1]:.3g} unclipped, {clipped.loss[-1]:.3g} clipped", holds,
                   f"x_t = w sigmoid(x_(t-1)) + b, T = 50, SGD lr {CLIFF_LR}, "
                   f"{CLIFF_STEPS} steps, clip at 1")


#: The cliff experiment: start next to the wall, plain SGD.
CLIFF_START = (5.0, -2.5)
CLIFF_LR = 0.1
CLIFF_STEPS = 100


def mean_field_rows(tables: dict) -> pd.DataFrame:
    """One verdict row per gaussian / orthogonal RNN probe: measured decay rate
    against 0.5 ln chi (Poole et al. 2016; Chen et al. 2018)."""
    runs = tables["runs"]
    th = _theory_probes(runs)
    if th.empty:
        return pd.DataFrame()
    th = th[(th["cell"] == "rnn") & th["init"].isin(["gaussian", "orthogonal"])]
    rows = []
    for _, r in th.sort_values(["model", "init", "gain"]).iterrows():
        tol = theory_tolerance(int(r["hidden"]))
        err = abs(r["decay_rate"] - r["theory_slope"])
        rows.append({"claim": f"{r['model']}, {r['init']}, gain {r['gain']:g}: decay rate = "
                              "0.5 ln chi", "source": "Poole et al. 2016; Chen et al. 2018",
                     "paper": f"{r['theory_slope']:+.4f} (theory)",
                     "measure": f"measured decay rate at N = {int(r['hidden'])}",
                     "value": f"{r['decay_rate']:+.4f}",
                     "verdict": "holds" if err < tol else "does not hold",
                     "detail": f"|error| {err:.4f}, tolerance {tol}", "budget": ""})
    return pd.DataFrame(rows)


REPRODUCTIONS: tuple[Claim, ...] = (
    *(Claim(f"le-{T}", f"adding at T = {T}: the IRNN and the LSTM beat the baseline, the tanh "
            "RNN does not", "Le, Jaitly & Hinton 2015, section 4.1",
            measure=f"median final MSE / baseline over seeds (beats: < {BEATS_SHARE})",
            judge=_le(T),
            paper="IRNN and LSTM far below the baseline, tanh RNN at it (baseline printed as "
                  "0.1767; its exact value is 1/6)",
            budget=_budget("rnn-relu", "identity", seq_len=T),
            paper_budget="SGD, minibatch 16 (an update count is not recorded here)")
      for T in LE_LENGTHS),
    *(Claim(f"copy-{T}", f"copy task at T = {T}: the memoryless baseline is 10 ln 8 / (T + 20), "
            "and the tanh RNN and the LSTM stall at it",
            "Arjovsky, Shah & Bengio 2016, section 4.1",
            measure=f"median final cross-entropy / baseline (stalls: >= {STALLS_SHARE})",
            judge=_copy(T),
            paper=f"baseline {10 * math.log(8) / (T + 20):.4f}; tanh RNN and LSTM stay at it",
            budget=_budget("lstm", "orthogonal", task="copy", seq_len=T),
            paper_budget="RMSProp, minibatch 20 (an update count is not recorded here)")
      for T in (100, 200)),
    Claim("hs97-500", "the LSTM learns the adding problem at T = 500",
          "Hochreiter & Schmidhuber 1997, Table 7",
          measure=f"seeds below {SUCCESS_FRACTION:.0%} of the baseline (adding problem, Le et "
                  "al.'s format)",
          judge=_hs97(500), paper="solved at T = 500 after 209,000 training sequences",
          budget=_budget("lstm", "orthogonal", seq_len=500),
          paper_budget="209,000 training sequences"),
    Claim("pascanu-bound", "the vanishing bound: ln||delta_(T-k)|| / k <= ln(sigma_max(W) "
          "max phi') at every lag k (tanh, sigma_max < 1)",
          "Pascanu, Mikolov & Bengio 2013, section 2.1",
          measure="exact check on probe decay curves", judge=_pascanu_bound,
          paper="a proof: it holds at every lag"),
    Claim("pascanu-cliff", "the one-unit network has a wall in its loss surface; clipping the "
          "gradient's norm crosses it", "Pascanu, Mikolov & Bengio 2013, section 3, Fig. 6-7",
          measure="gradient norm on a 241 x 241 grid; SGD from next to the wall, with and "
                  "without clipping", judge=_cliff,
          paper="a wall orders of magnitude steeper than the surface; clipped SGD stays on "
                "course"),
)


def reproductions(tables: dict) -> pd.DataFrame:
    """The Reproductions table: every published claim, then the mean-field rows."""
    return pd.concat([judge(REPRODUCTIONS, tables), mean_field_rows(tables)],
                     ignore_index=True)


def judge(claims, tables) -> pd.DataFrame:
    """One row per claim: claim, source, measure, value, verdict, detail; for
    reproductions also the paper's number and the budget.

    ``tables``: the study's tables ({"runs": ..., "curves": ...}), or just
    its runs table.
    """
    if isinstance(tables, pd.DataFrame):
        tables = {"runs": tables}
    rows = []
    for c in claims:
        v = c.judge(tables)
        row = {"claim": c.text, "source": c.source}
        if c.paper:
            row["paper"] = c.paper
        row.update({"measure": c.measure, "value": v.value, "verdict": v.label,
                    "detail": v.detail})
        if c.budget is not None:
            ours = c.budget(tables)
            row["budget"] = f"{ours or 'n/a'}; paper: {c.paper_budget}" if c.paper_budget \
                else ours
        rows.append(row)
    return pd.DataFrame(rows)
