"""Slope estimators with honest intervals, extrapolation to infinite size, and verdicts (docs/METHODS.md §13, §14).

Every rule here is fixed before any comparison with theory and is the same for every a and b:
  window       the upper half of a grid: x ≥ √(x_min·x_max), at least MIN_POINTS points (else the MIN_POINTS largest);
  estimate     least-squares slope of log y on log X (X = x, or log x for the log power law), fitted per sketch
               seed, averaged over seeds; deterministic curves (no seeds) are fitted once;
  interval     t-interval over seeds: mean ± t_{n−1, 0.975}·sd/√n (a bootstrap over three seeds under-covers);
  systematic   the same fit on the window shifted down by one grid point and on the window without its first or
               without its last point;
  extrapolated local slopes between neighbouring grid points, fitted by correction models s∞ + c·x^−ω (ω free),
               s∞ + c/log x, s∞ + c·x^−ω with ω taken from the finite-size theory's own local slopes, and (the
               headline where a finite-size theory exists: the M rows) the estimate shifted by that theory's own
               computed distance to its limit, the theory being run far beyond the grid; the interval spans every
               model that fits and the headline ± its t-interval from the residual scatter of the local slopes, widened
               by the statistical half-width (at least SLOPE_RESOLUTION). For the N_eff
               rows the curve is the exact M = ∞ limit run far beyond the grid (to N = 10^56), so the slopes fitted
               are already close to their limit. For the log power law λ_i = 1/(i log^a i) the data and the
               sketch cut the spectrum at k* ≈ T/log^a T (not T), so log k* = log T − a·log log T and the local
               slope against log log T is −(a − 1)(1 − a/log T)/(1 − a·log log T/log T) = −(a − 1)·(1 +
               a·(log log T − 1)/log T + …): its own correction forms s∞ + c·log log x/log x and
               s∞ + c₁·log log x/log x + c₂/log x are fitted too, the second is the headline, and the interval
               holds the headline ± its distance to the first (a bound on the next order). Only for far curves (the
               N_eff limit, the M rows' far equivalent): over a grid of a few octaves they are not determined.
               The models are refitted on one local slope fewer and one more (their values join the interval), and
               where the local slopes' steps grow within that widest window the interval reaches the last slope.
  verdict      a finite-size theory counts as agreeing within the total interval, never less than FINITE_AGREEMENT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special

MIN_POINTS = 3
LEVEL = 0.95
EXTRAPOLATION_POINTS = 4   # the largest local slopes a correction model is fitted on
# |estimate − finite-size theory| always allowed: the finite-size theories are approximations of the system measured
# (deterministic equivalents of a drawn sketch, the one-pass engine beside multi-pass SGD), whose slopes differ from
# the measured ones by a few 0.001 at the sizes run even where the seeds agree far more tightly than that
FINITE_AGREEMENT = 0.01
SLOPE_RESOLUTION = 1e-4    # the numerical resolution of an exact curve's local slopes (tests/test_limit.py)
VERDICTS = ("consistent", "pre-asymptotic", "disagrees", "not fitted", "no theory")


@dataclass
class Estimate:
    """One slope with its window, intervals and the reason when it could not be fitted."""

    fitted: float = math.nan
    intercept: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    sys_low: float = math.nan
    sys_high: float = math.nan
    x_lo: float = math.nan
    x_hi: float = math.nan
    n_points: int = 0
    n_seeds: int = 0
    reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.reason and math.isfinite(self.fitted)

    def in_window(self, x) -> np.ndarray:
        """Mask of the values of x inside the fitted window [x_lo, x_hi] (relative slack for round-off)."""
        x = np.asarray(x, dtype=float)
        return (x >= self.x_lo * (1 - 1e-12)) & (x <= self.x_hi * (1 + 1e-12))

    def columns(self) -> dict:
        return {k: getattr(self, k) for k in ("fitted", "intercept", "ci_low", "ci_high", "sys_low", "sys_high",
                                              "x_lo", "x_hi", "n_points", "n_seeds", "reason")}


def upper_half(xs) -> np.ndarray:
    """The window rule: grid values x ≥ √(x_min·x_max); at least MIN_POINTS of them (else the largest MIN_POINTS)."""
    xs = np.unique(np.asarray(xs, dtype=float))
    if len(xs) < MIN_POINTS:
        return xs
    keep = xs[xs >= math.sqrt(xs[0] * xs[-1]) * (1 - 1e-12)]
    return keep if len(keep) >= MIN_POINTS else xs[-MIN_POINTS:]


def line(x, y) -> tuple[float, float]:
    """Least-squares (slope, intercept) of log y on log x; NaN when fewer than 2 usable points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(np.log(x[ok])) == 0:
        return math.nan, math.nan
    slope, intercept = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(slope), float(intercept)


