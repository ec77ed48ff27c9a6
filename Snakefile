# gradpath: the study from config to report.
#
#   snakemake --cores 2                                   # the default study
#   snakemake --cores 2 --configfile configs/smoke.yaml   # another one
#   snakemake --report reports/report.html [--configfile ...]
#
# Runs are batched into jobs (rules/runs.smk); aggregation, figures and the
# summary follow (rules/analysis.smk). All logic lives in rules/common.smk and
# in the gradpath library.

from snakemake.utils import min_version

min_version("9.0")


# The default study, read only when no --configfile is given: Snakemake would
# otherwise merge the given file into it key by key, and a key the given file
# leaves out would come from the default study instead of the schema's default
# (docs/workflow.md; tests/test_workflow.py).
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/configs/default.yaml"


include: "rules/common.smk"
include: "rules/runs.smk"
include: "rules/analysis.smk"


report: "reports/workflow.rst"


# On a cluster, only the warm-up and the batches of runs are submitted as jobs;
# the rate selection and the analysis are short and run where Snakemake runs
# (the figures' rules say so themselves: rules/analysis.smk).
localrules:
    all,
    tables,
    aggregate,
    summarise,
    study,
    reproductions,


# Every file the report is built from, and every batch's marker: Snakemake
# does not remake a missing file that only feeds newer outputs, so a table or
# figure deleted after the study finished (or never written by a failed job),
# or the marker of a batch whose run files were damaged, is named here to be
# made again.
rule all:
    input:
        batch_outputs,
        rules.aggregate.output,
        rules.summarise.output,
        rules.study.output,
        FIGURE_OUTPUTS,
        rules.reproductions.output,
        report_selection_outputs,
    default_target: True


# The grid and its run tables only, short of the summary, figures and report
# (`snakemake tables`: the data first, the analysis later). Every batch's
# marker is named, as in `all`, so that a batch whose run files were damaged
# runs again; a target of the tables' files alone would not remake it.
rule tables:
    input:
        batch_outputs,
        rules.aggregate.output,
