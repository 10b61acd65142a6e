"""Snakemake script: one experiment's fit — its exponent rows, the comparison of joint forms, the compute frontier and
the fit diagnostics (the selections its figures show) — from its table and its limit and auxiliary tables."""

import json
import sys
from pathlib import Path

from sketchlaw.analysis.table import exponent_table
from sketchlaw.workflow.tables import read_table, write_csv, write_table

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
exponents, forms, frontier, diagnostics = exponent_table({Path(p).stem: read_table(p) for p in inp.tables})
write_csv(exponents, out.exponents, float_format="%.6g")
write_csv(forms, out.forms, float_format="%.6g")
write_csv(frontier, out.frontier, float_format="%.8g")
write_table(diagnostics, out.diagnostics, json.load(open(inp.provenance)))
print(exponents.to_string())
