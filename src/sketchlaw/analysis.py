"""From the workflow's tidy tables to the exponent table: window rules, bootstrap, systematic ranges, theory tests.

Every slope is measured on R − σ² (PAPER.md §8.6), averaged over sketch seeds, on a window fixed by a rule stated
before looking at the result, never tuned to theory. Each term of the theorem is measured where it dominates:
  N_eff-slope ("dominance" rule): at the largest M of the grid, the points where the approximation error is at most
      10 % of R − σ² (the exact engine reports it) and M ≥ 4·(N_eff γ)^(1/a) (the theorem's regime);
  M-slope ("dominance" rule): at the largest N of the grid, the points where the approximation error carries at
      least 90 % of R − σ² and N_eff γ ≥ 4·M^a.
  The "margin" rule keeps only the theorem's regime condition (without the 90 % dominance); it is reported too, as a
  second row, because it is the common practice — and shows the finite-size bias that the dominance rule avoids.
For the log power law the same dominance rule applies (no margin condition) on log-log-log axes.
theory_finite (M slopes): the slope that the deterministic equivalent of E Approx (theory.sketch_approx_de, exact
to < 1 % against the engine) has on the same window — the theorem at these finite sizes. Where it differs from the
asymptotic exponent (the log power law: cutoff M/log M; a source condition near b = a + 1: M^−a log M) the gap is
pre-asymptotic, not a failure of the simulation.
Joint fits (main, source with b <= a): additive, and the form chosen by held-out-corner extrapolation.
Compute-optimal frontier: M* and R* − σ² regressed on C/log C, N*/(log C)^(1/(a+1)) on C, as the theorem states them.
Uncertainty: a bootstrap over sketch seeds (statistical) and the spread of the slope over the other admissible
windows (systematic: the same rule at the other fixed M or N of the grid, and the window without its first or last
point). Exact curves carry almost no seed noise, so the systematic part usually dominates; the verdict says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import fit as F
from .errors import ParameterError
from .theory import exponents as theory_exponents
from .theory import frontier_coordinates, sketch_approx_de

COLUMNS = ["experiment", "spectrum", "a", "b", "variable", "fitted", "ci_low", "ci_high", "sys_low", "sys_high",
           "theory", "theory_finite", "p_value", "verdict", "window", "method", "n_points", "flag"]


def _mean_curve(df: pd.DataFrame, x: str) -> tuple[np.ndarray, np.ndarray]:
    g = df.groupby(x, sort=True)["reducible"].mean()
    return g.index.to_numpy(dtype=float), g.to_numpy()


def _transform(x: np.ndarray, log_of_log: bool) -> np.ndarray:
    return np.log(x) if log_of_log else x


def verdict(theory: float, lo: float, hi: float, sys_lo: float, sys_hi: float) -> str:
    if not np.isfinite(theory):
        return "no theory"
    if lo <= theory <= hi:
        return "consistent"
    if min(lo, sys_lo) <= theory <= max(hi, sys_hi):
        return "theory outside 95% CI, inside systematic range"
    return "theory outside 95% CI and systematic range"


DOMINANCE = 0.9  # a term is measured where it carries at least this share of R − σ²


def window_mask(df: pd.DataFrame, x: str, gamma: float, a: float, rule: str, spectrum: str) -> np.ndarray:
    """The window rules of the module docstring, on one curve (rows: one per grid point, seeds averaged)."""
    M, N_eff = df["M"].to_numpy(float), df["N_eff"].to_numpy(float)
    share = df["approx"].to_numpy() / df["reducible"].to_numpy()
    if x == "N_eff":
        regime = F.n_slope_window(M, N_eff, gamma, a) if spectrum == "power" else np.ones(len(df), bool)
        dominant = share <= 1 - DOMINANCE
    else:
        regime = F.m_slope_window(M, N_eff, gamma, a) if spectrum == "power" else np.ones(len(df), bool)
        dominant = share >= DOMINANCE
    return regime & dominant if rule == "dominance" else regime


def _seed_mean(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby(["M", "N"], as_index=False)[["N_eff", "approx", "reducible"]].mean()


def curve_slope(df: pd.DataFrame, x: str, fixed: str, gamma: float, a: float, n_boot: int, rule: str,
                spectrum: str = "power", log_of_log: bool = False, seed: int = 0) -> dict:
    """Slope of log(R − σ²) against log x (or log log x) on the rule's window at the largest value of ``fixed``.

    ``df`` holds one (a, b) slice with columns M, N, N_eff, approx, reducible, sketch_seed.
    """
    values = np.sort(df[fixed].unique())
    windows = {}
    for v in values:
        sub = df[df[fixed] == v]
        mean = _seed_mean(sub)
        keep_x = mean.loc[window_mask(mean, x, gamma, a, rule, spectrum), x].to_numpy()
        windows[v] = sub[sub[x].isin(keep_x)]
    main_value = values[-1]
    win = windows[main_value]

    def slope_of(rows):
        xs, ys = _mean_curve(rows, x)
        return F.loglog_slope(_transform(xs, log_of_log), ys)

    if win[x].nunique() < F.MIN_POINTS:
        return {"fitted": math.nan, "flag": "short-window",
                "window": f"{rule} rule, {fixed}={main_value:g}: {win[x].nunique()} points (need {F.MIN_POINTS})",
                "n_points": int(win[x].nunique())}
    est = slope_of(win)
    boot = F.bootstrap(win, slope_of, group_cols=["sketch_seed"], n_boot=n_boot, seed=seed) \
        if win["sketch_seed"].nunique() > 1 else None
    lo, hi = (boot.ci_low["slope"], boot.ci_high["slope"]) if boot else (math.nan, math.nan)
    std = float(boot.samples["slope"].std(ddof=1)) if boot else math.nan
    # Systematic: the same rule at every other fixed value with a long enough window, and the main window trimmed.
    alternatives = [w for w in windows.values() if w[x].nunique() >= F.MIN_POINTS]
    xs_main = np.sort(win[x].unique())
    if len(xs_main) > F.MIN_POINTS:
        alternatives += [win[win[x] > xs_main[0]], win[win[x] < xs_main[-1]]]
    sys_slopes = [s.slope for s in (slope_of(w) for w in alternatives) if s.ok]
    sys_lo, sys_hi = (min(sys_slopes), max(sys_slopes)) if sys_slopes else (est.slope, est.slope)
    return {"fitted": est.slope, "ci_low": lo, "ci_high": hi, "std": std, "sys_low": sys_lo, "sys_high": sys_hi,
            "window": f"{rule} rule, {fixed}={main_value:g}, {x} in [{xs_main[0]:.4g}, {xs_main[-1]:.4g}] "
                      f"({len(xs_main)} points)",
            "n_points": len(xs_main), "flag": est.flag, "bootstrap": boot, "x_window": xs_main}


def scaling_exponents(table: pd.DataFrame, n_boot: int, diagnostics: list) -> list[dict]:
    """Rows of the exponent table for a scaling experiment (main, source, logpower)."""
    rows = []
    for (experiment, spectrum, a, b), df in table.groupby(["experiment", "spectrum", "a", "b"], dropna=False,
                                                           sort=True):
        gamma = float(df["gamma"].iloc[0])
        logpower = spectrum == "logpower"
        kind = "logpower" if logpower else ("source" if experiment == "source" else "main")
        theory = theory_exponents(kind, a, None if logpower else b)
        for x, fixed in (("M", "N"), ("N_eff", "M")):
            variable = f"log_{x}" if logpower else x
            th = theory.get(variable, math.nan)
            for rule in ("dominance",) if logpower else ("dominance", "margin"):
                res = curve_slope(df, x, fixed, gamma, a, n_boot, rule, spectrum, log_of_log=logpower)
                if x == "M" and "x_window" in res:
                    res["theory_finite"] = finite_size_m_slope(spectrum, a, b if kind == "source" else None,
                                                               res["x_window"], logpower)
                rows.append(_row(experiment, spectrum, a, b, variable, res, th, f"window slope ({rule})"))
                if rule == "dominance":
                    _diagnose_curve(diagnostics, df, experiment, a, b, variable, x, fixed, res, logpower)
    return rows


def finite_size_m_slope(spectrum: str, a: float, b, Ms, log_of_log: bool) -> float:
    """The slope the deterministic equivalent of E Approx (``theory.sketch_approx_de``) has on the same M window:
    what the theorem's rate looks like at these finite sizes (reported beside the asymptotic exponent)."""
    Ms = np.asarray(Ms, dtype=float)
    return F.loglog_slope(_transform(Ms, log_of_log), sketch_approx_de(spectrum, a, Ms, b)).slope