def t_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high) of a t-interval for the mean of independent values; NaN bounds for fewer than 2."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(special.stdtrit(len(v) - 1, 0.5 + level / 2) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def _transformed(x, log_of_log: bool) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.log(x) if log_of_log else x


def _alternative_windows(grid: np.ndarray, window: np.ndarray) -> list[np.ndarray]:
    """Shifted down by one grid point; without its first point; without its last point (each ≥ MIN_POINTS)."""
    idx = np.searchsorted(grid, window)
    out = []
    if idx[0] > 0:
        out.append(grid[idx - 1])
    if len(window) > MIN_POINTS:
        out += [window[1:], window[:-1]]
    return out


def curve_slope(curves: pd.DataFrame, x: str, y: str, seed: str | None = None, window=None,
                log_of_log: bool = False) -> Estimate:
    """Slope of log y against log x (or log log x) on the upper-half window of the x grid.

    ``curves`` holds one curve per seed (column ``seed``; None: a single deterministic curve). A point counts only
    where y > 0 for every seed. The estimate is the mean of per-seed slopes with a t-interval over seeds.
    """
    data = curves[curves[y] > 0] if len(curves) else curves
    if seed is not None and len(data):  # a point counts only where every seed has it
        n_seeds_all = curves[seed].nunique()
        have = data.groupby(x)[seed].nunique()
        data = data[data[x].isin(have[have == n_seeds_all].index)]
    grid = np.unique(data[x].to_numpy(dtype=float))
    if len(grid) < MIN_POINTS:
        return Estimate(n_points=len(grid), reason=f"{len(grid)} usable {x} value(s) (need {MIN_POINTS})")
    win = upper_half(grid) if window is None else np.asarray(window, dtype=float)

    def fit(xs) -> tuple[float, float, list[float], int]:
        sub = data[data[x].isin(xs)]
        groups = [g for _, g in sub.groupby(seed)] if seed is not None else [sub]
        fits = [line(_transformed(g[x], log_of_log), g[y]) for g in groups]
        slopes = [s for s, _ in fits]
        mean_curve = sub.groupby(x)[y].mean()
        _, icpt = line(_transformed(mean_curve.index, log_of_log), mean_curve.to_numpy())
        return float(np.mean(slopes)), icpt, slopes, len(groups)

    fitted, intercept, slopes, n_groups = fit(win)
    est = Estimate(fitted=fitted, intercept=intercept, x_lo=float(win[0]), x_hi=float(win[-1]),
                   n_points=len(win), n_seeds=n_groups if seed is not None else 0)
    if seed is not None:
        _, est.ci_low, est.ci_high = t_interval(slopes)
    alts = [fit(w)[0] for w in _alternative_windows(grid, win)]
    est.sys_low, est.sys_high = min([fitted, *alts]), max([fitted, *alts])
    est.extra["seed_slopes"] = slopes
    return est


def pooled_slope(x, y, groups) -> Estimate:
    """Slope of log y against log x over points pooled from several curves (a scaling claim y ∝ x that spans them,
    not one curve's asymptote: no window). Least squares with a t-interval from the residual scatter (n − 2 degrees
    of freedom): the scatter is how far the claimed constant y/x wanders. The systematic range holds the slopes with
    each group (curve) left out, where at least two groups remain."""
    x, y, groups = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(groups)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    x, y, groups = x[ok], y[ok], groups[ok]
    if len(np.unique(x)) < MIN_POINTS:
        return Estimate(n_points=len(np.unique(x)), reason=f"{len(np.unique(x))} usable point(s) (need {MIN_POINTS})")
    slope, intercept = line(x, y)
    est = Estimate(fitted=slope, intercept=intercept, x_lo=float(x.min()), x_hi=float(x.max()), n_points=len(x))
    lx, ly = np.log(x), np.log(y)
    dof = len(x) - 2
    if dof > 0:
        resid = ly - (slope * lx + intercept)
        se = math.sqrt(float(resid @ resid) / dof / float(np.sum((lx - lx.mean()) ** 2)))
        half = float(special.stdtrit(dof, 0.5 + LEVEL / 2)) * se
        est.ci_low, est.ci_high = est.fitted - half, est.fitted + half
    alts = []
    if len(np.unique(groups)) >= 3:
        for g in np.unique(groups):
            keep = groups != g
            alts.append(line(x[keep], y[keep])[0])
    alts = [v for v in alts if math.isfinite(v)]
    est.sys_low, est.sys_high = min([est.fitted, *alts]), max([est.fitted, *alts])
    return est


