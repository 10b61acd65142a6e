"""Snakemake script: least squares (exact formula and Monte Carlo) and oracle-tuned ridge at each N of every problem of
one sketch family (each problem drawn here from its seed, its Monte Carlo from its own coordinates' seed)."""

import sys
import time

from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import baseline_rows, problem_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
table = problem_rows(snakemake.params.jobs, baseline_rows, log=lambda text: print(  # noqa: F821
    f"{time.perf_counter() - start:.2f} s: {text}", flush=True))
write_table(table, snakemake.output[0])  # noqa: F821
print(table.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
