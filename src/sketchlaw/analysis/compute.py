"""The compute-optimal frontier at C = M·N and its exponent rows (docs/METHODS.md §13, §14).

Measured frontier: each sketch family (``training.compute_family_rows``: nested sketches, so R − σ² is smooth in M)
is evaluated on the M grid and, around each budget's grid minimum, at sizes between the minimum's grid neighbours.
The optimum is the vertex of a least-squares parabola of log(R − σ²) in log M through those points
(``locate_optimum``), with a bound on its error. Finite-size theory: the deterministic equivalent's continuous
frontier (the ``compute_theory`` table, ``equivalents.frontier_de``), on the same budgets and far beyond them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sketchlaw import theory
from sketchlaw.analysis import estimators as E
from sketchlaw.analysis.rows import Diagnostics, row

FRONTIER_COLUMNS = ["model", "a", "b", "sketch_seed", "compute", "M_star", "N_star", "reducible_star",
                    "log_M_error", "log_R_error", "M_star_cubic", "M_grid_best", "points", "interior"]
VARIABLES = ("M_star", "N_star", "reducible_star")
MEASURED, EQUIVALENT = "measured", "deterministic_equivalent"
SLICE = ["spectrum", "a", "b"]
# At b > a (σ² > 0) the theorem's balance has M* well below the effective dimension k* = (γ N_eff)^(1/a), and M*/k*
# closes only as C^−(b−a)/(a(b+1)): an equivalent frontier still at M* ≳ k*/4 at its last budget is crossing over
# between two balances, and the trend of its slopes does not lead to the limit (docs/METHODS.md §14).
REGIME_RATIO = 0.25


def equivalent_reaches_regime(theory_table: pd.DataFrame | None, a: float, b: float, sigma2: float) -> bool:
    """Whether the equivalent's frontier, at its largest interior budget, is in the regime of the theorem's balance
    (always, for b ≤ a or without noise, where M* and k* keep one ratio)."""
    if not (sigma2 > 0 and b > a + 1e-12):
        return True
    if theory_table is None or "k_star" not in theory_table:
        return False
    df = theory_table[np.isclose(theory_table["a"], a) & np.isclose(theory_table["b"], b)
                      & theory_table["interior"].astype(bool)]
    if not len(df):
        return False
    last = df.loc[df["compute"].idxmax()]
    return bool(last["M_star"] <= REGIME_RATIO * last["k_star"])


def locate_optimum(M, reducible, grid) -> dict:
    """The minimum over M of one budget's curve R − σ² (arrays M, reducible; ``grid`` marks the M grid's points).

    The grid minimum M_i is interior when it has grid neighbours on both sides; the optimum is then the vertex of the
    least-squares parabola of log(R − σ²) against log M through every point in [M_(i−1), M_(i+1)] (the grid points
    and the sizes refined between them). Its error on log M*, ``log_M_error``: two standard errors of the vertex
    (delta method, from the parabola's residual scatter: the sketch family's own jitter), or, with only the three
    grid points, half a grid spacing; on log(R* − σ²), ``log_R_error``, two standard errors of the parabola's value
    there (0 with only three points, which it passes through). The curve's asymmetry about its minimum biases the vertex; ``M_star_cubic``,
    the minimum of a least-squares cubic through the same points, measures it (the bias is nearly the same at every
    budget, so it hardly moves a slope: the slope from the cubic minima joins the systematic range).
    Returns M_star, M_star_cubic, reducible_star, log_M_error, log_R_error, M_grid_best, points, interior.
    """
    M, y, grid = np.asarray(M, float), np.asarray(reducible, float), np.asarray(grid, bool)
    order = np.argsort(M)
    M, y, grid = M[order], y[order], grid[order]
    gM, gy = M[grid], y[grid]
    i = int(np.argmin(gy))
    out = {"M_star": gM[i], "M_star_cubic": gM[i], "reducible_star": gy[i], "log_M_error": math.nan,
           "log_R_error": math.nan,
           "M_grid_best": gM[i], "points": 1, "interior": False}
    if not 0 < i < len(gM) - 1:
        return out
    sel = (M >= gM[i - 1]) & (M <= gM[i + 1])
    u, v = np.log(M[sel]), np.log(y[sel])
    vertex, value, coef, cov = parabola_minimum(u, v)
    if not np.log(gM[i - 1]) <= vertex <= np.log(gM[i + 1]):
        return out
    if cov is None:
        error, value_error = 0.5 * math.log(gM[i + 1] / gM[i - 1]) / 2, 0.0
    else:
        grad = np.array([coef[1] / (2 * coef[0] ** 2), -1 / (2 * coef[0]), 0.0])
        error = 2 * math.sqrt(max(float(grad @ cov @ grad), 0.0))
        at = np.array([vertex**2, vertex, 1.0])  # the value's own error (its slope in u is 0 at the vertex)
        value_error = 2 * math.sqrt(max(float(at @ cov @ at), 0.0))
    out.update(M_star=math.exp(vertex), M_star_cubic=math.exp(_cubic_vertex(u, v, vertex)), log_R_error=value_error,
               reducible_star=math.exp(value), log_M_error=error,
               points=int(sel.sum()), interior=True)
    return out


def parabola_minimum(u, v):
    """The least-squares parabola v ≈ c₂u² + c₁u + c₀: (vertex −c₁/2c₂, its value, coefficients, covariance of the
    coefficients from the residual scatter, or None without a residual degree of freedom); the vertex is NaN when
    the parabola opens downwards."""
    u, v = np.asarray(u, float), np.asarray(v, float)
    A = np.vander(u, 3)
    coef, *_ = np.linalg.lstsq(A, v, rcond=None)
    if not coef[0] > 0:
        return math.nan, math.nan, coef, None
    vertex = -coef[1] / (2 * coef[0])
    dof = len(u) - 3
    resid = v - A @ coef
    cov = float(resid @ resid) / dof * np.linalg.inv(A.T @ A) if dof > 0 else None
    return float(vertex), float(np.polyval(coef, vertex)), coef, cov


def _cubic_vertex(u, v, near: float) -> float:
    """The local minimum of the least-squares cubic through (u, v) nearest to ``near`` (``near`` itself when there
    are too few points or no real minimum)."""
    if len(u) < 5:
        return near
    c = np.polyfit(u, v, 3)
    roots = np.roots(np.polyder(c))
    minima = [r.real for r in roots if abs(r.imag) < 1e-12 and np.polyval(np.polyder(c, 2), r.real) > 0]
    return min(minima, key=lambda r: abs(r - near)) if minima else near


def measured_frontier(table: pd.DataFrame) -> pd.DataFrame:
    """The located optimum (``locate_optimum``) per (a, b, sketch seed, budget)."""
    out = []
    for (spectrum, a, b, seed, C), df in table.groupby(SLICE + ["sketch_seed", "compute"]):
        df = df[df["reducible"] > 0]
        if not (~df["refined"]).any():  # no grid point left to bracket the optimum
            continue
        best = locate_optimum(df["M"], df["reducible"], ~df["refined"].to_numpy(bool))
        out.append({"model": MEASURED, "spectrum": spectrum, "a": a, "b": b, "sketch_seed": seed,
                    "compute": float(C), **best, "N_star": float(C) / best["M_star"]})
    return pd.DataFrame(out, columns=FRONTIER_COLUMNS + ["spectrum"])


def equivalent_frontier(theory_table: pd.DataFrame | None) -> pd.DataFrame:
    """The deterministic equivalent's frontier rows (the ``compute_theory`` table) in the frontier's columns."""
    if theory_table is None or not len(theory_table):
        return pd.DataFrame(columns=FRONTIER_COLUMNS + ["spectrum"])
    df = theory_table.assign(model=EQUIVALENT, sketch_seed=math.nan, log_M_error=0.0, log_R_error=0.0,
                             M_grid_best=math.nan,
                             M_star_cubic=theory_table["M_star"],
                             points=theory_table.get("evaluations", 0))
    return df[FRONTIER_COLUMNS + ["spectrum"]]


def frontier_curve(frontier: pd.DataFrame, a: float, b: float, variable: str, sigma2: float,
                   cubic: bool = False) -> pd.DataFrame:
    """(C, x, y, seed, log_error) of one frontier variable in the theorem's coordinates (theory.frontier_coordinates),
    interior optima only; ``cubic``: from the cubic's minima (``locate_optimum``)."""
    df = frontier[np.isclose(frontier["a"], a) & np.isclose(frontier["b"], b, equal_nan=True)
                  & frontier["interior"].astype(bool)]
    df = df.sort_values(["sketch_seed", "compute"])
    if cubic:
        df = df.assign(M_star=df["M_star_cubic"], N_star=df["compute"] / df["M_star_cubic"])
    X, factor = theory.frontier_coordinates(variable, a, df["compute"].to_numpy(float), b, sigma2)
    # ln N* = ln C − ln M* carries M*'s error; ln R* its own (its slope in log M is 0 at the optimum)
    error = df["log_R_error" if variable == "reducible_star" else "log_M_error"].to_numpy(float)
    return pd.DataFrame({"C": df["compute"].to_numpy(float), "x": X, "y": df[variable].to_numpy(float) / factor,
                         "seed": df["sketch_seed"].to_numpy(), "log_error": error})


