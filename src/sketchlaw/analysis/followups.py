"""Exponent rows of the follow-up experiments (schedules, batch, reuse; docs/METHODS.md §18).

The rows have the columns of ``columns.COLUMNS`` and their verdicts come from ``estimators.verdict``, as every other row;
a follow-up with several curves per (a, b) tells them apart by the typed columns ``schedule``, ``step_rule`` and
``samples``.

schedules  primary   the unsketched comparison (table ``<experiment>_claim``: the M = ∞ limit, exact, no seeds),
                     against N_eff for the paper's geometric decay and against N for the power decay to zero, both with
                     theory ``theory.schedule_exponent``, on the upper half of the claim's N grid;
           window    raw R − σ² of every schedule at the largest M of the table against N (N_eff for the paper's
                     geometric decay), on the points where the sketch limits nothing (``theory.sketch_limits_nothing``
                     at the schedule's intrinsic time Σγ_t); finite-size theory from table ``<experiment>_finite``
                     (the sketched problem's deterministic equivalent run through the same schedule).
batch      primary   the exact variance against its predictor (``theory.variance_predictor``), per step rule, pooled
                     over every (N, B) at the largest M where the rule's own step is used (not capped at the
                     stability bound) and the sketch limits nothing; least squares with a t-interval from the residual
                     scatter, each N left out for the systematic range (no extrapolation: not a size limit);
           window    the critical batch size (largest B within 10 % of B = 1's R − σ²) against N, per step rule (no
                     theory: a growth rate, reported).
reuse      primary   E Approx against M (the M term of the multi-pass risk; exact, per sketch seed), with the source
                     experiment's finite-size theory and extrapolation (``scaling.approx_estimate``);
           montecarlo the Monte Carlo excess R − σ² − E Approx (the L term) against L at the largest M where the
                     dataset and the sketch limit nothing, and R − σ² against M at the largest L where the data limit
                     nothing, intervals from the Monte Carlo standard errors, beside the exact one-pass engine on the
                     same points (``theory_finite``: the L ≪ N limit).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sketchlaw import theory
from sketchlaw.analysis import estimators as E
from sketchlaw.analysis.rows import Diagnostics, row
from sketchlaw.analysis.scaling import approx_estimate
from sketchlaw.errors import ParameterError

CLAIM_AGAINST = {"geometric": "N_eff", "power": "N"}  # schedule kind → the variable its theory is stated against
CRITICAL_TOLERANCE = 0.1  # the critical batch size: the largest B whose R − σ² stays within 10 % of B = 1's


def _slices(table: pd.DataFrame):
    for (experiment, spectrum, a, b), df in table.groupby(["experiment", "spectrum", "a", "b"], sort=True):
        yield {"experiment": experiment, "spectrum": spectrum, "a": float(a), "b": float(b)}, df


def _of_slice(table: pd.DataFrame | None, key: dict) -> pd.DataFrame | None:
    if table is None:
        return None
    return table[np.isclose(table["a"], key["a"]) & np.isclose(table["b"], key["b"])]


def schedule_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    rows = []
    name = table["experiment"].iloc[0]
    for key, df in _slices(table):
        a, b = key["a"], key["b"]
        extraps = {}
        claim = _of_slice(tables.get(f"{name}_claim"), key)
        finite_all = _of_slice(tables.get(f"{name}_finite"), key)
        for kind, against in CLAIM_AGAINST.items():
            c = None if claim is None else claim[claim["kind"] == kind].sort_values("N")
            source = c if c is not None and len(c) else df[df["kind"] == kind]
            label = source["schedule"].iloc[0] if len(source) else kind
            paper = bool(source["paper"].iloc[0]) if len(source) else kind == "geometric"
            expected = theory.schedule_exponent(kind, paper, against, a, b)
            if c is None or c.empty:
                est, extrap = E.Estimate(reason="no unsketched claim table (schedules.claim not configured)"), {}
            else:
                est = E.curve_slope(c, against, "reducible")
                extrap = E.extrapolate(c[against], c["reducible"])
                # local slopes against N for every schedule (what the figure compares), and those of the law itself
                # on the same N: the log factor's share of the geometric decay's
                diagnostics.local_slopes(key, "N", "local_slope_primary", c["N"], c["reducible"],
                                         curve={"schedule": label})
                if math.isfinite(expected):
                    law = c[against].to_numpy(float) ** expected
                    diagnostics.local_slopes(key, "N", "local_slope_theory", c["N"], law, curve={"schedule": label})
            extraps[kind] = extrap
            rows.append(row(key, against, "primary", "excess_limit", est, expected, math.nan, extrap,
                            curve={"schedule": label}, fixed_variable="M", fixed_value=math.inf))
        M = float(df["M"].max())
        for label, g in df[np.isclose(df["M"], M)].groupby("schedule", sort=True):
            kind, paper = g["kind"].iloc[0], bool(g["paper"].iloc[0])
            against = "N_eff" if kind == "geometric" else "N"
            mean = g.groupby(against, as_index=False).agg(reducible=("reducible", "mean"),
                                                           intrinsic_time=("intrinsic_time", "mean"))
            regime = theory.sketch_limits_nothing(M, mean["intrinsic_time"], a)
            window = np.unique(mean.loc[regime, against].to_numpy(float))
            if len(window) < E.MIN_POINTS:
                est = E.Estimate(n_points=len(window), reason=f"{len(window)} N value(s) with M >= "
                                 f"{theory.WINDOW_MARGIN:g}·(sum of steps)^(1/a) at M = {M:g} (need {E.MIN_POINTS})")
            else:
                est = E.curve_slope(g, against, "reducible", seed="sketch_seed", window=window)
            diagnostics.add(key, against, "regime_point", window, np.full(len(window), M), fixed=M,
                            curve={"schedule": label})
            expected = theory.schedule_exponent(kind, paper, against, a, b)
            finite = math.nan
            f = None if finite_all is None else finite_all[(finite_all["schedule"] == label)
                                                           & np.isclose(finite_all["M"], M)].sort_values("N")
            if math.isfinite(expected) and est.ok and f is not None and len(f):
                finite = E.finite_slope(f[against], f["reducible"], est)
            # with a finite-size theory on the window, the row shares its primary's extrapolation (as the main
            # experiment's window rows do); without one, a window row is `consistent` or `disagrees`
            rows.append(row(key, against, "window", "reducible", est, expected, finite,
                            extraps.get(kind, {}) if math.isfinite(finite) else {}, curve={"schedule": label},
                            fixed_variable="M", fixed_value=M))
    return rows


def critical_batch_size(df: pd.DataFrame, tolerance: float = CRITICAL_TOLERANCE) -> pd.DataFrame:
    """Per (N, step_rule): the largest B of the grid such that R − σ² stays within ``tolerance`` (relative) of
    B = 1's at the same N for every B up to it (the first B beyond costs more than 10 % of the reducible risk)."""
    rows = []
    for (N, rule), g in df.groupby(["N", "step_rule"], sort=True):
        g = g.sort_values("B")
        if g["B"].iloc[0] != 1:
            raise ParameterError("B_values", list(g["B"]), "a grid that includes B = 1")
        ok = (g["reducible"].to_numpy() <= (1.0 + tolerance) * g["reducible"].iloc[0])
        k = len(ok) if ok.all() else int(np.argmin(ok))
        rows.append({"N": N, "step_rule": rule, "critical_B": int(g["B"].iloc[k - 1]),
                     "at_grid_edge": bool(ok.all()), "tolerance": tolerance})
    return pd.DataFrame(rows, columns=["N", "step_rule", "critical_B", "at_grid_edge", "tolerance"])


