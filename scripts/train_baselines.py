"""Snakemake script: least squares (exact formula and Monte Carlo) and oracle-tuned ridge at each N of one problem."""

import sys
import time

from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import baseline_rows, sketched_problem

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
job = snakemake.params.job  # noqa: F821
table = baseline_rows(sketched_problem(job["problem"]), job)
write_table(table, snakemake.output[0])  # noqa: F821
print(table.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
