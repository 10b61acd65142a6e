"""Snakemake script: the experiments' fits gathered into the tables every reader opens — exponents.csv (and .md),
exponent_forms.csv, compute_frontier.csv, diverged.csv and fit_diagnostics.parquet."""

import sys

import pandas as pd

from sketchlaw.analysis.rows import markdown
from sketchlaw.workflow.provenance import of_job
from sketchlaw.workflow.tables import read_table, write_csv, write_table, write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821


def gathered(suffix, read=pd.read_csv):
    parts = [read(p) for p in inp.fits if p.endswith(suffix)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


exponents, forms = gathered("_exponents.csv"), gathered("_forms.csv")
write_csv(exponents, out.exponents, float_format="%.6g")
write_csv(forms, out.forms, float_format="%.6g")
write_csv(gathered("_frontier.csv"), out.frontier, float_format="%.8g")
write_csv(gathered("_diverged.csv"), out.diverged, float_format="%.8g")
md = markdown(exponents)
if len(forms):
    md += "\nJoint functional forms compared by held-out-corner extrapolation:\n\n" + markdown(forms, None)
write_text(md, out.markdown)
write_table(gathered("_diagnostics.parquet", read_table), out.diagnostics, of_job(snakemake.config, snakemake.scriptdir))
print(exponents.to_string())