def _row(experiment, spectrum, a, b, variable, res, theory, method):
    std = res.get("std", math.nan)
    fitted = res.get("fitted", math.nan)
    p = math.nan
    if np.isfinite(theory) and np.isfinite(std) and std > 0:
        p = F.theory_test(fitted, theory, std=std).p_value
    lo, hi = res.get("ci_low", math.nan), res.get("ci_high", math.nan)
    slo, shi = res.get("sys_low", math.nan), res.get("sys_high", math.nan)
    return {"experiment": experiment, "spectrum": spectrum, "a": a, "b": b, "variable": variable,
            "fitted": fitted, "ci_low": lo, "ci_high": hi, "sys_low": slo, "sys_high": shi, "theory": theory,
            "theory_finite": res.get("theory_finite", math.nan),
            "p_value": p, "verdict": verdict(theory, lo, hi, slo, shi) if np.isfinite(fitted) else "not fitted",
            "window": res.get("window", ""), "method": method, "n_points": res.get("n_points", 0),
            "flag": res.get("flag", "")}


def _diagnose_curve(diag, df, experiment, a, b, variable, x, fixed, res, logpower):
    base = {"experiment": experiment, "a": a, "b": b, "variable": variable}
    for v, sub in df.groupby(fixed):
        xs, ys = _mean_curve(sub, x)
        ok = ys > 0
        if ok.sum() >= 2:
            sx, sl = F.local_slopes(_transform(xs[ok], logpower), ys[ok])
            diag += [{**base, "kind": "local_slope", "fixed": float(v), "x": float(u), "value": float(s)}
                     for u, s in zip(np.exp(sx) if logpower else sx, sl)]
    boot = res.get("bootstrap")
    if boot is not None:
        diag += [{**base, "kind": "bootstrap", "fixed": math.nan, "x": float(i), "value": float(s)}
                 for i, s in enumerate(boot.samples["slope"].to_numpy()) if np.isfinite(s)]
    main = df[df[fixed] == df[fixed].max()]
    xs, ys = _mean_curve(main, x)
    ok = ys > 0
    if ok.sum() >= F.MIN_POINTS:
        ws = F.window_sensitivity(_transform(xs[ok], logpower), ys[ok], _transform(xs[ok][:-2], logpower))
        diag += [{**base, "kind": "window_start", "fixed": float(main[fixed].iloc[0]),
                  "x": float(np.exp(r.start) if logpower else r.start), "value": float(r.slope)}
                 for r in ws.itertuples() if np.isfinite(r.slope)]


