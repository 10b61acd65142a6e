"""From the workflow's tidy tables to the typed exponent table (columns: docs/METHODS.md §15; rules: §13, §14).

One `primary` row per theorem exponent, on a quantity only an exact engine gives:
  M slopes      E Approx of each sketch against M (the theorem's M term), per seed, upper half of the M grid;
  N_eff slopes  bias + variance of the M = ∞ limit (``limit`` tables) against N_eff, upper half of the N grid
                (at finite M the sketch truncates the spectrum near M, so no finite-M window shows the theorem's
                N_eff term);
  compute       the compute-optimal frontier regressed in the theorem's coordinates.
Secondary rows: `window` (raw R − σ² at the largest held-fixed value, on the theorem's regime: what the paper's
figure shows) and `montecarlo` (Monte Carlo R − σ² on its sub-grid, beside the exact engine on the same points).
Joint surface fits are a comparison of functional forms, reported in their own table (``joint_forms``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import estimators as E
from . import fit as F
from .errors import ParameterError
from .theory import exponents as theory_exponents
from .theory import frontier_coordinates, sketch_approx_de, sketch_approx_de_far

COLUMNS = ["experiment", "spectrum", "a", "b", "variable", "estimator", "quantity", "fixed_variable", "fixed_value",
           "x_lo", "x_hi", "n_points", "n_seeds", "fitted", "intercept", "ci_low", "ci_high", "sys_low", "sys_high",
           "theory", "theory_finite", "extrapolated", "extrapolated_low", "extrapolated_high", "verdict", "reason"]
FORM_COLUMNS = ["experiment", "a", "b", "form", "p", "q", "k", "rms_log_heldout", "rms_log_train", "n_params",
                "n_train", "n_heldout", "best", "flags"]
ESTIMATORS = ("primary", "window", "montecarlo")
WINDOW_MARGIN = F.WINDOW_MARGIN  # the theorem's regime: M ≥ margin·k* (N_eff slopes), k* ≥ margin^(1/a)·M (M slopes)


def _row(key: dict, variable, estimator, quantity, est: E.Estimate, theory, theory_finite, extrap,
         fixed_variable="", fixed_value=math.nan) -> dict:
    row = {**key, "variable": variable, "estimator": estimator, "quantity": quantity,
           "fixed_variable": fixed_variable, "fixed_value": fixed_value, **est.columns(), "theory": theory,
           "theory_finite": theory_finite}
    row.update({k: extrap.get(k, math.nan) for k in ("extrapolated", "extrapolated_low", "extrapolated_high")})
    row["verdict"] = E.verdict(est, theory, theory_finite, extrap)
    return row


def _finite_slope(x, y, est: E.Estimate, log_of_log: bool) -> float:
    """Slope of a finite-size theory curve (x, y) on the estimate's window."""
    if not est.ok:
        return math.nan
    x, y = np.asarray(x, float), np.asarray(y, float)
    sel = est.in_window(x)
    return E.line(np.log(x[sel]) if log_of_log else x[sel], y[sel])[0]


def _half_width(est: E.Estimate) -> float:
    return 0.5 * (est.ci_high - est.ci_low) if math.isfinite(est.ci_low) else 0.0


