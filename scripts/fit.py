"""Snakemake script: the exponent table (CSV + Markdown), the comparison of joint forms, fit diagnostics and the
compute-optimal frontier, from every enabled experiment's table and its M = ∞ limit."""

import json
import sys
from pathlib import Path

from sketchlaw.analysis.table import exponent_table, markdown
from sketchlaw.workflow.tables import read_table, write_csv, write_table, write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
tables = {Path(p).stem: read_table(p) for p in [*inp.tables, *inp.limits]}
exponents, forms, frontier, diagnostics = exponent_table(tables)
write_csv(exponents, out.exponents, float_format="%.6g")
write_csv(forms, out.forms, float_format="%.6g")
write_csv(frontier, out.frontier, float_format="%.8g")
md = markdown(exponents)
if len(forms):
    md += "\nJoint functional forms compared by held-out-corner extrapolation:\n\n" + markdown(forms, None)
write_text(md, out.markdown)
write_table(diagnostics, out.diagnostics, json.load(open(inp.provenance)))
print(exponents.to_string())