def joint_exponents(table: pd.DataFrame, n_boot: int, diagnostics: list) -> tuple[list[dict], list[dict]]:
    """Joint fits of R = σ² + (A·M^-p ⊕ B·N_eff^-q) per a (main experiment), with a bootstrap over sketch seeds.

    Two forms are reported: the additive one (the issue's prescribed form, biased when the crossover is wide) and
    the form that extrapolates best to the held-out large-(M, N) corner (``fit.compare_forms``; chosen by that
    rule, stated here, before any exponent is compared with theory). Returns (exponent rows, form-comparison rows).
    """
    rows, forms = [], []
    for (experiment, spectrum, a, b), df in table.groupby(["experiment", "spectrum", "a", "b"], sort=True):
        sigma2 = float(df["sigma2"].iloc[0])
        mean = df.groupby(["M", "N_eff"], as_index=False)["risk"].mean()
        theory = theory_exponents(experiment, a, b)
        try:
            comp = F.compare_forms(mean["M"], mean["N_eff"], mean["risk"], E=sigma2)
        except ParameterError as err:  # a grid too small for a joint fit: say so in the table, do not fail
            for variable in ("M", "N_eff"):
                rows.append(_row(experiment, spectrum, a, b, variable,
                                 {"fitted": math.nan, "flag": "too-few-points", "window": str(err),
                                  "n_points": len(mean)}, theory.get(variable, math.nan), "joint additive fit"))
            continue
        for r in comp.table.to_dict("records"):
            forms.append({"experiment": experiment, "a": a, **r, "best": r.get("form") == comp.best})
        for form in dict.fromkeys(("additive", comp.best)):
            est = F.fit_joint(mean["M"], mean["N_eff"], mean["risk"], E=sigma2, form=form)
            boot = F.bootstrap(df, _seed_multiset_fit(form, sigma2, (est.p, est.q)), group_cols=["sketch_seed"],
                               n_boot=n_boot, seed=1)
            # Systematic: the same fit without the smallest M, or without the smallest N (the most pre-asymptotic).
            subgrids = [mean[mean["M"] > mean["M"].min()], mean[mean["N_eff"] > mean["N_eff"].min()]]
            alts = [F.fit_joint(g["M"], g["N_eff"], g["risk"], E=sigma2, form=form, starts=[(est.p, est.q)])
                    for g in subgrids]
            label = "joint additive fit" if form == "additive" else f"joint {form} fit (best held-out form)"
            extra = f", k={est.k:.3g}" if form == "power_mean" else ""
            for par, variable, th in (("p", "M", theory["M"]), ("q", "N_eff", theory.get("N_eff", math.nan))):
                samples = -boot.samples[par]
                res = {"fitted": -getattr(est, par), "ci_low": float(np.nanpercentile(samples, 2.5)),
                       "ci_high": float(np.nanpercentile(samples, 97.5)), "std": float(samples.std(ddof=1)),
                       "window": f"all {len(mean)} grid points, E fixed to sigma2{extra}, "
                                 f"corr(p,q)={boot.corr_pq:.2f}",
                       "n_points": len(mean), "flag": ",".join(est.flags)}
                sys_values = [-getattr(f, par) for f in [est, *alts]]
                res["sys_low"], res["sys_high"] = min(sys_values), max(sys_values)
                rows.append(_row(experiment, spectrum, a, b, variable, res, th, label))
            if form == comp.best and experiment == "main":
                pred = est.predict(mean["M"], mean["N_eff"])
                diagnostics += [{"experiment": experiment, "a": a, "b": b, "variable": "joint", "kind": "residual",
                                 "fixed": float(m), "x": float(n), "value": float(np.log(r) - np.log(p))}
                                for m, n, r, p in zip(mean["M"], mean["N_eff"], mean["risk"], pred)]
    return rows, forms


