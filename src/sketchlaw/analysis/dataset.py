"""Exponent rows of the real dataset (experiment kind ``dataset``; docs/METHODS.md §20).

degrees    primary   variables a and b: the slope of log λ_j (−a) and of the target's tail energy log T_j (1 − b)
                     against log j (abscissa ``mode``) on the
                     configured window of modes (table ``<experiment>_spectrum``): fitted on the dataset, a 95 %
                     normal-approximation interval from the bootstrap resamples' slopes, a systematic range over the
                     window shifted down and up by a factor 2 and cut at its geometric midpoint; no theory (a
                     measurement). The fitted a and b are the slice's ``a`` and ``b`` for every row.
M          primary   Approx(S, w*) of the dataset's own target against M, per sketch seed, upper half of the M grid;
                     theory −min(b − 1, a) at the fitted a and b (``theory.exponents``).
N_eff      window    the exact Gaussian-equivalent R at the largest M against N_eff where the sketch limits nothing;
           montecarlo one-pass SGD on the real features on the same regime (intervals from the Monte Carlo standard
                     errors), beside the Gaussian-equivalent slope on the same points (``theory_finite``); theory
                     −(b − 1)/a (no label noise: the target is exactly representable).
M          montecarlo real-data SGD against M at the largest Monte Carlo N, beside the Gaussian equivalent.
The diagnostics hold each Monte Carlo point's ratio of real-data SGD to the Gaussian equivalent (kind
``real_over_gaussian``: x = N, fixed = M) and the bootstrap resamples' slopes (kind ``bootstrap_slope``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from sketchlaw import theory
from sketchlaw.analysis import estimators as E
from sketchlaw.analysis.rows import Diagnostics, row

# (variable, quantity, spectrum table column): the rows' variable is the degree they measure, their abscissa the mode
DEGREES = (("a", "eigenvalue", "lam"), ("b", "tail_energy", "tail_energy"))


def _slope(curve: pd.DataFrame, column: str, lo: float, hi: float) -> float:
    sel = curve[(curve["mode"] >= lo) & (curve["mode"] <= hi)]
    return E.line(sel["mode"], sel[column])[0]


def degree_estimate(spectrum: pd.DataFrame, column: str, lo: int, hi: int) -> E.Estimate:
    """The slope of log ``column`` against log(mode) on [lo, hi] of the dataset (replicate 0), its bootstrap interval
    and its range over the neighbouring windows."""
    full = spectrum[spectrum["replicate"] == 0]
    fitted = _slope(full, column, lo, hi)
    boot = [_slope(g, column, lo, hi) for r, g in spectrum.groupby("replicate") if r > 0]
    mid = math.sqrt(lo * hi)
    n = int(full["mode"].max())
    windows = [(lo / 2, hi / 2), (lo, mid), (mid, hi)] + ([(2 * lo, 2 * hi)] if 2 * hi <= n // 2 else [])
    alts = [_slope(full, column, a, b) for a, b in windows]
    sel = full[(full["mode"] >= lo) & (full["mode"] <= hi)]
    est = E.Estimate(fitted=fitted, intercept=E.line(sel["mode"], sel[column])[1], x_lo=float(lo), x_hi=float(hi),
                     n_points=len(sel), n_seeds=len(boot), sys_low=min([fitted, *alts]), sys_high=max([fitted, *alts]))
    if len(boot) >= 2:
        half = float(special.ndtri(0.5 + E.LEVEL / 2)) * float(np.std(boot, ddof=1))
        est.ci_low, est.ci_high = fitted - half, fitted + half
    est.extra["bootstrap"] = boot
    return est


def dataset_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    name = table["experiment"].iloc[0]
    spectrum = tables.get(f"{name}_spectrum")
    if spectrum is None or spectrum.empty:
        return []
    lo, hi = int(spectrum["fit_lo"].iloc[0]), int(spectrum["fit_hi"].iloc[0])  # the configured window
    degrees = {q: degree_estimate(spectrum, column, lo, hi) for _, q, column in DEGREES}
    a, b = -degrees["eigenvalue"].fitted, 1.0 - degrees["tail_energy"].fitted
    key = {"experiment": name, "spectrum": str(table["dataset"].iloc[0]), "a": a, "b": b}
    rows = []
    for variable, quantity, _ in DEGREES:
        est = degrees[quantity]
        rows.append(row(key, variable, "primary", quantity, est, math.nan, math.nan, {}, abscissa="mode"))
        diagnostics.add(key, variable, "bootstrap_slope", range(len(est.extra["bootstrap"])), est.extra["bootstrap"])
    ok = a > 1 and b > 1  # the theorem's range: a spectrum and a source condition of degree > 1
    expected = theory.exponents(theory_kind, a, b, 0.0) if ok else {}
    df = table[~table["diverged"].astype(bool)]
    gamma = float(df["gamma"].iloc[0]) if len(df) else math.nan

    # M: the target's approximation error per sketch seed.
    approx = df.groupby(["sketch_seed", "M"], as_index=False)["approx"].first()
    est = E.curve_slope(approx, "M", "approx", seed="sketch_seed")
    rows.append(row(key, "M", "primary", "approx", est, expected.get("M", math.nan), math.nan, {}))

    # N_eff at the largest M: the Gaussian equivalent (exact) and real-data SGD (Monte Carlo) on the same regime.
    M_top = float(df["M"].max()) if len(df) else math.nan
    curve = df[np.isclose(df["M"], M_top)]
    regime = theory.sketch_limits_nothing(M_top, curve["N_eff"] * gamma, a) if ok else np.ones(len(curve), bool)
    window = np.unique(curve.loc[regime, "N_eff"].to_numpy(float))
    if len(window) < E.MIN_POINTS:
        est = E.Estimate(n_points=len(window), reason=f"{len(window)} N_eff value(s) with M >= "
                                                      f"{theory.WINDOW_MARGIN:g}·(N_eff gamma)^(1/a) at M = {M_top:g}")
    else:
        est = E.curve_slope(curve, "N_eff", "reducible", seed="sketch_seed", window=window)
    rows.append(row(key, "N_eff", "window", "reducible", est, expected.get("N_eff", math.nan), math.nan, {},
                    fixed_variable="M", fixed_value=M_top))
    mc = df[(df["mc_trials"] > 0) & df["mc_mean"].notna()]
    mc_top = mc[np.isclose(mc["M"], mc["M"].max())] if len(mc) else mc
    in_regime = theory.sketch_limits_nothing(mc_top["M"], mc_top["N_eff"] * gamma, a) if ok and len(mc_top) else \
        np.ones(len(mc_top), bool)
    est, exact = E.mc_slope(mc_top[in_regime], "N_eff")
    rows.append(row(key, "N_eff", "montecarlo", "reducible_mc", est, expected.get("N_eff", math.nan), exact, {},
                    fixed_variable="M", fixed_value=float(mc["M"].max()) if len(mc) else math.nan))
    N_top = float(mc["N"].max()) if len(mc) else math.nan
    est, exact = E.mc_slope(mc[np.isclose(mc["N"], N_top)], "M")
    rows.append(row(key, "M", "montecarlo", "reducible_mc", est, expected.get("M", math.nan), exact, {},
                    fixed_variable="N", fixed_value=N_top))
    ratio = mc.groupby(["M", "N"], as_index=False)[["mc_mean", "risk"]].mean()
    diagnostics.add(key, "N", "real_over_gaussian", ratio["N"], ratio["mc_mean"] / ratio["risk"], fixed=ratio["M"])
    return rows
