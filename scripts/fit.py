"""Snakemake script: the exponent table (CSV + Markdown), the comparison of joint forms, fit diagnostics and the
compute-optimal frontier, from every enabled experiment's table and its M = ∞ limit."""

import json
import sys
from pathlib import Path

from sketchlaw import analysis, registry
from sketchlaw.tables import diverged_table, read_table, split_diverged, write_csv, write_table, write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
tables = {Path(p).stem: read_table(p) for p in inp.tables}
# The one place diverged points (γ at or above their sketch's bound) leave the analysis: listed, with the reason.
diverged = diverged_table(tables)
write_csv(diverged, out.diverged, float_format="%.8g")
tables = {name: split_diverged(df)[0] for name, df in tables.items()}
if len(diverged):
    print(f"{len(diverged)} diverged points left out of the fits (tables/diverged.csv):\n{diverged.to_string()}")
limits = {Path(p).stem.removesuffix("_limit"): read_table(p) for p in inp.limits}
exponents, forms, frontier, diagnostics = analysis.exponent_table(tables, limits, registry.analyses())
write_csv(exponents, out.exponents, float_format="%.6g")
write_csv(forms, out.forms, float_format="%.6g")
write_csv(frontier, out.frontier, float_format="%.8g")
md = analysis.markdown(exponents)
if len(forms):
    md += "\nJoint functional forms compared by held-out-corner extrapolation:\n\n" + analysis.markdown(forms, None)
write_text(md, out.markdown)
write_table(diagnostics, out.diagnostics, json.load(open(inp.provenance)))
print(exponents.to_string())