def _seed_multiset_fit(form: str, sigma2: float, start: tuple[float, float]):
    """A bootstrap refit that depends only on which seeds were drawn how often (a resample of 3 seeds is one of
    10 multisets), so each distinct resample is fitted once however many times it is drawn."""
    cache = {}

    def fit(rows: pd.DataFrame):
        key = tuple(sorted(rows.groupby("sketch_seed").size().items()))
        if key not in cache:
            m = rows.groupby(["M", "N_eff"], as_index=False)["risk"].mean()
            cache[key] = F.fit_joint(m["M"], m["N_eff"], m["risk"], E=sigma2, form=form, starts=[start])
        return cache[key]

    return fit


def compute_frontier(table: pd.DataFrame) -> pd.DataFrame:
    """Best M per compute budget C = M·N (mean over seeds), refined by a parabola in log M through the grid minimum
    and its neighbours (the grid is log-spaced, so this interpolates between grid points)."""
    out = []
    for a, df in table.groupby("a", sort=True):
        sigma2 = float(df["sigma2"].iloc[0])
        for C, dc in df.groupby("compute", sort=True):
            m = dc.groupby("M", as_index=False)["risk"].mean().sort_values("M")
            lm, lr = np.log(m["M"].to_numpy(float)), np.log(m["risk"].to_numpy() - sigma2)
            i = int(np.argmin(lr))
            interior = 0 < i < len(lm) - 1
            if interior:
                c2, c1, c0 = np.polyfit(lm[i - 1:i + 2], lr[i - 1:i + 2], 2)
                x = -c1 / (2 * c2) if c2 > 0 else lm[i]
                best_l, best_r = x, np.exp(np.polyval([c2, c1, c0], x))
            else:
                best_l, best_r = lm[i], np.exp(lr[i])
            out.append({"a": a, "compute": float(C), "M_star": float(np.exp(best_l)),
                        "N_star": float(C / np.exp(best_l)), "reducible_star": float(best_r),
                        "M_grid_best": float(m["M"].iloc[i]), "interior": bool(interior)})
    return pd.DataFrame(out)


