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
    for col in FINITE_COLUMNS:
        if col in df and not np.all(np.isfinite(df[col].to_numpy(dtype=float))):
            bad = df.loc[~np.isfinite(df[col].to_numpy(dtype=float))].head(3).to_dict("records")
            raise ArithmeticError(f"{what}: non-finite values in column '{col}', e.g. {bad}")


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
