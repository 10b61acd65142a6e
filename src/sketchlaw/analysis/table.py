"""From the workflow's tidy tables to the typed exponent table (columns: docs/METHODS.md §15; rules: §13, §14): one
dispatch of the analyses the experiment registry gives each experiment. Reads tables; never runs an engine."""

from __future__ import annotations

import pandas as pd

from sketchlaw.analysis import compute, covariates, dataset, followups, forms, rows, scaling
from sketchlaw.workflow.registry import EXPERIMENTS

# analysis name (``Experiment.analyses``) → rows(table, tables, diagnostics, theory key); ``montecarlo`` also reads
# the rows already made (its extrapolation is the exact primary row's)
ANALYSES = {"scaling": scaling.scaling_rows, "compute": compute.compute_rows, "schedules": followups.schedule_rows,
            "batch": followups.batch_rows, "reuse": followups.reuse_rows, "dataset": dataset.dataset_rows,
            "covariates": covariates.covariate_rows}


def exponent_table(tables: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All analyses of the experiments in ``tables`` (keyed by experiment name, with their auxiliary tables
    ``<experiment>_<aux>`` beside them): (exponents, joint forms, compute frontier, diagnostics)."""
    found, joint, diagnostics = [], [], rows.Diagnostics()
    tables = dict(tables)
    for name, experiment in EXPERIMENTS.items():
        table = tables.get(name)
        if table is None or not len(table):
            continue
        made = []
        for analysis in experiment.analyses:
            if analysis in ANALYSES:
                made += ANALYSES[analysis](table, tables, diagnostics, experiment.theory)
            elif analysis == "montecarlo":
                made += scaling.montecarlo_rows(table, tables, diagnostics, experiment.theory, made)
            elif analysis == "joint":
                joint += forms.joint_forms(table)
            else:
                raise KeyError(f"experiment {name!r} lists the unknown analysis {analysis!r}")
        found += made
    frontier = tables.get("compute_frontier", pd.DataFrame(columns=compute.FRONTIER_COLUMNS))
    return (rows.frame(found), pd.DataFrame(joint, columns=forms.FORM_COLUMNS), frontier, diagnostics.frame())
