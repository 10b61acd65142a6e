"""Snakemake script: exact expected risk at every (N, γ) of each problem of one sketch family (one row per point),
each problem drawn here from its seed (``training.family_rows``)."""

import sys

from sketchlaw.engine.exact import use_threads
from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import elapsed_log, family_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
use_threads(snakemake.threads)  # noqa: F821
log = elapsed_log()
table = family_rows(snakemake.params.jobs, log=log)  # noqa: F821
write_table(table, snakemake.output[0])  # noqa: F821
log("done")
