"""Exponent-table rows of the follow-up experiments (schedules, batch, reuse; docs/METHODS.md §18).

The rows have the columns of ``analysis.COLUMNS`` and their verdicts come from ``estimators.verdict``, as every other
row. A follow-up can have several curves per (a, b) — one per schedule, per step rule — so its ``variable`` names the
curve: ``N_eff [geometric]``, ``N [power decay to 0 (q = 3)]``, ``variance_predictor [linear]``.

schedules  primary   the unsketched comparison (table ``schedules_claim``: exact, no sketch, no seeds), against
                     N_eff for the paper's geometric decay and against N for the power decay to zero (q = 2a − 1),
                     both with theory −(b − 1)/a, on the upper half of the claim's N grid;
           window    raw R − σ² of every schedule at the largest M of the table against N (N_eff for the paper's
                     geometric decay), on the points where the sketch limits nothing: M ≥ margin·(Σγ_t)^(1/a);
                     theory only for those two schedules, finite-size theory from the sketched problem's
                     deterministic equivalent run through the same schedule (``_window_finite``).
batch      primary   the exact variance against its predictor min(M, (T_eff γ_B)^(1/a))/(B·T_eff), per step rule,
                     pooled over every (N, B) at the largest M where the rule's own step is used (not capped at the
                     stability bound) and M ≥ margin·(T_eff γ_B)^(1/a) (the sketch limits nothing); least squares
                     with a t-interval from the residual scatter, each N left out for the systematic range (theory
                     1: the variance is σ_M² times the predictor up to a constant; no extrapolation, this is not a
                     size limit);
           window    the critical batch size (largest B within 10 % of B = 1's R − σ²) against N, per step rule (no
                     theory: a growth rate, reported).
reuse      primary   E Approx against M (the M^(1−b) term of the multi-pass risk; exact, per sketch seed), with the
                     source experiment's finite-size theory and extrapolation (deterministic equivalent);
           montecarlo the Monte Carlo excess R − σ² − E Approx (the L term) against L at the largest M on
                     N ≥ margin·L^(b/a) and M ≥ margin·L^(1/a) (theory (1 − b)/a), and R − σ² against M at the largest L
                     on L ≥ margin·M^a (theory 1 − b), intervals from the Monte Carlo standard errors, beside the
                     exact one-pass engine on the same points (``theory_finite``: the L ≪ N limit).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from . import estimators as E
from .analysis import WINDOW_MARGIN, _finite_slope, _half_width, _mc_slope, _row
from .theory import sketch_approx_de, sketch_approx_de_far, sketched_modes_de

# every schedule row of a slice runs the same sketched problem's equivalent through its own schedule: build it once
_sketched_modes = functools.lru_cache(maxsize=8)(sketched_modes_de)

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
        extraps = {}
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
            extraps[kind] = extrap
            rows.append(_row(key, f"{against} [{label}]", "primary", "excess_limit", est,
                             _schedule_theory(kind, label, a, b, against), math.nan, extrap, "M", math.inf))
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
            theory = _schedule_theory(kind, label, a, b, against)
            finite = _window_finite(key, g, est, against) if math.isfinite(theory) and est.ok else math.nan
            # with a finite-size theory on the window, the row shares its primary's extrapolation (as the main
            # experiment's window rows do); without one, a window row is `consistent` or `disagrees`
            rows.append(_row(key, f"{against} [{label}]", "window", "reducible", est, theory, finite,
                             extraps.get(kind, {}) if math.isfinite(finite) else {}, "M", M))
    return rows


def _window_schedule(g: pd.DataFrame, a: float):
    """The Schedule objects behind one schedule's rows (its label and N_eff identify the spec and log base), or None
    for a spec the table cannot identify (a power decay with a q of its own; it then gets no finite-size theory)."""
    from .followups import make_schedule
    from .schedules import LOG_BASES

    gamma, kind, label = float(g["gamma"].iloc[0]), g["kind"].iloc[0], g["schedule"].iloc[0]
    Ns = sorted(int(n) for n in g["N"].unique())
    n_eff = g.groupby("N")["N_eff"].first().reindex(Ns).to_numpy(float)
    for log_base in LOG_BASES:
        spec = {"kind": kind, **({"log_base": log_base} if kind == "geometric" else {})}
        schedules = [make_schedule(gamma, N, spec, a) for N in Ns]
        if schedules[0].label == label and np.allclose([s.N_eff for s in schedules], n_eff, rtol=1e-12):
            return schedules
    return None


def _window_finite(key: dict, g: pd.DataFrame, est: E.Estimate, against: str) -> float:
    """The window row's finite-size theory: the deterministic equivalent of the sketched problem at the row's M
    (``theory.sketched_modes_de``: the sketched spectrum and initial profile, no sketch drawn) run through the same
    schedule, Approx + bias + variance, its slope on the estimate's window (as the main experiment's window rows)."""
    from .exact import ExactEngine
    from .followups import run_schedule_family

    a, b = key["a"], key["b"]
    schedules = _window_schedule(g, a)
    if schedules is None:
        return math.nan
    mu, p0, n, approx = _sketched_modes(key["spectrum"], a, int(g["M"].iloc[0]), None if b == a else b)
    engine = ExactEngine(mu, p0, float(g["sigma2"].iloc[0]), approx, multiplicity=n)
    runs = run_schedule_family(engine, schedules)
    x = [s.N_eff if against == "N_eff" else s.N for s in schedules]
    return _finite_slope(x, [approx + r.bias + r.variance for r in runs], est, False)


def batch_rows(table: pd.DataFrame, tables: dict) -> list[dict]:
    from .followups import critical_batch_size

    rows = []
    for key, df in _slices(table):
        # per (N, B, rule) at the largest M, averaged over sketch seeds (the predictor does not depend on the sketch)
        M = float(df["M"].max())
        mean = df[np.isclose(df["M"], M)].groupby(["N", "step_rule", "B"], as_index=False).agg(
            variance=("variance", "mean"), variance_predictor=("variance_predictor", "mean"),
            T_eff=("T_eff", "mean"), gamma_B=("gamma_B", "mean"), capped=("capped", "max"))
        for rule, g in mean.groupby("step_rule", sort=True):
            # the predictor's own regime: the rule's step (not the stability cap, where γ_B sits near the bound and
            # the ratio variance/predictor moves with it), and the branch where the sketch limits nothing, with the
            # margin of every window rule; pooled over N and B (at one N the linear rule's predictor hardly moves)
            k_star = (g["T_eff"] * g["gamma_B"]) ** (1.0 / key["a"])
            regime = g[~g["capped"].astype(bool) & (M >= WINDOW_MARGIN * k_star)]
            est = E.pooled_slope(regime["variance_predictor"], regime["variance"], regime["N"])
            if not est.ok:
                est.reason = (f"{est.n_points} (N, B) with an uncapped step and M >= {WINDOW_MARGIN:g}·"
                              f"(T_eff gamma_B)^(1/a) at M = {M:g} (need {E.MIN_POINTS})")
            # not a size limit: no extrapolation (the verdict is consistent or disagrees)
            rows.append(_row(key, f"variance_predictor [{rule}]", "primary", "variance", est, 1.0, math.nan, {},
                             "M", M))
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


def _approx_m_row(key: dict, dn: pd.DataFrame, variable: str) -> tuple[dict, dict]:
    """The primary M row of the reuse experiment: E Approx per sketch seed against M (the M^(1−b) term), with the
    finite-size theory and extrapolation the source experiment's M rows use (§13–§14: the deterministic equivalent
    on the window, and the estimate corrected by the equivalent's own convergence run to 256·M_max)."""
    a, b = key["a"], key["b"]
    approx = dn.groupby(["sketch_seed", "M"], as_index=False)["approx"].mean()
    est = E.curve_slope(approx, "M", "approx", seed="sketch_seed")
    Ms = np.unique(approx["M"].to_numpy(float))
    de = sketch_approx_de("power", a, Ms, b)
    finite = _finite_slope(Ms, de, est, False)
    far = E.extrapolate(*sketch_approx_de_far("power", a, Ms.max(), b))
    mean = approx.groupby("M")["approx"].mean().reindex(Ms).to_numpy()
    extrap = E.extrapolate(Ms, mean, theory_y=de, half_width=_half_width(est), convergence=(est.fitted, finite, far))
    return _row(key, variable, "primary", "approx", est, 1.0 - b, finite, extrap), extrap


