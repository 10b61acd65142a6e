"""Snakemake script: the exponent table (CSV + Markdown), fit diagnostics, and the compute-optimal frontier."""

import json
import sys
from pathlib import Path

import pandas as pd

from sketchlaw import analysis
from sketchlaw.atomic import atomic_write
from sketchlaw.tables import read_table, write_table, write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
provenance = json.load(open(snakemake.input.provenance))  # noqa: F821
n_boot = int(snakemake.params.bootstrap)  # noqa: F821
tables = {Path(p).stem: read_table(p) for p in snakemake.input.tables}  # noqa: F821
rows, diagnostics, forms = [], [], []
for name in ("main", "source", "logpower"):
    if name in tables:
        rows += analysis.scaling_exponents(tables[name], n_boot, diagnostics)
for name in ("main", "source"):
    if name in tables:
        table = tables[name]
        joint, comparison = analysis.joint_exponents(table[table["b"] <= table["a"]], n_boot, diagnostics)
        rows += joint
        forms += comparison
frontier = pd.DataFrame(columns=["a", "compute", "M_star", "N_star", "reducible_star", "M_grid_best", "interior"])
if "compute" in tables:
    frontier = analysis.compute_frontier(tables["compute"])
    rows += analysis.compute_exponents(frontier, n_boot)
exponents = pd.DataFrame(rows, columns=analysis.COLUMNS)
atomic_write(snakemake.output.exponents, lambda tmp: exponents.to_csv(tmp, index=False, float_format="%.6g"))  # noqa: F821
md = analysis.markdown(exponents)
if forms:
    md += "\nFunctional forms compared by held-out-corner extrapolation (main; source with b <= a):\n\n"
    md += analysis.markdown(pd.DataFrame(forms), columns=None)
write_text(md, snakemake.output.markdown)  # noqa: F821
diag = pd.DataFrame(diagnostics, columns=["experiment", "a", "b", "variable", "kind", "fixed", "x", "value"])
write_table(diag, snakemake.output.diagnostics, provenance)  # noqa: F821
atomic_write(snakemake.output.frontier, lambda tmp: frontier.to_csv(tmp, index=False, float_format="%.8g"))  # noqa: F821
print(exponents.to_string())
