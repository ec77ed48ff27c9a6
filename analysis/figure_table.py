"""The study's figures, one row each: what draws it, from which tables, and
where the report shows it; and, per finding, the figures and tables that
decide it.

Read by the workflow (rules/analysis.smk: one rule, hence one job, per row,
so changing one figure redraws that figure only), by ``plots.py`` (which
draws the row it is called for) and by ``summarise.py`` (which names each
finding's evidence and links it from the report). Plain data: no plotting
library is imported here. Each figure's caption is
``reports/captions/<name>.rst``.
"""

from __future__ import annotations

from typing import NamedTuple


class Figure(NamedTuple):
    """One figure of the report."""

    #: the function of plots.py that draws it: ``plot(*tables, path)``
    plot: str
    #: the aggregated tables it reads, in the function's order
    tables: tuple[str, ...]
    #: the report's category
    category: str
    #: the report's label of the figure (one label per result: with two in a
    #: category, Snakemake's report reads a second label holding two values
    #: as a toggle and shows nothing)
    label: str


#: The figures' file format and resolution: PNG at 200 dpi, whose size is
#: bounded by its pixels (the smoke study's twelve: 3.2 MB). SVG measured
#: smaller on the smoke study (e.g. 190 KB against 660 KB for the training
#: curves) but grows with every point drawn: the clipping figure draws every
#: update of every run, thousands per run in the default study. SVG would
#: need those dense artists rasterized; the README's figures are PNG too.
FORMAT = "png"
DPI = 200


def figure_file(name: str) -> str:
    """The file name of figure ``name`` (in ``results/<study>/figures/``)."""
    return f"{name}.{FORMAT}"


#: Every figure by name (its file is :func:`figure_file`), in the report's order.
FIGURES: dict[str, Figure] = {
    "a_decay_curves": Figure(
        "fig_decay_curves", ("runs", "curves"), "1. Decay at initialisation",
        "decay curves: log10 norm vs lag, model x init"),
    "b_decay_rate_theory": Figure(
        "fig_decay_theory", ("runs",), "2. Theory",
        "decay rate vs gain: rate vs gain; measured vs theory"),
    "c_training_curves": Figure(
        "fig_training_curves", ("runs", "training"), "3. Training",
        "training curves: held-out metric vs step, length x model"),
    "d_success_by_length": Figure(
        "fig_success_by_length", ("runs",), "4. Sequence length",
        "success vs length: success, final/baseline vs T"),
    "e_clipping_divergence": Figure(
        "fig_clipping", ("runs", "training"), "5. Clipping",
        "clipping and divergence: gradient norm vs step"),
    "f_decay_through_training": Figure(
        "fig_checkpoints", ("runs", "curves"), "6. Training changes the decay",
        "decay through training: log10 norm vs lag, by step"),
    "g_lyapunov_spectrum": Figure(
        "fig_lyapunov", ("runs",), "1. Decay at initialisation",
        "Lyapunov spectrum: exponent vs index, by gain"),
    "i_clipping_rates": Figure(
        "fig_clipping_rates", ("runs",), "8. Reproductions",
        "clipping and learning rate: success, divergence vs lr"),
    "j_copy_control": Figure(
        "fig_copy", ("runs", "training"), "8. Reproductions",
        "copy task: cross-entropy vs step, with the positive control"),
    "k_three_rates": Figure(
        "fig_three_rates", ("runs",), "2. Theory",
        "three rates: lambda_1, decay slope, 0.5 ln chi"),
    "l_precision": Figure(
        "fig_precision", ("runs", "training"), "3. Training",
        "precision: float32 against float64, loss vs step"),
}

#: Figures drawn outside this table (by the reproductions job), by name.
OTHER_FIGURES: tuple[str, ...] = ("h_pascanu_cliff",)
#: The report's tables by name (``tables/<name>.html`` to view,
#: ``tables/<name>.csv`` to download).
TABLES: tuple[str, ...] = ("findings", "summary", "probes", "selection", "reproductions",
                           "provenance", "study")


class Evidence(NamedTuple):
    """What decides a finding: the figures that show it and the tables that
    hold its numbers (names, as in :data:`FIGURES` and :data:`TABLES`)."""

    figures: tuple[str, ...]
    tables: tuple[str, ...]


_LEARNING = Evidence(("d_success_by_length", "c_training_curves"), ("summary",))

#: Per finding (the key of its claim in ``gradpath.claims.FINDINGS``): its
#: evidence, the first figure the one a finding links to. tests/test_claims.py
#: holds every finding to an entry here.
EVIDENCE: dict[str, Evidence] = {
    "tanh-gaussian-vanishes": Evidence(("a_decay_curves",), ("probes",)),
    "relu-explodes": Evidence(("b_decay_rate_theory", "g_lyapunov_spectrum"), ("probes",)),
    "carriers": Evidence(("a_decay_curves",), ("probes",)),
    "mean-field": Evidence(("b_decay_rate_theory", "k_three_rates"), ("probes",)),
    **{f"{who}-learns-{T}": _LEARNING for who in ("irnn", "lstm", "gru") for T in (100, 200)},
    **{f"tanh-fails-{T}": _LEARNING for T in (100, 200)},
    "clipping": Evidence(("e_clipping_divergence",), ("summary",)),
    "float32": Evidence(("l_precision",), ("summary",)),
}
