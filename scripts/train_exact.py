"""Snakemake script: exact expected risk at every (N, γ) of each problem of one sketch family (one row per point),
each problem drawn here from its seed."""

import sys
import time

import pandas as pd

from sketchlaw.engine.exact import use_threads
from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import exact_rows, sketched_problem

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
use_threads(snakemake.threads)  # noqa: F821
start = time.perf_counter()
parts = []
for job in snakemake.params.jobs:  # noqa: F821
    t0 = time.perf_counter()
    problem = sketched_problem(job["problem"])
    t1 = time.perf_counter()
    parts.append(exact_rows(problem, job))
    print(f"M = {problem.M}: problem in {t1 - t0:.2f} s, {len(parts[-1])} of {len(job['points'])} points in "
          f"{time.perf_counter() - t1:.2f} s", flush=True)
write_table(pd.concat(parts, ignore_index=True), snakemake.output[0])  # noqa: F821
print(f"done in {time.perf_counter() - start:.2f} s", flush=True)
