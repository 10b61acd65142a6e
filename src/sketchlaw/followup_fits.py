"""Exponent-table rows of the follow-up experiments (schedules, batch, reuse; docs/METHODS.md §18).

The rows have the columns of ``analysis.COLUMNS`` and their verdicts come from ``estimators.verdict``, as every other
row. A follow-up can have several curves per (a, b) — one per schedule, per step rule — so its ``variable`` names the
curve: ``N_eff [geometric]``, ``N [power decay to 0 (q = 3)]``, ``variance_predictor [linear]``.

schedules  primary   the unsketched comparison (table ``schedules_claim``: exact, no sketch, no seeds), against
                     N_eff for the paper's geometric decay and against N for the power decay to zero (q = 2a − 1),
                     both with theory −(b − 1)/a, on the upper half of the claim's N grid;
           window    raw R − σ² of every schedule at the largest M of the table against N (N_eff for the paper's
                     geometric decay), on the points where the sketch limits nothing: M ≥ margin·(Σγ_t)^(1/a);
                     theory only for those two schedules.
batch      primary   the exact variance against its predictor min(M, (T_eff γ_B)^(1/a))/(B·T_eff) over the batch
                     sizes at the largest N and M, per step rule, on the branch M ≥ margin·(T_eff γ_B)^(1/a) where
                     the sketch limits nothing (theory 1: the variance is σ_M² times the predictor up to a constant;
                     no extrapolation, this is not a size limit);
           window    the critical batch size (largest B within 10 % of B = 1's R − σ²) against N, per step rule (no
                     theory: a growth rate, reported).
reuse      primary   E Approx against M (the M^(1−b) term of the multi-pass risk; exact, per sketch seed);
           montecarlo Monte Carlo R − σ² against L at the largest M on L ≤ N^(a/b) (theory (1 − b)/a) and against M at
                     the largest L (theory 1 − b), intervals from the Monte Carlo standard errors, beside the exact
                     one-pass engine on the same points (``theory_finite``: the L ≪ N limit of multi-pass SGD).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import estimators as E
from .analysis import WINDOW_MARGIN, _mc_slope, _row

CLAIM_THEORY = {"geometric": "N_eff", "power": "N"}  # schedule kind → the variable its theory is stated against


def _slices(table: pd.DataFrame):
    for (experiment, spectrum, a, b), df in table.groupby(["experiment", "spectrum", "a", "b"], sort=True):
        yield {"experiment": experiment, "spectrum": spectrum, "a": float(a), "b": float(b)}, df


def _schedule_theory(kind: str, label: str, a: float, b: float, against: str) -> float:
    """−(b − 1)/a where the literature states it: the paper's geometric decay against N_eff, the power decay to zero
    against N (b ≤ a); NaN elsewhere."""
    if b > a or CLAIM_THEORY.get(kind) != against:
        return math.nan
    if kind == "geometric" and label != "geometric":  # other phase lengths: no stated rate
        return math.nan
    return -(b - 1.0) / a


def schedule_rows(table: pd.DataFrame, tables: dict) -> list[dict]:
    rows = []
    claim_all = tables.get(f"{table['experiment'].iloc[0]}_claim") if len(table) else None
    for key, df in _slices(table):
        a, b = key["a"], key["b"]
        claim = None if claim_all is None else claim_all[np.isclose(claim_all["a"], a) & np.isclose(claim_all["b"], b)]
        for kind, against in CLAIM_THEORY.items():
            c = None if claim is None else claim[claim["kind"] == kind].sort_values("N")
            label = (c["schedule"].iloc[0] if c is not None and len(c) else
                     df.loc[df["kind"] == kind, "schedule"].iloc[0] if (df["kind"] == kind).any() else kind)
            if c is None or c.empty:
                est, extrap = E.Estimate(reason="no unsketched claim table (schedules.claim not configured)"), {}
            else:
                est = E.curve_slope(c, against, "reducible")
                extrap = E.extrapolate(c[against], c["reducible"])
            rows.append(_row(key, f"{against} [{label}]", "primary", "excess_limit", est,
                             _schedule_theory(kind, label, a, b, against), math.nan, extrap, "M", math.inf))
        primary = {r["variable"]: r for r in rows if r["estimator"] == "primary"}
        M = float(df["M"].max())
        at_m = df[np.isclose(df["M"], M)]
        for label, g in at_m.groupby("schedule", sort=True):
            kind = g["kind"].iloc[0]
            against = "N_eff" if kind == "geometric" else "N"
            mean = g.groupby(against, as_index=False).agg(reducible=("reducible", "mean"),
                                                           intrinsic_time=("intrinsic_time", "mean"))
            regime = M >= WINDOW_MARGIN * mean["intrinsic_time"].to_numpy(float) ** (1.0 / a)
            window = np.unique(mean.loc[regime, against].to_numpy(float))
            if len(window) < E.MIN_POINTS:
                est = E.Estimate(n_points=len(window), reason=f"{len(window)} N value(s) with M >= {WINDOW_MARGIN:g}"
                                 f"·(sum of steps)^(1/a) at M = {M:g} (need {E.MIN_POINTS})")
            else:
                est = E.curve_slope(g, against, "reducible", seed="sketch_seed", window=window)
            variable = f"{against} [{label}]"
            rows.append(_row(key, variable, "window", "reducible", est, _schedule_theory(kind, label, a, b, against),
                             math.nan, primary.get(variable, {}), "M", M))
    return rows


def batch_rows(table: pd.DataFrame, tables: dict) -> list[dict]:
    from .followups import critical_batch_size

    rows = []
    for key, df in _slices(table):
        N = float(df["N"].max())
        at_n = df[np.isclose(df["N"], N)]
        mean = at_n.groupby(["M", "step_rule", "B"], as_index=False).agg(
            variance=("variance", "mean"), variance_predictor=("variance_predictor", "mean"),
            T_eff=("T_eff", "mean"), gamma_B=("gamma_B", "mean"))
        M = float(mean["M"].max())
        for rule, g in mean[np.isclose(mean["M"], M)].groupby("step_rule", sort=True):
            # the predictor's branch where the sketch limits nothing, with the margin of every window rule
            branch = g[M >= WINDOW_MARGIN * (g["T_eff"] * g["gamma_B"]) ** (1.0 / key["a"])]
            if branch["B"].nunique() < E.MIN_POINTS:
                est = E.Estimate(n_points=branch["B"].nunique(),
                                 reason=f"{branch['B'].nunique()} B with M >= {WINDOW_MARGIN:g}·(T_eff gamma_B)^(1/a) "
                                        f"at N = {N:g} (need {E.MIN_POINTS})")
            else:
                est = E.curve_slope(branch, "variance_predictor", "variance")
            # not a size limit: no extrapolation (the verdict is consistent or disagrees)
            rows.append(_row(key, f"variance_predictor [{rule}]", "primary", "variance", est, 1.0, math.nan, {},
                             "N", N))
        crit = critical_batch_size(df.groupby(["N", "step_rule", "B"], as_index=False)["reducible"].mean())
        for rule, g in crit.groupby("step_rule", sort=True):
            inside = g[~g["at_grid_edge"]]
            if len(inside) < E.MIN_POINTS:
                est = E.Estimate(n_points=len(inside), reason=f"{len(inside)} N with a critical batch size inside "
                                                              f"the B grid (need {E.MIN_POINTS})")
            else:
                est = E.curve_slope(inside.assign(critical_B=inside["critical_B"].astype(float)), "N", "critical_B")
            rows.append(_row(key, f"critical_B [{rule}]", "window", "critical_batch", est, math.nan, math.nan, {}))
    return rows


def reuse_rows(table: pd.DataFrame, tables: dict) -> list[dict]:
    rows = []
    for key, df in _slices(table):
        a, b = key["a"], key["b"]
        for N, dn in df.groupby("N", sort=True):
            # M: E Approx per sketch (the M^(1−b) term), primary; then the Monte Carlo R − σ² at the largest L.
            approx = dn.groupby(["sketch_seed", "M"], as_index=False)["approx"].mean()
            est_m = E.curve_slope(approx, "M", "approx", seed="sketch_seed")
            mean_approx = approx.groupby("M")["approx"].mean()
            extrap_m = E.extrapolate(mean_approx.index, mean_approx.to_numpy())
            suffix = f" [N = {int(N)}]" if df["N"].nunique() > 1 else ""
            rows.append(_row(key, "M" + suffix, "primary", "approx", est_m, 1.0 - b, math.nan, extrap_m))
            L_top = float(dn["L"].max())
            # _mc_slope regresses mc_mean − σ² and puts the exact curve ("reducible") beside it: the one-pass engine
            top = dn[np.isclose(dn["L"], L_top)].assign(reducible=lambda d: d["onepass_L_reducible"])
            est, exact = _mc_slope(top, "M")
            rows.append(_row(key, "M" + suffix, "montecarlo", "reducible_mc", est, 1.0 - b, exact, extrap_m,
                             "L", L_top))
            # L: at the largest M, on L <= N^(a/b) (where the theory's L^((1−b)/a) holds).
            M_top = float(dn["M"].max())
            curve = dn[np.isclose(dn["M"], M_top) & (dn["L"] <= N ** (a / b) * (1 + 1e-12))]
            curve = curve.assign(reducible=lambda d: d["onepass_L_reducible"])
            est, exact = _mc_slope(curve, "L")
            one = curve.groupby("L")["reducible"].mean()
            extrap = E.extrapolate(one.index, one.to_numpy()) if len(one) >= 4 else {}
            rows.append(_row(key, "L" + suffix, "montecarlo", "reducible_mc", est, (1.0 - b) / a, exact, extrap,
                             "M", M_top))
    return rows


ANALYSES = {"schedules": schedule_rows, "batch": batch_rows, "reuse": reuse_rows}