def batch_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    rows = []
    for key, df in _slices(table):
        expected = theory.exponents(theory_kind, key["a"], key["b"])["variance_predictor"]
        # per (N, B, rule) at the largest M, averaged over sketch seeds (the predictor does not depend on the sketch)
        M = float(df["M"].max())
        mean = df[np.isclose(df["M"], M)].groupby(["N", "step_rule", "B"], as_index=False).agg(
            variance=("variance", "mean"), variance_predictor=("variance_predictor", "mean"),
            T_eff=("T_eff", "mean"), gamma_B=("gamma_B", "mean"), capped=("capped", "max"))
        for rule, g in mean.groupby("step_rule", sort=True):
            # the predictor's own regime: the rule's step (not the stability cap, where γ_B sits near the bound and
            # the ratio variance/predictor moves with it), and the branch where the sketch limits nothing;
            # pooled over N and B (at one N the linear rule's predictor hardly moves)
            regime = g[~g["capped"].astype(bool) & theory.sketch_limits_nothing(M, g["T_eff"] * g["gamma_B"],
                                                                                key["a"])]
            est = E.pooled_slope(regime["variance_predictor"], regime["variance"], regime["N"])
            if not est.ok:
                est.reason = (f"{est.n_points} (N, B) with an uncapped step and M >= {theory.WINDOW_MARGIN:g}·"
                              f"(T_eff gamma_B)^(1/a) at M = {M:g} (need {E.MIN_POINTS})")
            diagnostics.add(key, "variance_predictor", "pooled_point", regime["B"], regime["variance_predictor"],
                            fixed=regime["N"], curve={"step_rule": rule})
            rows.append(row(key, "variance_predictor", "primary", "variance", est, expected, math.nan, {},
                            abscissa="variance_predictor", curve={"step_rule": rule}, fixed_variable="M",
                            fixed_value=M))
        crit = critical_batch_size(df.groupby(["N", "step_rule", "B"], as_index=False)["reducible"].mean())
        for rule, g in crit.groupby("step_rule", sort=True):
            inside = g[~g["at_grid_edge"]]
            for kind, part in (("critical_B", inside), ("critical_B_at_edge", g[g["at_grid_edge"]])):
                diagnostics.add(key, "critical_B", kind, part["N"], part["critical_B"], curve={"step_rule": rule})
            if len(inside) < E.MIN_POINTS:
                est = E.Estimate(n_points=len(inside), reason=f"{len(inside)} N with a critical batch size inside "
                                                              f"the B grid (need {E.MIN_POINTS})")
            else:
                est = E.curve_slope(inside.assign(critical_B=inside["critical_B"].astype(float)), "N", "critical_B")
            rows.append(row(key, "critical_B", "window", "critical_batch", est, math.nan, math.nan, {},
                            abscissa="N", curve={"step_rule": rule}))
    return rows


