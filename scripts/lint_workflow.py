"""`snakemake --lint`, less the one lint this workflow answers by design.

Snakemake asks every rule for a conda environment or a container. gradpath's
rules run in the project's virtual environment instead (`make setup`; on a
cluster, a venv on the shared filesystem): the Snakefile imports gradpath to
plan the study, so that environment exists wherever Snakemake runs, and the
jobs use the very same one (docs/workflow.md, "Software environment"). Every
other lint fails the check.

    python scripts/lint_workflow.py [snakemake args...]   # default: configs/default.yaml
"""

import re
import subprocess
import sys

ACCEPTED = ("Specify a conda environment or container for each rule.",)


def unaccepted(text: str) -> list[str]:
    """The lints in `snakemake --lint` output other than the accepted ones."""
    found, rule = [], None
    for line in text.splitlines():
        if line.startswith("Lints for "):
            rule = line
        elif m := re.match(r"\s+\* (.+?):?$", line):
            if m.group(1) not in ACCEPTED:
                found.append(f"{rule} {m.group(1)}")
    return found


def main() -> int:
    """Run the lint; 0 when only the accepted lint (or none) was printed."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint", *sys.argv[1:]],
                         capture_output=True, text=True)
    text = out.stdout + out.stderr
    bad = unaccepted(text)
    if bad or (out.returncode != 0 and "Lints for" not in text):
        print(text if not bad else "\n".join(bad), file=sys.stderr)
        return 1
    print("snakemake --lint: clean (rules run in the project's venv, not conda)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
