"""Exponent rows of the covariates experiment (experiment kind ``covariates``; docs/METHODS.md §21).

M, N_eff   window     the Gaussian exact R − σ² on the same sketches (coordinates empty): M at the largest N where
                      the data limit nothing, N_eff at the largest M where the sketch limits nothing (as the scaling
                      experiments' window rows).
M, N_eff   montecarlo per coordinate law, full-dimensional SGD's Monte Carlo R − σ² on the same windows of the Monte
                      Carlo's own grid (smaller than the exact curve's: O(M·d) per step), per sketch seed with a
                      t-interval over seeds (it holds the Monte Carlo error too), the Gaussian exact curve's slope on
                      the same points as finite-size theory and the exact window row's extrapolation (else its
                      interval) as extrapolation. The exact N_eff window row extrapolates to the M = ∞ limit's Bias +
                      Var (the family d = d_per_M·M as M grows), as the scaling experiments' window rows do.
No primary row: the spectrum is cut at d = max(d_min, d_per_M·M) (SGD runs every coordinate), so the deterministic
equivalents and the M = ∞ limit, which are the untruncated problem's, are not this problem's finite-size theory;
the Gaussian exact curve on the same sketches is, point for point, and on the block's larger grid it is the far
curve a Monte Carlo row extrapolates to (``pre-asymptotic`` where the law follows the exact curve on its own points
and the exact curve's window holds the theorem).
The diagnostics hold, per law, the Monte Carlo R − σ² over the Gaussian exact R − σ² at every (M, N), mean over
sketch seeds (kind ``over_gaussian``: x = N, fixed = M): how the constant moves with the fourth moment.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sketchlaw import theory
from sketchlaw.analysis import estimators as E
from sketchlaw.analysis.rows import Diagnostics, row
from sketchlaw.analysis.scaling import SLICE, limit_curves, limit_extrapolation, regime_mask


def _window_row(key: dict, df: pd.DataFrame, x: str, fixed: str, y: str, estimator: str, quantity: str,
                expected: dict, gamma: float, curve: dict, far: dict | None = None, extrap: dict | None = None) -> dict:
    """The slope of ``y`` against x at the largest ``fixed``, per sketch seed, on the theorem's regime, with the
    Gaussian exact curve's slope on the same points as finite-size theory (for a Monte Carlo row). Its extrapolation:
    ``extrap`` (an exact row's: the M = ∞ limit's), else ``far``'s — the exact window row on the block's larger grid,
    its own extrapolation or else its interval, as a Monte Carlo row of the scaling experiments takes the exact
    primary row's."""
    value = float(df[fixed].max())
    at = df[np.isclose(df[fixed], value)]
    window = np.unique(at.loc[regime_mask(at, x, gamma, key["a"], key["spectrum"]), x].to_numpy(float))
    if len(window) < E.MIN_POINTS:
        est = E.Estimate(n_points=len(window), reason=f"{len(window)} {x} value(s) in the theorem's regime at "
                                                      f"{fixed} = {value:g} (need {E.MIN_POINTS})")
    else:
        est = E.curve_slope(at, x, y, seed="sketch_seed", window=window)
    finite = math.nan
    if y != "reducible":
        exact = at.groupby(x)["reducible"].mean()
        finite = E.finite_slope(exact.index, exact.to_numpy(), est)
    if far is not None and math.isfinite(far["extrapolated"]):  # the exact row's own extrapolation
        extrap = {k: far[k] for k in ("extrapolated", "extrapolated_low", "extrapolated_high")}
    elif far is not None and math.isfinite(far["fitted"]):  # else the range the exact row's verdict reads
        extrap = {"extrapolated": far["fitted"],
                  "extrapolated_low": np.nanmin([far["ci_low"], far["sys_low"], far["fitted"]]),
                  "extrapolated_high": np.nanmax([far["ci_high"], far["sys_high"], far["fitted"]])}
    extrap = extrap or {}
    return row(key, x, estimator, quantity, est, expected.get(x, math.nan), finite, extrap, fixed_variable=fixed,
               fixed_value=value, curve=curve)


def covariate_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    rows = []
    name = table["experiment"].iloc[0] if len(table) else ""
    for values, df in table.groupby(SLICE, sort=True):
        key = dict(zip(SLICE, values))
        a, b = key["a"], key["b"]
        expected = theory.exponents(theory_kind, a, b, float(df["sigma2"].iloc[0]))
        gamma = float(df["gamma"].iloc[0])
        exact = df.drop_duplicates(["M", "N", "sketch_seed"])  # the same Gaussian exact curve beside every law
        lim, _, lim_far = limit_curves(tables.get(f"{name}_limit"), key["spectrum"], a, b)
        # the N_eff window extrapolates to the M = ∞ limit, the limit of the family d = d_per_M·M as M grows (as the
        # scaling experiments' window rows); the M window has no far curve beyond the exact one
        far = {"M": None, "N_eff": None if lim is None or lim.empty else limit_extrapolation(lim, lim_far)}
        for x, fixed in (("M", "N"), ("N_eff", "M")):
            rows.append(_window_row(key, exact, x, fixed, "reducible", "window", "reducible", expected, gamma, {},
                                    extrap=far[x]))
            far[x] = rows[-1]
        for law, dl in df[df["coordinates"] != ""].groupby("coordinates", sort=False):
            curve = {"coordinates": law}
            dl = dl[dl["mc_mean"].notna()].assign(mc_reducible=lambda t: t["mc_mean"] - t["sigma2"])
            for x, fixed in (("M", "N"), ("N_eff", "M")):
                rows.append(_window_row(key, dl, x, fixed, "mc_reducible", "montecarlo", "reducible_mc", expected,
                                        gamma, curve, far[x]))
            ratio = dl.groupby(["M", "N"], as_index=False)[["mc_reducible", "reducible"]].mean()
            diagnostics.add(key, "N", "over_gaussian", ratio["N"], ratio["mc_reducible"] / ratio["reducible"],
                            fixed=ratio["M"], curve=curve)
    return rows