def scaling_rows(table: pd.DataFrame, limit: pd.DataFrame | None, diagnostics: list) -> list[dict]:
    """Primary, window rows for a scaling experiment (main, source, logpower); one (a, b) slice at a time."""
    rows = []
    for (experiment, spectrum, a, b), df in table.groupby(["experiment", "spectrum", "a", "b"], sort=True,
                                                           dropna=False):
        logpower = spectrum == "logpower"
        kind = "logpower" if logpower else ("source" if experiment == "source" else "main")
        prior_b = b if kind == "source" else None
        theory = theory_exponents(kind, a, None if logpower else b)
        key = {"experiment": experiment, "spectrum": spectrum, "a": a, "b": b}
        var_m, var_n = ("log_M", "log_N_eff") if logpower else ("M", "N_eff")
        gamma = float(df["gamma"].iloc[0])

        # M: E Approx per sketch, against M.
        approx = df.groupby(["sketch_seed", "M"], as_index=False)["approx"].mean()
        est_m = E.curve_slope(approx, "M", "approx", seed="sketch_seed", log_of_log=logpower)
        Ms = np.unique(approx["M"].to_numpy(float))
        de_approx = sketch_approx_de(spectrum, a, Ms, prior_b)
        mean_approx = approx.groupby("M")["approx"].mean().reindex(Ms).to_numpy()
        finite_m = _finite_slope(Ms, de_approx, est_m, logpower)
        far_m = E.extrapolate(*sketch_approx_de_far(spectrum, a, Ms.max(), prior_b), logpower,
                              log_corrections=logpower)
        extrap_m = E.extrapolate(Ms, mean_approx, logpower, theory_y=de_approx, half_width=_half_width(est_m),
                                 convergence=(est_m.fitted, finite_m, far_m))
        rows.append(_row(key, var_m, "primary", "approx", est_m, theory.get(var_m, math.nan), finite_m, extrap_m))
        _diagnose_local(diagnostics, key, var_m, "primary", Ms, mean_approx, logpower, de_approx)

        # N_eff: the M = ∞ limit's bias + variance, against N_eff.
        extrap_n = {}
        lim_b = a if not np.isfinite(b) else b  # the log power law's isotropic prior is run with b = a
        lim = None if limit is None else limit[(limit["spectrum"] == spectrum) & np.isclose(limit["a"], a)
                                               & np.isclose(limit["b"], lim_b)]
        de = None if lim is None else lim[lim["model"] == "deterministic_equivalent"].sort_values("N_eff")
        far = None if lim is None else lim[lim["model"] == "limit_far"].sort_values("N_eff")
        lim = None if lim is None else lim[lim["model"] == "limit"]
        if lim is None or lim.empty:
            est_n = E.Estimate(reason="no M = inf limit table")
        else:
            lim = lim.sort_values("N_eff")
            est_n = E.curve_slope(lim, "N_eff", "excess", log_of_log=logpower)
            reach = lim if far is None or len(far) < 2 else pd.concat([lim.tail(1), far])  # grid's end + far grid
            extrap_n = E.extrapolate(reach["N_eff"], reach["excess"], logpower, log_corrections=True)
            _diagnose_local(diagnostics, key, var_n, "primary", lim["N_eff"], lim["excess"], logpower)
        rows.append(_row(key, var_n, "primary", "excess_limit", est_n, theory.get(var_n, math.nan), math.nan,
                         extrap_n, "M", math.inf))

        # Window slopes of the raw R − σ² at the largest held-fixed value, in the theorem's regime.
        for x, fixed, variable, extrap in (("M", "N", var_m, extrap_m), ("N_eff", "M", var_n, extrap_n)):
            value = float(df[fixed].max())
            curve = df[np.isclose(df[fixed], value)]
            regime = _regime(curve, x, gamma, a, spectrum)
            window = np.unique(curve.loc[regime, x].to_numpy(float))
            if len(window) < E.MIN_POINTS:
                est = E.Estimate(n_points=len(window), reason=f"{len(window)} {x} value(s) in the theorem's regime "
                                                              f"at {fixed} = {value:g} (need {E.MIN_POINTS})")
            else:
                est = E.curve_slope(curve, x, "reducible", seed="sketch_seed", window=window, log_of_log=logpower)
            if x == "M":
                finite = _finite_slope(Ms, de_approx, est, logpower)
            elif de is not None and len(de) and np.isclose(de["M"].iloc[0], value):
                finite = _finite_slope(de["N_eff"], de["approx"] + de["excess"], est, logpower)
            else:
                finite = math.nan
            rows.append(_row(key, variable, "window", "reducible", est, theory.get(variable, math.nan), finite,
                             extrap, fixed, value))
            _diagnose_curves(diagnostics, key, variable, df, x, fixed, logpower)
            _diagnose_window(diagnostics, key, variable, curve, x, window, est, logpower)
    return rows


