# sketchlaw: replication workflow for "Scaling Laws in Linear Regression: Compute, Parameters, and Data"
# (Lin, Wu, Kakade, Bartlett, Lee; NeurIPS 2024).
#
#   problem → train_exact / train_montecarlo / train_baselines → aggregate → fit → notebook → report
#
# Default target: every table, figure, executed notebook and results/index.html for the experiments in the config.

import os

from snakemake.utils import min_version, validate

min_version("9.0")

# numpy backs its large arrays with transparent huge pages (madvise) by default. Where the kernel allocates them
# slowly, first touching that memory dominates a short job: on the 2-core VM this project is measured on, 3.5 s of
# system time per 512 MB against 0.25 s with ordinary pages. Every job inherits this setting (numpy reads it at
# import); an environment that sets the variable keeps its own value. No number depends on it.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


report: "report/workflow.rst"

# config.yaml is the default, used only when no --configfile is given: Snakemake would otherwise deep-merge a
# user's file into it, silently filling the user's missing keys (and experiments) from config.yaml.
if not workflow.overwrite_configfiles:
    workflow.configfile("config.yaml")


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/analyse.smk"
include: "rules/figures.smk"


localrules:
    all,
    provenance,
    exponents,
    notebook,
    report,


rule all:
    input:
        final_targets(),
    default_target: True
