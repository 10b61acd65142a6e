"""Exponent rows of the scaling experiments (main, source, logpower; rules: docs/METHODS.md §13, §14).

One `primary` row per theorem exponent, on a quantity only an exact engine gives:
  M slopes      E Approx of each sketch against M (the theorem's M term), per seed, upper half of the M grid;
  N_eff slopes  bias + variance of the M = ∞ limit (``limit`` tables) against N_eff, upper half of the N grid
                (at finite M the sketch truncates the spectrum near M, so no finite-M window shows the theorem's
                N_eff term).
Secondary rows: `window` (raw R − σ² at the largest held-fixed value, on the theorem's regime: what the paper's
figure shows) and `montecarlo` (Monte Carlo R − σ² on its sub-grid, beside the exact engine on the same points).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from sketchlaw import theory
from sketchlaw.analysis import estimators as E
from sketchlaw.analysis.rows import Diagnostics, row
from sketchlaw.theory.equivalents import sketch_approx_de, sketch_approx_de_far

SLICE = ["experiment", "spectrum", "a", "b"]
CURVES = ("sketch",)  # curve columns a scaling table may have (the sketches experiment: one curve per family)


def _slices(table: pd.DataFrame):
    """(key, curve, rows) per slice of a scaling table and curve within it (``CURVES`` present in the table)."""
    curves = [c for c in CURVES if c in table]
    for values, df in table.groupby(SLICE + curves, sort=True, dropna=False):
        yield dict(zip(SLICE, values)), dict(zip(curves, values[len(SLICE):])), df


def theory_key(experiment: str, spectrum: str) -> str:
    """The theory a scaling slice is checked against: the log power law's, else the experiment's own."""
    return "logpower" if spectrum == "logpower" else experiment


class ApproxEstimate(NamedTuple):
    est: E.Estimate
    M: np.ndarray        # the M grid
    y: np.ndarray        # E Approx, mean over sketch seeds
    theory_y: np.ndarray  # its deterministic equivalent
    finite: float        # the equivalent's slope on the estimate's window
    extrap: dict


def approx_estimate(df: pd.DataFrame, spectrum: str, a: float, prior_b: float | None) -> ApproxEstimate:
    """The primary M estimate: E Approx per sketch seed against M, its deterministic equivalent (the finite-size
    theory) and the extrapolation corrected by the equivalent's own convergence run to M = 10^56."""
    logpower = spectrum == "logpower"
    approx = df.groupby(["sketch_seed", "M"], as_index=False)["approx"].mean()
    est = E.curve_slope(approx, "M", "approx", seed="sketch_seed", log_of_log=logpower)
    Ms = np.unique(approx["M"].to_numpy(float))
    de = sketch_approx_de(spectrum, a, Ms, prior_b)
    mean = approx.groupby("M")["approx"].mean().reindex(Ms).to_numpy()
    finite = E.finite_slope(Ms, de, est, logpower)
    far = E.extrapolate(*sketch_approx_de_far(spectrum, a, Ms.max(), prior_b), logpower, log_corrections=logpower)
    extrap = E.extrapolate(Ms, mean, logpower, theory_y=de, half_width=E.half_width(est),
                           convergence=(est.fitted, finite, far))
    return ApproxEstimate(est, Ms, mean, de, finite, extrap)


def limit_curves(limit: pd.DataFrame | None, spectrum: str, a: float, b: float):
    """(limit, deterministic equivalent, far limit) of one (spectrum, a, b) from an M = ∞ limit table, each sorted by
    N_eff (None each without a table)."""
    if limit is None:
        return None, None, None
    sel = limit[(limit["spectrum"] == spectrum) & np.isclose(limit["a"], a) & np.isclose(limit["b"], b)]
    return tuple(sel[sel["model"] == m].sort_values("N_eff") for m in ("limit", "deterministic_equivalent",
                                                                         "limit_far"))


def limit_extrapolation(lim: pd.DataFrame, far: pd.DataFrame | None, logpower: bool = False) -> dict:
    """The N_eff slope of the M = ∞ limit's Bias + Var extrapolated from the grid's end and the far grid."""
    reach = lim if far is None or len(far) < 2 else pd.concat([lim.tail(1), far])
    return E.extrapolate(reach["N_eff"], reach["excess"], logpower, log_corrections=True)


