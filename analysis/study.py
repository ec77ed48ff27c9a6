"""Snakemake job: the study's config and provenance, for the report.

``config.yaml``: the config as the workflow used it: every ``--configfile``
(and ``--config``) merged, the schema's defaults filled in; running the
workflow with it alone gives the same study. ``tables/study.csv`` (field,
value): the study's name, the config files given, and every field of the
provenance the rule passes (the code id, the versions, the machine, and
whatever fields the runs' provenance gains); ``study.html``
shows that table and the config.
"""

import html
import logging

import pandas as pd
import yaml
from summarise import to_html


def study_table(config: dict, configfiles: list[str], provenance: dict) -> pd.DataFrame:
    """The study's name and config files, then every provenance field, one row each."""
    rows = [("study", config.get("name", "")), ("config files", "; ".join(configfiles))]
    rows += [(k, str(v)) for k, v in provenance.items()]
    return pd.DataFrame(rows, columns=["field", "value"])


def main(config: dict, configfiles: list[str], provenance: dict, out: dict, log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    with open(out["config"], "w") as f:
        f.write("# The config as the workflow used it: the config files given, merged, with\n"
                "# the schema's defaults filled in (snakemake --configfile this-file runs\n"
                "# the same study).\n" + text)
    table = study_table(config, configfiles, provenance)
    table.to_csv(out["table"], index=False)
    page = to_html(table, "The study: its config files, and the code and machine that "
                          "analysed it")
    # the config itself below the table (the same text as config.yaml)
    page = page.replace("</body>", "<h3>The config as used (config.yaml)</h3><pre>"
                        f"{html.escape(text)}</pre></body>")
    with open(out["html"], "w") as f:
        f.write(page)
    logging.info("study %s: %d provenance fields", config.get("name"), len(provenance))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(dict(sm.params.config), list(sm.params.configfiles), dict(sm.params.provenance),
         {k: sm.output[k] for k in ("config", "table", "html")}, sm.log[0])