def reuse_rows(table: pd.DataFrame, tables: dict, diagnostics: Diagnostics, theory_kind: str) -> list[dict]:
    rows = []
    for key, df in _slices(table):
        a, b = key["a"], key["b"]
        expected = theory.exponents(theory_kind, a, b, float(df["sigma2"].iloc[0]))
        for N, dn in df.groupby("N", sort=True):
            curve = {"samples": float(N)}
            approx = approx_estimate(dn, "power", a, b)
            rows.append(row(key, "M", "primary", "approx", approx.est, expected["M"], approx.finite, approx.extrap,
                            curve=curve))
            # M: the Monte Carlo R − σ² at the largest L, where the data limit nothing (the sketch, not the data,
            # limits SGD), beside the exact one-pass engine on the same points
            L_top = float(dn["L"].max())
            top = dn[np.isclose(dn["L"], L_top) & theory.data_limits_nothing(dn["M"], L_top, a)]
            est, exact = E.mc_slope(top, "M", exact="onepass_L_reducible")
            if not est.ok:
                est.reason = f"{top['M'].nunique()} M with L = {L_top:g} >= {theory.WINDOW_MARGIN:g}·M^a (need 2)"
            rows.append(row(key, "M", "montecarlo", "reducible_mc", est, expected["M"], exact, approx.extrap,
                            curve=curve, fixed_variable="L", fixed_value=L_top))
            # L: the Monte Carlo excess R − σ² − E Approx (the L term) at the largest M, where the dataset and the
            # sketch limit nothing, beside the one-pass excess
            M_top = float(dn["M"].max())
            sel = dn[np.isclose(dn["M"], M_top) & theory.dataset_limits_nothing(N, dn["L"], a, b)
                     & theory.sketch_limits_nothing(M_top, dn["L"], a)]
            sel = sel.assign(offset=sel["sigma2"] + sel["approx"],
                             onepass_excess=sel["onepass_L_reducible"] - sel["approx"])
            est, exact = E.mc_slope(sel, "L", offset="offset", exact="onepass_excess")
            # no extrapolation: at fixed M the one-pass excess bends onto the sketch's floor as L grows, so its local
            # slopes head away from the L term's exponent, not towards it (the verdict is consistent or disagrees)
            rows.append(row(key, "L", "montecarlo", "excess_mc", est, expected["L"], exact, {}, curve=curve,
                            fixed_variable="M", fixed_value=M_top))
    return rows
