"""Snakemake script: Monte Carlo SGD at every grid point of each problem of one sketch family (fresh data and w* per
trial, each point from its own seed), one row of statistics per point."""

import sys
import time

from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import montecarlo_rows, problem_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
rows = problem_rows(snakemake.params.jobs, montecarlo_rows, log=lambda text: print(  # noqa: F821
    f"{time.perf_counter() - start:.2f} s: {text}", flush=True))
write_table(rows, snakemake.output[0])  # noqa: F821
print(rows.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
