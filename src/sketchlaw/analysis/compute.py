"""The compute-optimal frontier at C = M·N and its exponent rows (docs/METHODS.md §13, §14)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline

from sketchlaw import theory
from sketchlaw.analysis import estimators as E
from sketchlaw.analysis.rows import Diagnostics, row
from sketchlaw.errors import ParameterError

FRONTIER_METHODS = ("parabola", "quadratic", "spline")  # the first is the primary; the others are its systematic
FRONTIER_COLUMNS = ["a", "compute", "M_star", "N_star", "reducible_star", "M_grid_best", "interior"]
VARIABLES = ("M_star", "N_star", "reducible_star")


def _frontier_minimum(lm: np.ndarray, lr: np.ndarray, method: str) -> tuple[float, float, bool]:
    """(log M*, log(R* − σ²), interior) of one budget's curve log(R − σ²) against log M (sorted by M).

    parabola   through the grid minimum and its two neighbours (the primary frontier);
    quadratic  least squares over the grid minimum and two neighbours on each side (where they exist);
    spline     the minimum of a cubic spline through the whole curve, between the minimum's neighbours.
    The three differ by the curve's asymmetry around its minimum, which is what a log-spaced M grid cannot resolve:
    their spread is the frontier's discretization error.
    """
    i = int(np.argmin(lr))
    interior = 0 < i < len(lm) - 1
    if not interior:
        return lm[i], lr[i], False
    if method == "spline":
        fine = np.linspace(lm[i - 1], lm[i + 1], 801)
        values = CubicSpline(lm, lr)(fine)
        k = int(np.argmin(values))
        return float(fine[k]), float(values[k]), True
    lo, hi = (max(i - 2, 0), min(i + 3, len(lm))) if method == "quadratic" else (i - 1, i + 2)
    c2, c1, c0 = np.polyfit(lm[lo:hi], lr[lo:hi], 2)
    if c2 <= 0:
        return lm[i], lr[i], True
    best = -c1 / (2 * c2)
    return float(best), float(np.polyval([c2, c1, c0], best)), True


def compute_frontier(table: pd.DataFrame, method: str = "parabola") -> pd.DataFrame:
    """Best M per compute budget C = M·N (mean over seeds), between the log-spaced grid points by ``method``
    (``_frontier_minimum``)."""
    if method not in FRONTIER_METHODS:
        raise ParameterError("method", method, f"one of {', '.join(FRONTIER_METHODS)}")
    out = []
    for a, df in table.groupby("a", sort=True):
        sigma2 = float(df["sigma2"].iloc[0])
        for C, dc in df.groupby("compute", sort=True):
            m = dc.groupby("M", as_index=False)["risk"].mean().sort_values("M")
            lm, lr = np.log(m["M"].to_numpy(float)), np.log(m["risk"].to_numpy() - sigma2)
            best_l, best_lr, interior = _frontier_minimum(lm, lr, method)
            out.append({"a": a, "compute": float(C), "M_star": float(np.exp(best_l)),
                        "N_star": float(C / np.exp(best_l)), "reducible_star": float(np.exp(best_lr)),
                        "M_grid_best": float(m["M"].iloc[int(np.argmin(lr))]), "interior": bool(interior)})
    return pd.DataFrame(out, columns=FRONTIER_COLUMNS)


def frontier_curve(frontier: pd.DataFrame, a: float, variable: str) -> pd.DataFrame:
    """(C, X, y) of one frontier variable in the theorem's coordinates, budgets with an interior optimum."""
    df = frontier[np.isclose(frontier["a"], a) & frontier["interior"]].sort_values("compute")
    X, factor = theory.frontier_coordinates(variable, a, df["compute"].to_numpy(float))
    return pd.DataFrame({"C": df["compute"].to_numpy(float), "x": X, "y": df[variable].to_numpy(float) / factor})


def _widen(extrap: dict, others: list[dict]) -> dict:
    """The headline extrapolation with its interval widened to hold every alternative's interval."""
    if not math.isfinite(extrap.get("extrapolated", math.nan)):
        return extrap
    out = dict(extrap)
    for o in others:
        if math.isfinite(o.get("extrapolated", math.nan)):
            out["extrapolated_low"] = min(out["extrapolated_low"], o["extrapolated_low"])
            out["extrapolated_high"] = max(out["extrapolated_high"], o["extrapolated_high"])
    return out


def compute_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    """Frontier slopes in the theorem's coordinates (theory.frontier_coordinates), budgets with an interior optimum.

    The frontier is located by each of FRONTIER_METHODS; the primary is the parabola's. The other methods' slopes
    join the systematic range, and their extrapolations the extrapolation interval: the frontier's discretization
    error is part of both. The primary frontier itself is ``tables["compute_frontier"]`` after the call."""
    rows = []
    frontiers = {method: compute_frontier(table, method) for method in FRONTIER_METHODS}
    primary = frontiers[FRONTIER_METHODS[0]]
    tables["compute_frontier"] = primary
    for a in sorted(primary["a"].unique()):
        expected = theory.exponents(theory_kind, a)
        key = {"experiment": table["experiment"].iloc[0], "spectrum": "power", "a": a, "b": a}
        for variable in VARIABLES:
            curves = {m: frontier_curve(f, a, variable) for m, f in frontiers.items()}
            curve = curves[FRONTIER_METHODS[0]]
            est = E.curve_slope(curve, "x", "y")
            extrap = E.extrapolate(curve["x"], curve["y"]) if len(curve) >= 4 else {}
            if est.ok:
                in_window = list(curve["x"][est.in_window(curve["x"])])
                alts = [E.curve_slope(c, "x", "y", window=[x for x in in_window if x in set(c["x"])])
                        for m, c in curves.items() if m != FRONTIER_METHODS[0]]
                alts = [x.fitted for x in alts if x.ok]
                est.sys_low, est.sys_high = min([est.sys_low, *alts]), max([est.sys_high, *alts])
                extrap = _widen(extrap, [E.extrapolate(c["x"], c["y"]) for m, c in curves.items()
                                         if m != FRONTIER_METHODS[0] and len(c) >= 4])
                sel = curve[est.in_window(curve["x"])]
                est.x_lo, est.x_hi = float(sel["C"].min()), float(sel["C"].max())  # the window in budgets C
            rows.append(row(key, variable, "primary", "frontier", est, expected[variable], math.nan, extrap,
                            abscissa="compute", scale="frontier"))
            if len(curve) >= 2:
                diagnostics.local_slopes(key, variable, "local_slope_primary", curve["x"], curve["y"])
    return rows
