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
    tables (with the figures and tables that decide each, linked from the report's
    front page), and the provenance of the runs. Every table is in the report
    twice: HTML to read, CSV to download."""
    input:
        runs=rules.aggregate.output.runs,
        training=rules.aggregate.output.training,
    output:
        summary=report_table("summary", "csv"),
        findings=report_table("findings", "csv"),
        findings_rst=f"{RESULTS}/tables/findings.rst",
        summary_html=report_table("summary", "html"),
        findings_html=report_table("findings", "html"),
        probes=report_table("probes", "csv"),
        probes_html=report_table("probes", "html"),
        provenance=report_table("provenance", "csv"),
        provenance_html=report_table("provenance", "html"),
    params:
        report_paths=REPORT_PATHS,
    log:
        f"{RESULTS}/logs/summarise.log",
    script:
        "../analysis/summarise.py"


rule study:
    """The study's config as the workflow used it (every config file merged, the
    schema's defaults filled in) and the provenance of the code and machine that
    analysed it, for the report."""
    output:
        config=report(
            f"{RESULTS}/config.yaml",
            caption="../reports/captions/config.rst",
            category=STUDY_CATEGORY,
            labels={"table": "the config as used (YAML)"},
        ),
        table=report_table("study", "csv"),
        html=report_table("study", "html"),
    params:
        config=config,
        configfiles=[str(f) for f in workflow.configfiles],
        # a parameter, so that a change of code, commit, versions or machine
        # rewrites the page (Snakemake reruns a job whose params changed)
        provenance=study_provenance,
    log:
        f"{RESULTS}/logs/study.log",
    script:
        "../analysis/study.py"


# One rule (one job) per figure of analysis/figure_table.py: changing one figure
# redraws that figure only.
for _name, _fig in FIGURES.items():

    rule:
        name:
            f"figure_{_name}"
        localrule: True
        input:
            **{t: getattr(rules.aggregate.output, t) for t in _fig.tables},
        output:
            figure=report(
                f"{RESULTS}/figures/{figure_file(_name)}",
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
FIGURE_OUTPUTS = [f"{RESULTS}/figures/{figure_file(name)}" for name in FIGURES]


rule reproductions:
    """Published claims as verdicts, and the figure of Pascanu et al.'s cliff."""
    input:
        runs=rules.aggregate.output.runs,
        curves=rules.aggregate.output.curves,
        training=rules.aggregate.output.training,
    output:
        table=report_table("reproductions", "csv"),
        protocols=report(
            f"{RESULTS}/tables/protocols.csv",
            caption="../reports/captions/protocols.rst",
            category="8. Reproductions",
            labels={"table": "protocols: the papers' and gradpath's, field by field (CSV)"},
        ),
        html=report_table("reproductions", "html"),
        cliff=report(
            f"{RESULTS}/figures/{figure_file('h_pascanu_cliff')}",
            caption="../reports/captions/h_pascanu_cliff.rst",
            category="8. Reproductions",
            labels={"figure": "the cliff: loss surface and SGD"},
        ),
    log:
        f"{RESULTS}/logs/reproductions.log",
    script:
        "../analysis/reproductions.py"
