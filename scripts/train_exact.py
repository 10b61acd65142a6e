"""Snakemake script: exact expected risk at every (N, γ) of each problem of one sketch family (one row per point),
each problem drawn here from its seed (``training.family_rows``)."""

import sys
import time

from sketchlaw.engine.exact import use_threads
from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import family_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
use_threads(snakemake.threads)  # noqa: F821
start = time.perf_counter()
table = family_rows(snakemake.params.jobs, log=lambda text: print(  # noqa: F821
    f"{time.perf_counter() - start:.2f} s: {text}", flush=True))
write_table(table, snakemake.output[0])  # noqa: F821
print(f"done in {time.perf_counter() - start:.2f} s", flush=True)
