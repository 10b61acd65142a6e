"""Snakemake script: one follow-up job (schedules, batch or reuse; sketchlaw.workflow.training.followup_table) on each
of its problems, one row per grid point."""

import sys

from sketchlaw.engine.exact import use_threads
from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import followup_table

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
use_threads(snakemake.threads)  # noqa: F821
write_table(followup_table(snakemake.params.jobs), snakemake.output[0])  # noqa: F821
