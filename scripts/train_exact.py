"""Snakemake script: exact expected risk at every (N, γ) of each problem of one sketch family (one row per point)."""

import sys
import time

import pandas as pd

from sketchlaw.engine.problem import Problem
from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import exact_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
parts = []
for job, path in zip(snakemake.params.jobs, snakemake.input.problems):  # noqa: F821
    t0 = time.perf_counter()
    parts.append(exact_rows(Problem.load(path), job))
    print(f"{path}: {len(parts[-1])} of {len(job['points'])} points in {time.perf_counter() - t0:.2f} s", flush=True)
write_table(pd.concat(parts, ignore_index=True), snakemake.output[0])  # noqa: F821
print(f"done in {time.perf_counter() - start:.2f} s", flush=True)