def reuse_rows(table: pd.DataFrame, tables: dict) -> list[dict]:
    rows = []
    for key, df in _slices(table):
        a, b = key["a"], key["b"]
        for N, dn in df.groupby("N", sort=True):
            suffix = f" [N = {int(N)}]" if df["N"].nunique() > 1 else ""
            primary, extrap_m = _approx_m_row(key, dn, "M" + suffix)
            rows.append(primary)
            # M: the Monte Carlo R − σ² at the largest L, where the M term dominates: L ≥ margin·M^a (the sketch,
            # not the data, limits SGD), beside the exact one-pass engine on the same points
            L_top = float(dn["L"].max())
            top = dn[np.isclose(dn["L"], L_top) & (L_top >= WINDOW_MARGIN * dn["M"] ** a)]
            top = top.assign(reducible=lambda d: d["onepass_L_reducible"])  # the exact curve _mc_slope puts beside
            est, exact = _mc_slope(top, "M")
            if not est.ok:
                est.reason = f"{top['M'].nunique()} M with L = {L_top:g} >= {WINDOW_MARGIN:g}·M^a (need 2)"
            rows.append(_row(key, "M" + suffix, "montecarlo", "reducible_mc", est, 1.0 - b, exact, extrap_m,
                             "L", L_top))
            # L: the Monte Carlo excess R − σ² − E Approx (the L term) at the largest M, on the theory's range
            # L^(b/a) ≲ N with the margin of every window rule, N ≥ margin·L^(b/a), and M ≥ margin·L^(1/a) (the
            # sketch limits nothing), beside the one-pass excess
            M_top = float(dn["M"].max())
            curve = dn[np.isclose(dn["M"], M_top) & (dn["L"] <= (N / WINDOW_MARGIN) ** (a / b) * (1 + 1e-12))
                       & (M_top >= WINDOW_MARGIN * dn["L"] ** (1.0 / a))]
            curve = curve.assign(sigma2=curve["sigma2"] + curve["approx"],  # _mc_slope subtracts sigma2
                                 reducible=curve["onepass_L_reducible"] - curve["approx"])
            est, exact = _mc_slope(curve, "L")
            # no extrapolation: at fixed M the one-pass excess bends onto the sketch's floor as L grows, so its local
            # slopes head away from the L term's exponent, not towards it (the verdict is consistent or disagrees)
            rows.append(_row(key, "L" + suffix, "montecarlo", "excess_mc", est, (1.0 - b) / a, exact, {},
                             "M", M_top))
    return rows


ANALYSES = {"schedules": schedule_rows, "batch": batch_rows, "reuse": reuse_rows}
