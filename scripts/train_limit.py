"""Snakemake script: the M = ∞ limit (bias and variance of the unsketched problem) over one experiment's N grid."""

import json
import sys
import time

from sketchlaw.tables import write_table
from sketchlaw.training import limit_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
table = limit_rows(snakemake.params.job)  # noqa: F821
write_table(table, snakemake.output.parquet, json.load(open(snakemake.input.provenance)), csv=True)  # noqa: F821
print(table.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
