# Aggregate -> tables -> figures -> report.


rule aggregate:
    """Concatenate the runs of this study into tidy tables."""
    input:
        batch_outputs,
    output:
        runs=f"{RESULTS}/tables/runs.parquet",
        curves=f"{RESULTS}/tables/curves.parquet",
        training=f"{RESULTS}/tables/training.parquet",
    log:
        f"{RESULTS}/logs/aggregate.log",
    params:
        run_ids=RUN_IDS,
        runs_dir=RUNS_DIR,
    script:
        "../analysis/aggregate.py"


rule summarise:
    """The summary table, the probe table, the study's findings checked from the
    tables, and the provenance of the runs."""
    input:
        runs=rules.aggregate.output.runs,
        training=rules.aggregate.output.training,
    output:
        summary=f"{RESULTS}/tables/summary.csv",
        findings=f"{RESULTS}/tables/findings.csv",
        summary_html=report(
            f"{RESULTS}/tables/summary.html",
            caption="../reports/captions/summary.rst",
            category="7. Summary",
            labels={"table": "success, divergence and decay by configuration"},
        ),
        findings_html=report(
            f"{RESULTS}/tables/findings.html",
            caption="../reports/captions/findings.rst",
            category="0. Findings",
            labels={"table": "what the study shows"},
        ),
        probes=f"{RESULTS}/tables/probes.csv",
        probes_html=report(
            f"{RESULTS}/tables/probes.html",
            caption="../reports/captions/probes.rst",
            category="7. Summary",
            labels={"table": "probes: decay rate, theory (or n/a) and Lyapunov by network"},
        ),
        provenance=f"{RESULTS}/tables/provenance.csv",
        provenance_html=report(
            f"{RESULTS}/tables/provenance.html",
            caption="../reports/captions/provenance.rst",
            category="7. Summary",
            labels={"table": "provenance: code and machines"},
        ),
    log:
        f"{RESULTS}/logs/summarise.log",
    script:
        "../analysis/summarise.py"


rule figures:
    """Seaborn figures a-f, each with its caption."""
    input:
        runs=rules.aggregate.output.runs,
        curves=rules.aggregate.output.curves,
        training=rules.aggregate.output.training,
    output:
        # One label per result: with two results in a category, Snakemake's report
        # reads a second label holding two values as a toggle and shows nothing.
        a=report(
            f"{RESULTS}/figures/a_decay_curves.png",
            caption="../reports/captions/a_decay_curves.rst",
            category="1. Decay at initialisation",
            labels={"figure": "decay curves: log10 norm vs lag, model x init"},
        ),
        b=report(
            f"{RESULTS}/figures/b_decay_rate_theory.png",
            caption="../reports/captions/b_decay_rate_theory.rst",
            category="2. Theory",
            labels={"figure": "decay rate vs gain: rate vs gain; measured vs theory"},
        ),
        c=report(
            f"{RESULTS}/figures/c_training_curves.png",
            caption="../reports/captions/c_training_curves.rst",
            category="3. Training",
            labels={"figure": "training curves: held-out metric vs step, length x model"},
        ),
        d=report(
            f"{RESULTS}/figures/d_success_by_length.png",
            caption="../reports/captions/d_success_by_length.rst",
            category="4. Sequence length",
            labels={"figure": "success vs length: success, final/baseline vs T"},
        ),
        e=report(
            f"{RESULTS}/figures/e_clipping_divergence.png",
            caption="../reports/captions/e_clipping_divergence.rst",
            category="5. Clipping",
            labels={"figure": "clipping and divergence: gradient norm vs step"},
        ),
        f=report(
            f"{RESULTS}/figures/f_decay_through_training.png",
            caption="../reports/captions/f_decay_through_training.rst",
            category="6. Training changes the decay",
            labels={"figure": "decay through training: log10 norm vs lag, by step"},
        ),
        g=report(
            f"{RESULTS}/figures/g_lyapunov_spectrum.png",
            caption="../reports/captions/g_lyapunov_spectrum.rst",
            category="1. Decay at initialisation",
            labels={"figure": "Lyapunov spectrum: exponent vs index, by gain"},
        ),
    log:
        f"{RESULTS}/logs/figures.log",
    script:
        "../analysis/plots.py"


rule reproductions:
    """Published claims as verdicts, and the figure of Pascanu et al.'s cliff."""
    input:
        runs=rules.aggregate.output.runs,
        curves=rules.aggregate.output.curves,
        training=rules.aggregate.output.training,
    output:
        table=f"{RESULTS}/tables/reproductions.csv",
        html=report(
            f"{RESULTS}/tables/reproductions.html",
            caption="../reports/captions/reproductions.rst",
            category="8. Reproductions",
            labels={"table": "published claims, measured here"},
        ),
        cliff=report(
            f"{RESULTS}/figures/h_pascanu_cliff.png",
            caption="../reports/captions/h_pascanu_cliff.rst",
            category="8. Reproductions",
            labels={"figure": "the cliff: loss surface and SGD"},
        ),
    log:
        f"{RESULTS}/logs/reproductions.log",
    script:
        "../analysis/reproductions.py"