def _regime(curve: pd.DataFrame, x: str, gamma: float, a: float, spectrum: str) -> np.ndarray:
    if spectrum != "power":
        return np.ones(len(curve), bool)
    M, N_eff = curve["M"].to_numpy(float), curve["N_eff"].to_numpy(float)
    if x == "N_eff":
        return F.n_slope_window(M, N_eff, gamma, a, WINDOW_MARGIN)
    return F.m_slope_window(M, N_eff, gamma, a, WINDOW_MARGIN)


def montecarlo_rows(table: pd.DataFrame, exponent_rows: list[dict]) -> list[dict]:
    """Monte Carlo slopes (N_eff at the largest MC M, M at the largest MC N) with 95 % intervals from the Monte
    Carlo standard errors (delta method), beside the exact engine's slope on the same points (theory_finite)."""
    rows = []
    mc = table[table["mc_trials"] > 0]
    for (experiment, spectrum, a, b), df in mc.groupby(["experiment", "spectrum", "a", "b"], sort=True):
        key = {"experiment": experiment, "spectrum": spectrum, "a": a, "b": b}
        theory = theory_exponents("main", a, b)
        for x, fixed in (("N_eff", "M"), ("M", "N")):
            value = float(df[fixed].max())
            curve = df[np.isclose(df[fixed], value)]
            est, exact = _mc_slope(curve, x)
            primary = next((r for r in exponent_rows if r["estimator"] == "primary" and r["variable"] == x
                            and all(r[k] == v for k, v in key.items())), {})
            rows.append(_row(key, x, "montecarlo", "reducible_mc", est, theory.get(x, math.nan), exact, primary,
                             fixed, value))
    return rows


def _mc_slope(curve: pd.DataFrame, x: str) -> tuple[E.Estimate, float]:
    sigma2 = curve["sigma2"].to_numpy(float)
    g = curve.assign(mc_red=curve["mc_mean"] - sigma2, mc_var=curve["mc_sem"] ** 2).groupby(x)
    pts = pd.DataFrame({"mc": g["mc_red"].mean(), "var": g["mc_var"].sum() / g.size() ** 2,
                        "exact": g["reducible"].mean(), "seeds": g.size()})
    pts = pts[pts["mc"] > 0]
    if len(pts) < 2:
        return E.Estimate(n_points=len(pts), reason=f"{len(pts)} Monte Carlo point(s) with R > sigma2 (need 2)"), \
            math.nan
    lx = np.log(pts.index.to_numpy(float))
    c = (lx - lx.mean()) / np.sum((lx - lx.mean()) ** 2)  # slope = Σ c_i log y_i
    slope, intercept = E.line(pts.index, pts["mc"])
    se = math.sqrt(float(np.sum(c**2 * pts["var"] / pts["mc"] ** 2)))
    half = 1.959963984540054 * se
    est = E.Estimate(fitted=slope, intercept=intercept, ci_low=slope - half, ci_high=slope + half,
                     x_lo=float(pts.index.min()), x_hi=float(pts.index.max()), n_points=len(pts),
                     n_seeds=int(pts["seeds"].min()))
    return est, E.line(pts.index, pts["exact"])[0]


def joint_forms(table: pd.DataFrame) -> list[dict]:
    """The comparison of joint functional forms R = σ² + A·M^-p ⊕ B·N_eff^-q by held-out-corner extrapolation
    (its own table: a form chosen this way is not a safe primary estimate of an exponent)."""
    out = []
    for (experiment, a, b), df in table.groupby(["experiment", "a", "b"], sort=True):
        if b > a:
            continue
        sigma2 = float(df["sigma2"].iloc[0])
        mean = df.groupby(["M", "N_eff"], as_index=False)["risk"].mean()
        try:
            comp = F.compare_forms(mean["M"], mean["N_eff"], mean["risk"], E=sigma2)
        except ParameterError:  # a grid too small for a joint fit: no comparison
            continue
        for r in comp.table.to_dict("records"):
            out.append({"experiment": experiment, "a": a, "b": b, **{k: r.get(k) for k in FORM_COLUMNS[3:-2]},
                        "best": r["form"] == comp.best, "flags": r.get("flags", "")})
    return out


