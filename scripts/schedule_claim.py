"""Snakemake script: the unsketched schedule comparison (geometric decay against the power decay to zero) over the
claim's N grid, for every (a, b) of the schedules block."""

import json
import sys
import time

from sketchlaw.tables import write_table
from sketchlaw.training import claim_rows

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
table = claim_rows(snakemake.params.job)  # noqa: F821
write_table(table, snakemake.output.parquet, json.load(open(snakemake.input.provenance)), csv=True)  # noqa: F821
print(table.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
