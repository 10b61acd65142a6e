"""Snakemake script: one experiment's auxiliary table, computed without a drawn sketch — the M = ∞ limit (``limit``),
the unsketched schedule comparison (``claim``) or the schedules' finite-size theory (``finite``)."""

import sys
import time

from sketchlaw.engine.exact import use_threads
from sketchlaw.workflow.provenance import of_job
from sketchlaw.workflow.tables import write_table
from sketchlaw.workflow.training import AUXILIARY

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
use_threads(snakemake.threads)  # noqa: F821
start = time.perf_counter()
table = AUXILIARY[snakemake.params.table](snakemake.params.job)  # noqa: F821
write_table(table, snakemake.output.parquet, of_job(snakemake.config, snakemake.scriptdir), csv=True)  # noqa: F821
print(table.to_string(), f"\ndone in {time.perf_counter() - start:.2f} s", flush=True)