FRONTIER_METHODS = ("parabola", "quadratic", "spline")  # the first is the primary; the others are its systematic


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
        from scipy.interpolate import CubicSpline

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
    return pd.DataFrame(out, columns=["a", "compute", "M_star", "N_star", "reducible_star", "M_grid_best",
                                      "interior"])


def _frontier_curve(frontier: pd.DataFrame, a: float, variable: str) -> pd.DataFrame:
    """(C, X, y) of one frontier variable in the theorem's coordinates, budgets with an interior optimum."""
    df = frontier[np.isclose(frontier["a"], a) & frontier["interior"]].sort_values("compute")
    X, factor = frontier_coordinates(variable, a, df["compute"].to_numpy(float))
    return pd.DataFrame({"C": df["compute"].to_numpy(float), "x": X, "y": df[variable].to_numpy(float) / factor})


def compute_rows(frontiers: dict, diagnostics: list) -> list[dict]:
    """Frontier slopes in the theorem's coordinates (theory.frontier_coordinates), budgets with an interior optimum.

    ``frontiers`` maps each of FRONTIER_METHODS to its frontier; the primary is the parabola's. The other methods'
    slopes join the systematic range, and their extrapolations the extrapolation interval: the frontier's
    discretization error is part of both."""
    rows = []
    primary = frontiers[FRONTIER_METHODS[0]]
    for a in sorted(primary["a"].unique()):
        theory = theory_exponents("compute", a)
        key = {"experiment": "compute", "spectrum": "power", "a": a, "b": a}
        for variable in ("M_star", "N_star", "reducible_star"):
            curves = {m: _frontier_curve(f, a, variable) for m, f in frontiers.items()}
            curve = curves[FRONTIER_METHODS[0]]
            est = E.curve_slope(curve, "x", "y")
            extrap = E.extrapolate(curve["x"], curve["y"]) if len(curve) >= 4 else {}
            if est.ok:
                alts = [E.curve_slope(c, "x", "y", window=[x for x in _window_values(curve, est) if x in set(c["x"])])
                        for m, c in curves.items() if m != FRONTIER_METHODS[0]]
                alts = [x.fitted for x in alts if x.ok]
                est.sys_low, est.sys_high = min([est.sys_low, *alts]), max([est.sys_high, *alts])
                extrap = _widen(extrap, [E.extrapolate(c["x"], c["y"]) for m, c in curves.items()
                                         if m != FRONTIER_METHODS[0] and len(c) >= 4])
                sel = curve[est.in_window(curve["x"])]
                est.x_lo, est.x_hi = float(sel["C"].min()), float(sel["C"].max())  # the window in budgets C
            rows.append(_row(key, variable, "primary", "frontier", est, theory[variable], math.nan, extrap))
            if len(curve) >= 2:
                _diagnose_local(diagnostics, key, variable, "primary", curve["x"], curve["y"], False)
    return rows


def _window_values(curve: pd.DataFrame, est: E.Estimate) -> list[float]:
    x = curve["x"].to_numpy(float)
    return list(x[est.in_window(x)])


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


def _diagnose_local(diag, key, variable, estimator, x, y, logpower, theory_y=None):
    """Local slopes of a curve at the geometric midpoints of its grid (and of its finite-size theory)."""
    for kind, ys in (("local_slope_" + estimator, y), ("local_slope_theory_finite", theory_y)):
        if ys is None:
            continue
        xm, s = E.local_slopes(x, ys, logpower)
        diag += [{**key, "variable": variable, "kind": kind, "fixed": math.nan, "x": float(u), "value": float(v)}
                 for u, v in zip(xm, s)]


