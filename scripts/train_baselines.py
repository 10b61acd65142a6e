"""Snakemake script: least squares (exact formula and Monte Carlo) and oracle-tuned ridge at each N of every problem of
one sketch family (each problem drawn here from its seed, its Monte Carlo from its own coordinates' seed)."""

import sys

from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import baseline_rows, elapsed_log, problem_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
log = elapsed_log()
table = problem_rows(snakemake.params.jobs, baseline_rows, log=log)  # noqa: F821
write_table(table, snakemake.output[0])  # noqa: F821
print(table.to_string(), flush=True)
log("done")
