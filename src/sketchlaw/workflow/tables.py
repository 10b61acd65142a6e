"""Reading and writing the workflow's tables: atomic writes, provenance in the file, only finite results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sketchlaw.atomic import atomic_write

# Result columns that must never hold NaN or ±inf (optional columns such as mc_mean may be NaN = "not run").
FINITE_COLUMNS = ("risk", "approx", "bias", "variance", "excess", "reducible")


def check_finite(df: pd.DataFrame, what: str) -> None:
    """Raise if a result column holds NaN or ±inf, except on rows marked ``diverged`` (empty by design)."""
    ok = ~df["diverged"].to_numpy(dtype=bool) if "diverged" in df else np.ones(len(df), bool)
    for col in FINITE_COLUMNS:
        if col in df and not np.all(np.isfinite(df[col].to_numpy(dtype=float)[ok])):
            bad = df.loc[ok & ~np.isfinite(df[col].to_numpy(dtype=float))].head(3).to_dict("records")
            raise ArithmeticError(f"{what}: non-finite values in column '{col}', e.g. {bad}")


# The columns that say where a diverged point was, in the table of diverged points (those present in a table).
DIVERGED_COLUMNS = ("experiment", "spectrum", "a", "b", "prior", "M", "d", "sketch_seed", "N", "compute", "schedule",
                    "B", "step_rule", "gamma_B", "L", "gamma", "gamma_max")


def split_diverged(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable rows, rows left out) of an experiment's table: the one place where the points whose step size was at
    or above their own sketch's stability bound (``diverged``, ``training.stable_points``) leave the analysis. Tables
    without a ``diverged`` column (the M = ∞ limit, auxiliary tables) are all usable.

    One knock-on exclusion: the batch experiment's critical batch size is measured against B = 1 on each (a, b, N,
    step rule) curve, so a curve whose B = 1 point diverged on every sketch has no reference; its other points are
    left out too (``left_out`` says why; theirs are not diverged)."""
    if "diverged" not in df:
        return df, df.iloc[:0].assign(left_out=pd.Series(dtype=object))
    mask = df["diverged"].fillna(False).to_numpy(dtype=bool)
    reason = np.where(mask, "diverged", "")
    if {"B", "step_rule"} <= set(df.columns) and mask.any():
        curve = ["experiment", "spectrum", "a", "b", "N", "step_rule"]
        has_ref = (df.assign(_ref=(df["B"] == 1) & ~mask).groupby(curve, dropna=False)["_ref"].transform("any")
                   .to_numpy(dtype=bool))
        orphan = ~mask & ~has_ref
        reason = np.where(orphan, "its curve's B = 1 reference diverged on every sketch", reason)
        mask = mask | orphan
    left = df.loc[mask].assign(left_out=reason[mask]).reset_index(drop=True)
    return df.loc[~mask].reset_index(drop=True), left


def diverged_table(tables: dict) -> pd.DataFrame:
    """The points of every table ({name: table}) that ``split_diverged`` leaves out, in one table: where each was
    (``DIVERGED_COLUMNS``), whether it diverged itself, and the reason."""
    parts = []
    for name, df in tables.items():
        _, bad = split_diverged(df)
        if len(bad):
            cols = [c for c in DIVERGED_COLUMNS if c in bad]
            parts.append(bad[cols + ["diverged", "left_out"]].assign(table=name))
    cols = ["table", *DIVERGED_COLUMNS, "diverged", "reason"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    step = out["gamma_B"].fillna(out["gamma"]) if "gamma_B" in out else out["gamma"]
    out["reason"] = [f"step size {g:.6g} >= {m:.6g}, the stability bound of this sketch (seed {int(s)}, M = {int(M)})"
                     if why == "diverged" else f"not diverged: {why}"
                     for g, m, s, M, why in zip(step, out["gamma_max"], out["sketch_seed"], out["M"], out["left_out"])]
    out["diverged"] = out["diverged"].astype(bool)
    return out[[c for c in cols if c in out]]


def write_table(df: pd.DataFrame, path, provenance: dict | None = None, csv: bool = False) -> None:
    """Write a parquet table atomically (provenance in its schema metadata), and a CSV twin if asked."""
    path = Path(path)
    check_finite(df, str(path))
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    if provenance is not None:
        meta[b"sketchlaw.provenance"] = json.dumps(provenance, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    if csv:
        write_csv(df, path.with_suffix(".csv"))


def write_text(text: str, path) -> None:
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def read_table(path) -> pd.DataFrame:
    return pd.read_parquet(path)


def write_csv(df: pd.DataFrame, path, float_format: str = "%.10g") -> None:
    """A CSV written atomically (no half-written table is ever left behind)."""
    atomic_write(Path(path), lambda tmp: df.to_csv(tmp, index=False, float_format=float_format))
