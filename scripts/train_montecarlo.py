"""Snakemake script: Monte Carlo SGD at every grid point of each problem of one sketch family (fresh data and w* per
trial, each point from its own seed), one row of statistics per point."""

import sys

from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import elapsed_log, montecarlo_rows, problem_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
log = elapsed_log()
rows = problem_rows(snakemake.params.jobs, montecarlo_rows, log=log)  # noqa: F821
write_table(rows, snakemake.output[0])  # noqa: F821
print(rows.to_string(), flush=True)
log("done")
