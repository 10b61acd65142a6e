"""The typed rows the analysis writes (columns: docs/METHODS.md §15): the exponent table's rows and the selections a
figure shows (local slopes, regime and pooled points, critical batch sizes, finite-size curves), so that a notebook
plots rows the analysis wrote instead of rebuilding them. Their columns: ``sketchlaw.analysis.columns``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sketchlaw.analysis import estimators as E
from sketchlaw.analysis.columns import COLUMNS, CURVE, DIAGNOSTIC_COLUMNS, IDENTITY, SCALES


def row(key: dict, variable: str, estimator: str, quantity: str, est: E.Estimate, theory: float,
        theory_finite: float, extrap: dict, *, abscissa: str | None = None, scale: str = "log", curve: dict | None = None,
        fixed_variable: str = "", fixed_value: float = math.nan) -> dict:
    """One exponent row: the estimate's columns, its theory, finite-size theory, extrapolation and verdict."""
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r} is not one of {SCALES}")
    out = {**key, "variable": variable, "abscissa": abscissa or variable, "scale": scale, **CURVE, **(curve or {}),
           "estimator": estimator, "quantity": quantity, "fixed_variable": fixed_variable, "fixed_value": fixed_value,
           **est.columns(), "theory": theory, "theory_finite": theory_finite}
    out.update({k: extrap.get(k, math.nan) for k in ("extrapolated", "extrapolated_low", "extrapolated_high")})
    out["verdict"] = E.verdict(est, theory, theory_finite, extrap)
    if out["verdict"] == "not fitted" and not out["reason"]:
        out["reason"] = "no estimate"
    return out


class Diagnostics(list):
    """The rows of fit_diagnostics: (kind, fixed, x, value) points of one slice's variable and curve."""

    def add(self, key: dict, variable: str, kind: str, x, values, fixed=math.nan, curve: dict | None = None) -> None:
        """Points (x, value) of ``kind``; ``fixed`` is the held-fixed value, one for all or one per point."""
        x = np.asarray(x, dtype=float)
        fixed = np.broadcast_to(np.asarray(fixed, dtype=float), x.shape)
        self.extend({**key, "variable": variable, **CURVE, **(curve or {}), "kind": kind, "fixed": float(f),
                     "x": float(u), "value": float(v)} for u, v, f in zip(x, values, fixed))

    def local_slopes(self, key: dict, variable: str, kind: str, x, y, log_of_log: bool = False,
                     fixed: float = math.nan, curve: dict | None = None) -> None:
        """The curve's local slopes (``estimators.local_slopes``) as rows of ``kind``."""
        self.add(key, variable, kind, *E.local_slopes(x, y, log_of_log), fixed=fixed, curve=curve)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self, columns=DIAGNOSTIC_COLUMNS)


def frame(rows: list[dict]) -> pd.DataFrame:
    """The exponent table; refuses two rows with the same identity (a selection the analysis made twice)."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    if df.duplicated(IDENTITY).any():
        raise AssertionError(f"duplicate exponent rows: {df[df.duplicated(IDENTITY, keep=False)][IDENTITY]}")
    return df


MARKDOWN_COLUMNS = ["experiment", "a", "b", "variable", "schedule", "step_rule", "sketch", "coordinates", "estimator",
                    "fitted", "ci_low", "ci_high", "sys_low", "sys_high", "theory", "theory_finite", "extrapolated", "verdict"]


def markdown(df: pd.DataFrame, columns=MARKDOWN_COLUMNS) -> str:
    """A table as Markdown (numbers to 4 significant digits for reading; the CSV keeps full precision)."""
    cols = list(df.columns) if columns is None else columns
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    lines = []
    for r in df[cols].itertuples(index=False):
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