def scaling_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    """Primary and window rows, one (a, b) slice at a time; ``tables`` holds the experiment's M = ∞ limit table
    (``<experiment>_limit``) when it has one."""
    rows = []
    name = table["experiment"].iloc[0] if len(table) else ""
    limit = tables.get(f"{name}_limit")
    for key, curve, df in _slices(table):
        experiment, spectrum, a, b = (key[k] for k in SLICE)
        logpower = spectrum == "logpower"
        kind = theory_key(theory_kind, spectrum)
        prior_b = b if kind == "source" else None
        sigma2 = float(df["sigma2"].iloc[0])
        expected = theory.exponents(kind, a, None if logpower else b, sigma2)
        var_m, var_n = ("log_M", "log_N_eff") if logpower else ("M", "N_eff")
        scale = "loglog" if logpower else "log"
        gamma = float(df["gamma"].iloc[0])

        # M: E Approx per sketch, against M.
        m = approx_estimate(df, spectrum, a, prior_b)
        est_m, Ms, de_approx, extrap_m = m.est, m.M, m.theory_y, m.extrap
        rows.append(row(key, var_m, "primary", "approx", est_m, expected.get(var_m, math.nan), m.finite, extrap_m,
                        abscissa="M", scale=scale, curve=curve))
        diagnostics.add(key, var_m, "theory_finite", Ms, de_approx, curve=curve)
        diagnostics.local_slopes(key, var_m, "local_slope_primary", Ms, m.y, logpower, curve=curve)
        diagnostics.local_slopes(key, var_m, "local_slope_theory_finite", Ms, de_approx, logpower, curve=curve)

        # N_eff: the M = ∞ limit's bias + variance, against N_eff.
        extrap_n = {}
        lim_b = a if not np.isfinite(b) else b  # the log power law's isotropic prior is run with b = a
        lim, de, far = limit_curves(limit, spectrum, a, lim_b)
        if lim is None or lim.empty:
            est_n = E.Estimate(reason="no M = inf limit table")
        else:
            est_n = E.curve_slope(lim, "N_eff", "excess", log_of_log=logpower)
            extrap_n = limit_extrapolation(lim, far, logpower)
            diagnostics.local_slopes(key, var_n, "local_slope_primary", lim["N_eff"], lim["excess"], logpower,
                                     curve=curve)
        rows.append(row(key, var_n, "primary", "excess_limit", est_n, expected.get(var_n, math.nan), math.nan,
                        extrap_n, abscissa="N_eff", scale=scale, fixed_variable="M", fixed_value=math.inf,
                        curve=curve))

        # Window slopes of the raw R − σ² at the largest held-fixed value, in the theorem's regime.
        for x, fixed, variable, extrap in (("M", "N", var_m, extrap_m), ("N_eff", "M", var_n, extrap_n)):
            value = float(df[fixed].max())
            at_fixed = df[np.isclose(df[fixed], value)]
            regime = regime_mask(at_fixed, x, gamma, a, spectrum)
            window = np.unique(at_fixed.loc[regime, x].to_numpy(float))
            if len(window) < E.MIN_POINTS:
                est = E.Estimate(n_points=len(window), reason=f"{len(window)} {x} value(s) in the theorem's regime "
                                                              f"at {fixed} = {value:g} (need {E.MIN_POINTS})")
            else:
                est = E.curve_slope(at_fixed, x, "reducible", seed="sketch_seed", window=window,
                                    log_of_log=logpower)
            if x == "M":
                finite = E.finite_slope(Ms, de_approx, est, logpower)
            elif de is not None and len(de) and np.isclose(de["M"].iloc[0], value):
                finite = E.finite_slope(de["N_eff"], de["approx"] + de["excess"], est, logpower)
            else:
                finite = math.nan
            rows.append(row(key, variable, "window", "reducible", est, expected.get(variable, math.nan), finite,
                            extrap, abscissa=x, scale=scale, fixed_variable=fixed, fixed_value=value, curve=curve))
            diagnostics.add(key, variable, "regime_point", window, np.full(len(window), value), fixed=value,
                            curve=curve)
            for v, sub in df.groupby(fixed):
                mean = sub.groupby(x)["reducible"].mean()
                diagnostics.local_slopes(key, variable, "local_slope", mean.index, mean.to_numpy(), logpower,
                                         fixed=v, curve=curve)
            _window_drift(diagnostics, key, variable, at_fixed, x, window, est, logpower, curve)
    return rows


def regime_mask(curve: pd.DataFrame, x: str, gamma: float, a: float, spectrum: str) -> np.ndarray:
    """The theorem's regime of a window slope (power law only; the log power law's rates have no such margin)."""
    if spectrum != "power":
        return np.ones(len(curve), bool)
    time = curve["N_eff"].to_numpy(float) * gamma
    if x == "N_eff":
        return theory.sketch_limits_nothing(curve["M"], time, a)
    return theory.data_limits_nothing(curve["M"], time, a)


def _window_drift(diagnostics: Diagnostics, key, variable, at_fixed, x, window, est: E.Estimate, logpower, curve):
    """The window slope as its start moves up the window (a drift means a crossover, not the asymptote), and the
    per-seed slopes behind its t-interval."""
    if not est.ok:
        return
    mean = at_fixed.groupby(x)["reducible"].mean()
    starts, slopes = [], []
    for start in window[:-2]:
        xs = mean.index[(mean.index >= start) & (mean.index <= window[-1])]
        starts.append(start)
        slopes.append(E.line(np.log(xs) if logpower else xs, mean.loc[xs].to_numpy())[0])
    diagnostics.add(key, variable, "window_start", starts, slopes, curve=curve)
    seeds = est.extra.get("seed_slopes", [])
    diagnostics.add(key, variable, "seed_slope", range(len(seeds)), seeds, curve=curve)


def montecarlo_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str,
                    exponent_rows: list[dict]) -> list[dict]:
    """Monte Carlo slopes (N_eff at the largest MC M, M at the largest MC N) with intervals from the Monte Carlo
    standard errors, beside the exact engine's slope on the same points (theory_finite); the extrapolation is the
    exact primary row's."""
    rows = []
    mc = table[table["mc_trials"] > 0] if "mc_trials" in table else table.iloc[:0]
    for key, curve, df in _slices(mc):
        expected = theory.exponents(theory_kind, key["a"], key["b"], float(df["sigma2"].iloc[0]))
        for x, fixed in (("N_eff", "M"), ("M", "N")):
            value = float(df[fixed].max())
            est, exact = E.mc_slope(df[np.isclose(df[fixed], value)], x)
            primary = next((r for r in exponent_rows if r["estimator"] == "primary" and r["variable"] == x
                            and all(r[k] == v for k, v in {**key, **curve}.items())), {})
            rows.append(row(key, x, "montecarlo", "reducible_mc", est, expected.get(x, math.nan), exact, primary,
                            fixed_variable=fixed, fixed_value=value, curve=curve))
    return rows
