# sketchlaw: replication workflow for "Scaling Laws in Linear Regression: Compute, Parameters, and Data"
# (Lin, Wu, Kakade, Bartlett, Lee; NeurIPS 2024).
#
#   problem → train_exact / train_montecarlo / train_baselines → aggregate → fit → notebook → report
#
# Default target: every table, figure, executed notebook and results/index.html for the experiments in the config.

import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# Shell rules (papermill, jupyter) must come from the same environment as this Snakemake, even when it is called
# by path without activating the venv, and inside cluster jobs.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/analyse.smk"
include: "rules/figures.smk"


localrules:
    all,
    provenance,
    notebook,
    report,


rule all:
    input:
        final_targets(),
    default_target: True
