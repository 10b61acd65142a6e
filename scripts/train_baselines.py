"""Snakemake script: least squares (exact formula and Monte Carlo) and oracle-tuned ridge at each N of every problem of
one sketch family (each problem drawn here from its seed, its Monte Carlo from its own coordinates' seed)."""

import sys
import time

import pandas as pd

from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import baseline_rows, sketched_problem

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
parts = []
for job in snakemake.params.jobs:  # noqa: F821
    parts.append(baseline_rows(sketched_problem(job["problem"]), job))
    print(f"{time.perf_counter() - start:.2f} s: M = {job['problem']['M']}", flush=True)
table = pd.concat(parts, ignore_index=True)
write_table(table, snakemake.output[0])  # noqa: F821
print(table.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
