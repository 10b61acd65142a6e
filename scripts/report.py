"""Snakemake script: results/index.html, built by sketchlaw.present.report from the tables, figures and provenance."""

import json
import sys

import pandas as pd

from sketchlaw.present import report
from sketchlaw.workflow.tables import write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
inputs, params = snakemake.input, snakemake.params  # noqa: F821
figures = [report.read_figure(png, nb) for png, nb in zip(inputs.figures, inputs.notebooks)]
page = report.build_page(
    out=snakemake.output[0],  # noqa: F821
    exponents=pd.read_csv(inputs.exponents),
    forms=report.read_forms(inputs.forms),
    figures=figures,
    tables_dir=params.tables_dir,
    provenance=json.load(open(inputs.provenance)),
    provenance_path=inputs.provenance,
    logs_dir=params.logs_dir,
)
write_text(page, snakemake.output[0])  # noqa: F821
print(f"wrote {snakemake.output[0]} ({len(figures)} figures)")  # noqa: F821