def local_slopes(x, y, log_of_log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The project's one definition of a curve's local slopes: d log y / d log X between neighbouring points (X = x,
    or log x for the log power law), placed at the geometric midpoints of x; points with y ≤ 0 are skipped. The
    tables store these, the figures plot them and the extrapolation fits them."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    ok = (y > 0) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return np.array([]), np.array([])
    X = np.log(_transformed(x, log_of_log))
    return np.sqrt(x[1:] * x[:-1]), np.diff(np.log(y)) / np.diff(X)


def _fit_power_correction(xm, s):
    """s∞ and ω of s = s∞ + c·x^−ω (ω fitted on a grid + polish); None when it does not fit."""
    lx = np.log(xm)

    def solve(w):
        A = np.column_stack([np.ones_like(lx), np.exp(-w * lx)])
        coef, *_ = np.linalg.lstsq(A, s, rcond=None)
        return coef, float(np.sum((A @ coef - s) ** 2))

    if len(s) < 3:
        return None
    grid = np.geomspace(0.02, 5.0, 120)
    costs = [solve(w)[1] for w in grid]
    i = int(np.argmin(costs))
    if i in (0, len(grid) - 1):  # no interior optimum: the correction is not resolved by these points
        return None
    try:
        res = optimize.minimize_scalar(lambda w: solve(w)[1], bracket=(grid[i - 1], grid[i], grid[i + 1]))
        w = float(res.x) if res.success and res.x > 0 else float(grid[i])
    except ValueError:  # a flat cost (slopes already constant to rounding): no bracket, the grid's best ω will do
        w = float(grid[i])
    return solve(w)[0][0], w


def _intercept(A: np.ndarray, s: np.ndarray, fitted_extra: int = 0) -> tuple[float, float]:
    """(s∞, its 95 % half-width) of the linear model s = A·coef with s∞ = coef[0]: a t-interval from the residual
    scatter of the local slopes (``fitted_extra`` nonlinear parameters fitted besides, e.g. ω). With no degree of
    freedom left the half-width is 0: the points then say nothing about their own scatter."""
    coef, *_ = np.linalg.lstsq(A, s, rcond=None)
    dof = len(s) - A.shape[1] - fitted_extra
    if dof <= 0:
        return float(coef[0]), 0.0
    sigma2 = float(np.sum((A @ coef - s) ** 2)) / dof
    cov = sigma2 * np.linalg.pinv(A.T @ A)
    return float(coef[0]), float(special.stdtrit(dof, 0.5 + LEVEL / 2) * math.sqrt(max(cov[0, 0], 0.0)))


def _correction_models(xm, s, log_forms: bool, omega: float | None) -> tuple[dict, dict]:
    """s∞ and its half-width under each correction model, fitted on local slopes s at xm: a power correction with ω
    free, 1/log x, the log power law's own forms (``log_forms``) and a power correction with the finite-size
    theory's ω (``omega``)."""
    models, errors = {}, {}

    def power_design(w):
        return np.column_stack([np.ones_like(s), xm ** -w])

    power = _fit_power_correction(xm, s)
    if power is not None:
        models["power"], errors["power"] = _intercept(power_design(power[1]), s, fitted_extra=1)
    inv_log = 1.0 / np.log(xm)
    if np.ptp(inv_log) > 0:
        models["inverse_log"], errors["inverse_log"] = _intercept(np.column_stack([np.ones_like(s), inv_log]), s)
        if log_forms:  # the log power law's own leading corrections (module docstring)
            loglog = np.log(np.log(xm)) * inv_log
            models["log_log"], errors["log_log"] = _intercept(np.column_stack([np.ones_like(s), loglog]), s)
            if len(s) >= 4:  # both first-order terms, c₁·log log x / log x + c₂/log x, with one degree of freedom left
                A = np.column_stack([np.ones_like(s), loglog, inv_log])
                models["log_log_full"], errors["log_log_full"] = _intercept(A, s)
    if omega is not None:
        models["theory_omega"], errors["theory_omega"] = _intercept(power_design(omega), s)
    return models, errors


def extrapolate(x, y, log_of_log: bool = False, theory_y=None, half_width: float = 0.0, convergence=None,
                log_corrections: bool = False) -> dict:
    """Local slopes extrapolated to x → ∞ by the correction models of the module docstring.

    ``theory_y`` (same x) is the finite-size theory's curve; its local slopes fix ω for model (iii).
    ``log_corrections`` (with ``log_of_log``) adds the log power law's correction forms and makes the full one the
    headline: only for a curve that reaches far (the N_eff far limit, the far equivalent), since over a short grid their
    regressor log log x / log x hardly varies and the fit is ill-determined.
    ``convergence`` = (estimate, finite-size theory's slope on the estimate's window, this function's result for
    the finite-size theory run far beyond the grid) adds model (iv), the estimate corrected by the finite-size
    theory's own computed convergence, estimate + (its far limit − its window slope), and makes it the headline;
    the far limit's interval, shifted the same way, joins the interval. The theorem's exponent is never used.
    Returns {extrapolated, extrapolated_low, extrapolated_high, models: {name: value}}.
    """
    out = {"extrapolated": math.nan, "extrapolated_low": math.nan, "extrapolated_high": math.nan, "models": {}}
    xm_all, s_all = local_slopes(x, y, log_of_log)
    if len(s_all) < 3:
        return out
    omega = None
    if theory_y is not None:
        txm, ts = local_slopes(x, theory_y, log_of_log)
        tfit = _fit_power_correction(txm[-EXTRAPOLATION_POINTS:], ts[-EXTRAPOLATION_POINTS:]) if len(ts) >= 3 else None
        if tfit is not None and np.isfinite(tfit[1]) and tfit[1] > 0:
            omega = tfit[1]
    n = min(EXTRAPOLATION_POINTS, len(s_all))
    models, errors = _correction_models(xm_all[-n:], s_all[-n:], log_of_log and log_corrections, omega)
    # the same models on the neighbouring windows (one local slope fewer, one more): a curve whose corrections
    # have not settled into one form moves them, and their values join the interval (the window systematic)
    window_values = []
    for k in (n - 1, n + 1):
        if 3 <= k <= len(s_all):
            window_values += list(_correction_models(xm_all[-k:], s_all[-k:], log_of_log and log_corrections,
                                                     omega)[0].values())
    if not models:
        return out
    spread = 0.0
    if "log_log" in models:  # headline: the full first-order form; its distance to the one-term form, mirrored,
        key = "log_log_full" if "log_log_full" in models else "log_log"  # bounds the next order
        spread = abs(models[key] - models["log_log"])
    else:
        key = "power" if "power" in models else next(iter(models))
    headline = models[key]
    # every model's value (the choice of correction model) on each window, and the headline's own scatter-based
    # half-width
    values = list(models.values()) + window_values
    err = errors.get(key, 0.0)
    if convergence is not None:
        shifted = theory_convergence(*convergence)
        if shifted:
            models["theory_convergence"] = headline = shifted["extrapolated"]
            spread = err = 0.0  # the far curve's own interval carries model 4's uncertainty
            values += [headline, shifted["extrapolated_low"], shifted["extrapolated_high"]]
    values += [headline - err, headline + err]
    steps = np.abs(np.diff(s_all[-(n + 1):]))
    if convergence is None and np.any(steps[1:] > steps[:-1]):
        # the correction models assume local slopes that approach their limit in shrinking steps; where a step
        # grows inside the widest window fitted the corrections have not settled, and the interval reaches the last
        # local slope
        values.append(float(s_all[-1]))
    out["models"] = models
    out["extrapolated"] = headline
    hw = max(half_width if np.isfinite(half_width) else 0.0, SLOPE_RESOLUTION)
    out["extrapolated_low"] = min(min(values), headline - spread) - hw
    out["extrapolated_high"] = max(max(values), headline + spread) + hw
    return out


def theory_convergence(estimate: float, finite: float, far: dict, half_width: float = 0.0) -> dict:
    """Model (iv): the estimate shifted by the finite-size theory's own computed distance to its limit, estimate +
    (far limit − the theory's slope on the estimate's window), with the far limit's interval shifted the same way
    and widened by ``half_width`` (the estimate's); {} when a term is missing."""
    shift = estimate - finite
    if not (math.isfinite(shift) and math.isfinite(far.get("extrapolated", math.nan))):
        return {}
    return {"extrapolated": float(far["extrapolated"] + shift),
            "extrapolated_low": float(far["extrapolated_low"] + shift - half_width),
            "extrapolated_high": float(far["extrapolated_high"] + shift + half_width),
            "models": {"theory_convergence": float(far["extrapolated"] + shift)}}


def verdict(est: Estimate, theory: float, theory_finite: float, extrap: dict) -> str:
    """The fixed vocabulary of docs/METHODS.md §14 (consistent, pre-asymptotic, disagrees, not fitted, no theory)."""
    if not math.isfinite(theory):
        return "no theory"
    if not est.ok:
        return "not fitted"
    lo = np.nanmin([est.ci_low, est.sys_low, est.fitted])
    hi = np.nanmax([est.ci_high, est.sys_high, est.fitted])
    if lo <= theory <= hi:
        return "consistent"
    tol = max(est.fitted - lo, hi - est.fitted) if math.isfinite(est.ci_low) else 0.0
    agrees_finite = not math.isfinite(theory_finite) or abs(est.fitted - theory_finite) <= max(tol, FINITE_AGREEMENT)
    e_lo, e_hi = extrap.get("extrapolated_low", math.nan), extrap.get("extrapolated_high", math.nan)
    if agrees_finite and math.isfinite(e_lo) and e_lo <= theory <= e_hi:
        return "pre-asymptotic"
    return "disagrees"


def finite_slope(x, y, est: Estimate, log_of_log: bool = False) -> float:
    """Slope of a finite-size theory curve (x, y) on the estimate's window (NaN when the estimate has none)."""
    if not est.ok:
        return math.nan
    x, y = np.asarray(x, float), np.asarray(y, float)
    sel = est.in_window(x)
    return line(np.log(x[sel]) if log_of_log else x[sel], y[sel])[0]


def half_width(est: Estimate) -> float:
    """Half the width of the estimate's statistical interval (0 for an exact curve, which has none)."""
    return 0.5 * (est.ci_high - est.ci_low) if math.isfinite(est.ci_low) else 0.0


def mc_slope(curve: pd.DataFrame, x: str, y: str = "mc_mean", sem: str = "mc_sem", offset: str = "sigma2",
             exact: str = "reducible") -> tuple[Estimate, float]:
    """Slope of log(y − offset) against log x of Monte Carlo means (averaged over the seeds at each x), with a
    LEVEL interval from the Monte Carlo standard errors (delta method, normal quantile), and the exact curve's slope on
    the same points. Points whose mean does not exceed the offset are dropped (they cannot be logged)."""
    g = curve.assign(_y=curve[y] - curve[offset].to_numpy(float), _var=curve[sem] ** 2).groupby(x)
    pts = pd.DataFrame({"mc": g["_y"].mean(), "var": g["_var"].sum() / g.size() ** 2, "exact": g[exact].mean(),
                        "seeds": g.size()})
    pts = pts[pts["mc"] > 0]
    if len(pts) < 2:
        return Estimate(n_points=len(pts), reason=f"{len(pts)} Monte Carlo point(s) above the offset (need 2)"), \
            math.nan
    lx = np.log(pts.index.to_numpy(float))
    c = (lx - lx.mean()) / np.sum((lx - lx.mean()) ** 2)  # slope = Σ c_i log y_i
    slope, intercept = line(pts.index, pts["mc"])
    half = float(special.ndtri(0.5 + LEVEL / 2)) * math.sqrt(float(np.sum(c**2 * pts["var"] / pts["mc"] ** 2)))
    est = Estimate(fitted=slope, intercept=intercept, ci_low=slope - half, ci_high=slope + half,
                   x_lo=float(pts.index.min()), x_hi=float(pts.index.max()), n_points=len(pts),
                   n_seeds=int(pts["seeds"].min()))
    return est, line(pts.index, pts["exact"])[0]