def _location_half_width(curve: pd.DataFrame, est: E.Estimate) -> float:
    """The slope's half-width from the located optima's error bounds on the window: the least-squares slope is
    Σ w_i log y_i, so errors e_i move it by at most Σ |w_i| e_i; averaged over seeds."""
    widths = []
    for _, c in curve[est.in_window(curve["x"])].groupby("seed", dropna=False):
        lx = np.log(c["x"].to_numpy(float))
        if len(lx) < 2:
            continue
        w = (lx - lx.mean()) / np.sum((lx - lx.mean()) ** 2)
        widths.append(float(np.sum(np.abs(w) * np.nan_to_num(c["log_error"].to_numpy(float)))))
    return float(np.mean(widths)) if widths else 0.0


def compute_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    """Frontier slopes in the theorem's coordinates, budgets with an interior optimum, on the upper half of them.

    primary          the measured frontier's slope, per sketch seed, averaged; interval: the t-interval over seeds
                     (when several) widened by the located optima's error bounds (``_location_half_width``);
                     systematic: the window rules of ``estimators.curve_slope``;
    theory_finite    the equivalent's frontier slope on the same budgets;
    extrapolated     the estimate shifted by the equivalent's own computed distance to its limit, the equivalent's
                     frontier being run far beyond the grid (``estimators.theory_convergence``, model (iv)), its
                     interval widened by the estimate's half-width; none where the equivalent has not reached the
                     theorem's balance by its last budget (``equivalent_reaches_regime``).
    The measured and the equivalent's frontiers are ``tables["compute_frontier"]`` after the call."""
    rows = []
    name = table["experiment"].iloc[0]
    measured = measured_frontier(table)
    equivalent = equivalent_frontier(tables.get(f"{name}_theory"))
    tables["compute_frontier"] = pd.concat([measured, equivalent], ignore_index=True)[FRONTIER_COLUMNS]
    sigma2 = float(table["sigma2"].iloc[0])
    for (spectrum, a, b), _ in table.groupby(SLICE, sort=True):
        expected = theory.exponents(theory_kind, a, b, sigma2) if spectrum == "power" else {}
        key = {"experiment": name, "spectrum": spectrum, "a": a, "b": b}
        in_regime = equivalent_reaches_regime(tables.get(f"{name}_theory"), a, b, sigma2)
        for variable in VARIABLES:
            mine = measured[measured["spectrum"] == spectrum]
            curve = frontier_curve(mine, a, b, variable, sigma2)
            de = frontier_curve(equivalent[equivalent["spectrum"] == spectrum], a, b, variable, sigma2)
            est = E.curve_slope(curve, "x", "y", seed="seed")
            finite, extrap = math.nan, {}
            if est.ok:
                alt = E.curve_slope(frontier_curve(mine, a, b, variable, sigma2, cubic=True), "x", "y", seed="seed",
                                    window=np.unique(curve["x"][est.in_window(curve["x"])]))
                if alt.ok:
                    est.sys_low, est.sys_high = min(est.sys_low, alt.fitted), max(est.sys_high, alt.fitted)
                loc = _location_half_width(curve, est)
                stat = E.half_width(est)
                half = math.hypot(stat, loc)
                est.ci_low, est.ci_high = est.fitted - half, est.fitted + half
                de_in = de[de["C"] <= curve["C"].max() * (1 + 1e-9)]
                if len(de_in) >= 2:
                    finite = E.finite_slope(de_in["x"], de_in["y"], est)
                # model (iv) alone: the measured frontier's own local slopes carry its sketch's jitter, too
                # rough for the correction models, which the equivalent's smooth frontier fits instead
                far = E.extrapolate(de["x"], de["y"]) if len(de) >= 4 and in_regime else {}
                extrap = E.theory_convergence(est.fitted, finite, far, half) if far else {}
                sel = curve[est.in_window(curve["x"])]
                est.x_lo, est.x_hi = float(sel["C"].min()), float(sel["C"].max())  # the window in budgets C
            rows.append(row(key, variable, "primary", "frontier", est, expected.get(variable, math.nan), finite,
                            extrap, abscissa="compute", scale="frontier"))
            for kind, c in (("local_slope_primary", curve.groupby("x", as_index=False)["y"].mean()),
                            ("local_slope_theory_finite", de)):
                if len(c) >= 2:
                    diagnostics.local_slopes(key, variable, kind, c["x"], c["y"])
    return rows
