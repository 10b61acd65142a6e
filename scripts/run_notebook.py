"""Snakemake script: execute one figure's notebook with papermill (it reads only tables) and render it as HTML, both in
this process; the provenance its figure embeds is taken as the job runs and written beside the executed notebook."""

import json
import os
import sys
from pathlib import Path

import papermill
from nbconvert import HTMLExporter

from sketchlaw.workflow.provenance import of_job
from sketchlaw.workflow.tables import write_text

log = open(snakemake.log[0], "w")  # noqa: F821
# the process's own descriptors too: the kernel papermill starts inherits them (its warnings belong in the log)
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
sys.stderr = sys.stdout = log
inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
write_text(json.dumps(of_job(snakemake.config, snakemake.scriptdir), indent=2, sort_keys=True) + "\n",  # noqa: F821
           out.provenance)
papermill.execute_notebook(inp.notebook, out.ipynb, kernel_name="python3", progress_bar=False,
                           parameters={"tables_dir": params.tables, "figures_dir": params.figures,
                                       "provenance_path": out.provenance})
html, _ = HTMLExporter().from_filename(out.ipynb)
write_text(html, out.html)
print(f"executed {inp.notebook} into {out.ipynb} and {Path(out.html).name}")