def compute_exponents(frontier: pd.DataFrame, n_boot: int) -> list[dict]:
    rows = []
    for a, df in frontier.groupby("a", sort=True):
        df = df[df["interior"]]
        theory = theory_exponents("compute", a)
        for variable in ("M_star", "N_star", "reducible_star"):
            # regressed in the theorem's own coordinates (theory.frontier_coordinates: C/log C, log factors)
            def slope_of(r, variable=variable, a=a):
                x, factor = frontier_coordinates(variable, a, r["compute"])
                return F.loglog_slope(x, r[variable].to_numpy(float) / factor)

            if len(df) < F.MIN_POINTS:
                rows.append(_row("compute", "power", a, a, variable,
                                 {"fitted": math.nan, "flag": "short-window",
                                  "window": f"{len(df)} budgets with an interior optimum"}, theory[variable],
                                 "frontier slope"))
                continue
            est = slope_of(df)
            boot = F.bootstrap(df, slope_of, n_boot=n_boot, seed=2)
            res = {"fitted": est.slope, "ci_low": boot.ci_low["slope"], "ci_high": boot.ci_high["slope"],
                   "std": float(boot.samples["slope"].std(ddof=1)), "sys_low": math.nan, "sys_high": math.nan,
                   "window": f"C in [{df['compute'].min():.3g}, {df['compute'].max():.3g}] ({len(df)} budgets "
                             f"with an interior optimum); slope against "
                             + ("C, of N*/(log C)^(1/(a+1)) (the theorem's log factor)" if variable == "N_star"
                                else "C/log C (the theorem's log factor)"),
                   "n_points": len(df), "flag": est.flag}
            # Systematic: drop the smallest or the largest budget.
            alts = [slope_of(df.iloc[1:]), slope_of(df.iloc[:-1])] if len(df) > F.MIN_POINTS else []
            alts = [s.slope for s in alts if s.ok]
            res["sys_low"], res["sys_high"] = (min(alts + [est.slope]), max(alts + [est.slope]))
            rows.append(_row("compute", "power", a, a, variable, res, theory[variable], "frontier slope"))
    return rows


EXPONENT_MD_COLUMNS = ["experiment", "a", "b", "variable", "fitted", "ci_low", "ci_high", "sys_low", "sys_high",
                       "theory", "theory_finite", "verdict", "method"]


def markdown(df: pd.DataFrame, columns=EXPONENT_MD_COLUMNS) -> str:
    """A table as Markdown (numbers to 4 significant digits for reading; the CSV keeps full precision)."""
    cols = list(df.columns) if columns is None else columns
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    lines = []
    for r in df[cols].itertuples(index=False):
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
