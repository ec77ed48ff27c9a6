"""The study's figures, one row each: what draws it, from which tables, and
where the report shows it.

Read by the workflow (rules/analysis.smk: one rule, hence one job, per row,
so changing one figure redraws that figure only) and by ``plots.py`` (which
draws the row it is called for). Plain data: no plotting library is
imported here. Each figure's caption is ``reports/captions/<name>.rst``.
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


#: Every figure by name (its file is ``figures/<name>.png``), in the report's order.
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
}
