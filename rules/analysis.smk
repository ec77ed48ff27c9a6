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


# One rule (one job) per figure of analysis/figure_table.py: changing one figure
# redraws that figure only.
sys.path.insert(0, str(Path(workflow.basedir) / "analysis"))
from figure_table import FIGURES  # noqa: E402

for _name, _fig in FIGURES.items():

    rule:
        name:
            f"figure_{_name}"
        localrule: True
        input:
            **{t: getattr(rules.aggregate.output, t) for t in _fig.tables},
        output:
            png=report(
                f"{RESULTS}/figures/{_name}.png",
                caption=f"../reports/captions/{_name}.rst",
                category=_fig.category,
                labels={"figure": _fig.label},
            ),
        params:
            figure=_name,
        log:
            f"{RESULTS}/logs/figure_{_name}.log",
        script:
            "../analysis/plots.py"


#: Every figure of the table (rule all, the cluster's local rules).
FIGURE_OUTPUTS = [f"{RESULTS}/figures/{name}.png" for name in FIGURES]


rule reproductions:
    """Published claims as verdicts, and the figure of Pascanu et al.'s cliff."""
    input:
        runs=rules.aggregate.output.runs,
        curves=rules.aggregate.output.curves,
        training=rules.aggregate.output.training,
    output:
        table=f"{RESULTS}/tables/reproductions.csv",
        protocols=f"{RESULTS}/tables/protocols.csv",
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
