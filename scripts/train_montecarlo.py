"""Snakemake script: Monte Carlo SGD at one grid point (fresh data and w* per trial), one row of statistics."""

import sys
import time

from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import montecarlo_row, sketched_problem

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
job = snakemake.params.job  # noqa: F821
print(f"Monte Carlo: {job['trials']} trials at (N, gamma) = {job['points'][0]}, seed {job['mc_seed']}", flush=True)
row = montecarlo_row(sketched_problem(job["problem"]), job)
write_table(row, snakemake.output[0])  # noqa: F821
print(row.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