def _diagnose_window(diag, key, variable, curve, x, window, est: E.Estimate, logpower):
    """The window slope as its start moves up the window (a drift means a crossover, not the asymptote), and the
    per-seed slopes behind its t-interval."""
    if not est.ok:
        return
    mean = curve.groupby(x)["reducible"].mean()
    for start in window[:-2]:
        xs = mean.index[(mean.index >= start) & (mean.index <= window[-1])]
        slope = E.line(np.log(xs) if logpower else xs, mean.loc[xs].to_numpy())[0]
        diag.append({**key, "variable": variable, "kind": "window_start", "fixed": math.nan, "x": float(start),
                     "value": slope})
    diag += [{**key, "variable": variable, "kind": "seed_slope", "fixed": math.nan, "x": float(i), "value": float(v)}
             for i, v in enumerate(est.extra.get("seed_slopes", []))]


def _diagnose_curves(diag, key, variable, df, x, fixed, logpower):
    """Local slopes of the raw R − σ² (seed mean) at every held-fixed value: how each curve approaches its slope."""
    for v, sub in df.groupby(fixed):
        curve = sub.groupby(x)["reducible"].mean()
        xm, s = E.local_slopes(curve.index, curve.to_numpy(), logpower)
        diag += [{**key, "variable": variable, "kind": "local_slope", "fixed": float(v), "x": float(u),
                  "value": float(w)} for u, w in zip(xm, s)]


def exponent_table(tables: dict, limits: dict, analyses: dict) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                        pd.DataFrame, pd.DataFrame]:
    """All analyses of the enabled experiments: (exponents, joint forms, compute frontier, diagnostics).

    ``analyses`` maps an experiment name to the analyses the experiment registry gives it; ``tables`` may also
    hold auxiliary tables (e.g. ``schedules_claim``), which the follow-ups' rows read (``sketchlaw.followup_fits``).
    """
    rows, forms, diagnostics = [], [], []
    frontier = compute_frontier(pd.DataFrame(columns=["a", "compute", "M", "risk", "sigma2"]))
    for name, table in tables.items():
        todo = analyses.get(name, ())
        if "scaling" in todo:
            scaling = scaling_rows(table, limits.get(name), diagnostics)
            rows += scaling
            if "montecarlo" in todo and (table.get("mc_trials", pd.Series(dtype=int)) > 0).any():
                rows += montecarlo_rows(table, scaling)
        if "joint" in todo:
            forms += joint_forms(table)
        if "compute" in todo:
            frontiers = {method: compute_frontier(table, method) for method in FRONTIER_METHODS}
            frontier = frontiers[FRONTIER_METHODS[0]]
            rows += compute_rows(frontiers, diagnostics)
        from .followup_fits import ANALYSES as FOLLOWUP_ANALYSES  # it imports this module: imported here

        for analysis in todo:
            if analysis in FOLLOWUP_ANALYSES and len(table):
                rows += FOLLOWUP_ANALYSES[analysis](table, tables)
    exponents = pd.DataFrame(rows, columns=COLUMNS)
    if exponents.duplicated(["experiment", "spectrum", "a", "b", "variable", "estimator"]).any():
        raise AssertionError("duplicate exponent rows")
    diag = pd.DataFrame(diagnostics, columns=["experiment", "spectrum", "a", "b", "variable", "kind", "fixed", "x",
                                              "value"])
    return exponents, pd.DataFrame(forms, columns=FORM_COLUMNS), frontier, diag


MARKDOWN_COLUMNS = ["experiment", "a", "b", "variable", "estimator", "fitted", "ci_low", "ci_high", "sys_low",
                    "sys_high", "theory", "theory_finite", "extrapolated", "verdict"]


def markdown(df: pd.DataFrame, columns=MARKDOWN_COLUMNS) -> str:
    """A table as Markdown (numbers to 4 significant digits for reading; the CSV keeps full precision)."""
    cols = list(df.columns) if columns is None else columns
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    lines = []
    for r in df[cols].itertuples(index=False):
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
