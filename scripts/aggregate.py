"""Snakemake script: merge one experiment's runs into its tidy table (one row per grid point × sketch seed)."""

import sys

import numpy as np
import pandas as pd

from sketchlaw.workflow.covariates import with_exact
from sketchlaw.workflow.provenance import of_job
from sketchlaw.workflow.tables import read_table, write_table

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
keys = ["experiment", "spectrum", "a", "b", "prior", "M", "d", "N", "gamma", "sketch_seed"]
if snakemake.input.followups:  # noqa: F821  (schedules, batch, reuse: their runs are tidy rows already)
    table = pd.concat([read_table(p) for p in snakemake.input.followups], ignore_index=True)  # noqa: F821
    keys += ["schedule", "B", "step_rule", "L", "coordinates"]
    if snakemake.input.exact:  # noqa: F821  (covariates: the Gaussian exact curve on the same sketches beside each law)
        exact = pd.concat([read_table(p) for p in snakemake.input.exact], ignore_index=True)  # noqa: F821
        table = with_exact(table, exact)
else:
    exact = pd.concat([read_table(p) for p in snakemake.input.exact], ignore_index=True)  # noqa: F821
    keys += ["sketch"] if "sketch" in exact else []  # the sketches experiment: one curve per sketch family
    table = exact
    if snakemake.input.montecarlo:  # noqa: F821
        mc = pd.concat([read_table(p) for p in snakemake.input.montecarlo], ignore_index=True)  # noqa: F821
        if "diverged" in mc:  # its exact twin carries the flag (or, in the stepsize experiment, was omitted)
            mc = mc.loc[~mc["diverged"].astype(bool)].drop(columns="diverged")
        mc_cols = ["mc_trials", "mc_mean", "mc_std", "mc_sem", "mc_seed"]
        table = exact.merge(mc[keys + mc_cols], on=keys, how="left", validate="one_to_one")
        missing = mc.merge(exact[keys], on=keys, how="left", indicator=True)["_merge"].eq("left_only")
        if missing.any():
            raise SystemExit("Monte Carlo points without an exact counterpart: "
                             f"{mc.loc[missing, keys].to_dict('records')}")
    else:
        for col in ["mc_mean", "mc_std", "mc_sem"]:
            table[col] = np.nan
        table["mc_seed"] = -1
    table["mc_trials"] = table.get("mc_trials", pd.Series(0, index=table.index)).fillna(0).astype(int)
    table["mc_seed"] = table["mc_seed"].fillna(-1).astype(np.int64)
    if snakemake.input.baselines:  # noqa: F821
        sgd = table.assign(method="sgd", ridge_lambda=np.nan)
        base = pd.concat([read_table(p) for p in snakemake.input.baselines], ignore_index=True)  # noqa: F821
        table = pd.concat([sgd, base], ignore_index=True)
# Points at or above their sketch's stability bound are rows too (diverged: empty risks; docs/METHODS.md §5).
table["diverged"] = table["diverged"].astype("boolean").fillna(False).astype(bool) if "diverged" in table else False
sort = [k for k in keys + ["method"] if k in table]
table = table.sort_values(sort, kind="stable", na_position="first").reset_index(drop=True)
write_table(table, snakemake.output.parquet, of_job(snakemake.config, snakemake.scriptdir), csv=True)  # noqa: F821
print(f"{len(table)} rows ({int(table['diverged'].sum())} diverged), columns: {list(table.columns)}")
