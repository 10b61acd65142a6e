"""Snakemake script: one experiment's fit — its exponent rows, the comparison of joint forms, the compute frontier,
the fit diagnostics (the selections its figures show) and its diverged points — from its table and its limit and
auxiliary tables."""

import sys
from pathlib import Path

from sketchlaw.analysis.table import exponent_table
from sketchlaw.workflow.provenance import of_job
from sketchlaw.workflow.tables import diverged_table, read_table, split_diverged, write_csv, write_table

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
tables = {Path(p).stem: read_table(p) for p in inp.tables}
# The one place diverged points (γ at or above their sketch's bound) leave the analysis: listed, with the reason.
diverged = diverged_table(tables)
write_csv(diverged, out.diverged, float_format="%.8g")
tables = {name: split_diverged(df)[0] for name, df in tables.items()}
if len(diverged):
    print(f"{len(diverged)} diverged points left out of the fits:\n{diverged.to_string()}")
exponents, forms, frontier, diagnostics = exponent_table(tables)
write_csv(exponents, out.exponents, float_format="%.6g")
write_csv(forms, out.forms, float_format="%.6g")
write_csv(frontier, out.frontier, float_format="%.8g")
write_table(diagnostics, out.diagnostics, of_job(snakemake.config, snakemake.scriptdir))
print(exponents.to_string())
