"""Scaling-law fits of the risk surface R(M, N), with honest uncertainties (docs/METHODS.md §12, §13).

The main theorem gives, for SGD on an M-parameter sketch trained on N samples (N_eff = N / ln N),

    R(M, N) = E + A·M^(-p) + B·N_eff^(-q),    theory: E = σ², p = a − 1, q = (a − 1)/a,

for a spectrum λ_i = i^(-a).  This module estimates (E, A, p, B, q), puts confidence intervals on the
exponents and tests them against theory.  Pure numpy/scipy/pandas.

Public API
----------
Slopes and diagnostics
    loglog_slope(x, y, weights=None) -> SlopeFit            weighted LS line of log y on log x
    local_slopes(x, y) -> (x_sorted, slopes)                 d log y / d log x along a sorted curve
    window_sensitivity(x, y, starts, weights=None, stop=None) -> DataFrame   slope vs window start
    systematic_range(x, y, windows, weights=None) -> (min, max)              slope spread over windows
Window rules (fixed before looking at the data; never tuned to agree with theory)
    n_slope_window(M, N_eff, gamma, a, margin=WINDOW_MARGIN) -> bool mask    M ≥ margin·(N_eff γ)^(1/a)
    m_slope_window(M, N_eff, gamma, a, margin=WINDOW_MARGIN) -> bool mask    N_eff γ ≥ margin·M^a
Joint surface fits
    fit_joint(M, N_eff, R, E=None, weights=None, form="additive", ...) -> JointFit
    compare_forms(M, N_eff, R, E=None, holdout="corner", ...) -> FormComparison
Uncertainty and theory
    inverse_variance_weights(sem, R, rel_floor=SEM_REL_FLOOR) -> ndarray     ∝ 1/Var(log R)
    bootstrap(df, fit_fn, group_cols=None, n_boot=1000, seed=0, strata=None, level=0.95,
              interval="percentile") -> BootstrapResult
    theory_test(estimate, theory, std=None, cov=None) -> TheoryTest(z, p_value, verdict)

Decisions a caller must know
----------------------------
* Non-positive (or non-finite) points are never logged: they are dropped and the fit carries a flag.
* WINDOW_MARGIN = 4: a slope window keeps only points a factor 4 inside the regime it measures.
* Losses act on log residuals log R − log R̂, so each point counts by its relative error.  Default Huber
  with HUBER_DELTA = 1e-3 (as Hoffmann et al. 2022 and Besiroglu et al. 2024): quadratic below 0.1 %
  relative error, linear above.  For Monte Carlo noise of ~1 % this is close to least absolute
  deviations: robust to a few bad points, but ~2/π as efficient as least squares under Gaussian noise;
  pass loss="l2" for plain (inverse-variance) weighted least squares when the noise model is trusted.
  Weights are rescaled to mean 1, so the delta reads on the log scale of a typical point.
* Additive form, variable projection.  Inner: for fixed (p, q), (E, A, B) ≥ 0 by NNLS on relative
  residuals (R − R̂)/R (the first-order form of the log residual), then up to INNER_GN_STEPS = 3 damped,
  projected Gauss–Newton/IRLS steps of the *same* Huber log loss, so the inner solve matches the outer
  objective.  Outer: an 8×8 log grid of (p, q) in [0.05, 3] ∩ bounds is screened; Nelder–Mead runs from
  the best 3 (simplex size 1e-2: it only has to find the basin); a final least_squares polish of all
  parameters (analytic Jacobian, tolerances 1e-12) gives the optimum to machine precision on noise-free
  data.  max / power_mean: least_squares from the same screened starts.
* Flags (a fit is never silently degenerate):
    "p-at-bound", "q-at-bound", "k-at-bound"  within BOUND_TOL = 1e-3 of the search span from a bound
                                              (EXPONENT_BOUNDS = (0.01, 5), K_BOUNDS = (0.1, 50));
    "A-zero", "B-zero"     the term's share of R̂ stays below DEGENERATE_SHARE = 1e-6 at every point;
    "E-at-bound"           a free E ended at 0;
    "singular-hessian"     cond of the weighted log-residual Jacobian in scale-free parameters
                           (E/median R, log A, log B, p, q[, log k]) exceeds SINGULAR_COND = 1e6, or a
                           zero term leaves its exponent unidentified;
    "not-converged"        Nelder–Mead or least_squares stopped on its iteration limit or failed;
    "non-positive", "non-finite"   points were dropped.
* inverse_variance_weights floors the relative sem at SEM_REL_FLOOR = 1e-3: exact points (sem = 0) get
  weight 1e6 instead of infinity.
* bootstrap resamples whole groups (e.g. sketch seeds) with replacement; refits that raise count as
  failures (NaN rows), flagged refits are kept and counted.  Percentile intervals by default; with few
  seeds prefer interval="expanded" (percentile intervals of a mean of 10 units cover only ~90 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .errors import ParameterError

WINDOW_MARGIN = 4.0
MIN_POINTS = 3
MIN_DECADES = 0.5
HUBER_DELTA = 1e-3
EXPONENT_BOUNDS = (0.01, 5.0)
K_BOUNDS = (0.1, 50.0)
SEM_REL_FLOOR = 1e-3
INNER_GN_STEPS = 3
DEGENERATE_SHARE = 1e-6
SINGULAR_COND = 1e6
BOUND_TOL = 1e-3
FORMS = ("additive", "max", "power_mean")
LOSSES = {"huber": "huber", "l2": "linear", "linear": "linear"}
CONSISTENT = "consistent"


# ---------------------------------------------------------------------------------------------------------
# Log-log slopes


@dataclass(frozen=True)
class SlopeFit:
    """log y = intercept + slope·log x, fitted by weighted least squares (natural logs).

    stderr is the usual WLS standard error with the residual scale estimated from the data
    (s² = Σ w r² / (n − 2)), so it does not depend on how the weights are normalised; NaN for n = 2.
    flag is "" for a sound fit, else a comma-separated list of: non-positive, non-finite, short-window,
    degenerate-x.
    """

    slope: float
    intercept: float
    stderr: float
    n_points: int
    x_min: float
    x_max: float
    decades: float
    flag: str = ""

    @property
    def ok(self) -> bool:
        return not self.flag

    def params(self) -> dict[str, float]:
        return {"slope": self.slope, "intercept": self.intercept}


def _as_1d(name: str, v) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ParameterError(name, v, "a non-empty array")
    return arr


def _weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = _as_1d("weights", weights)
    if w.size != n or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ParameterError("weights", weights, f"{n} finite non-negative numbers, not all zero")
    return w


def _positive_mask(*arrays: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Rows usable on a log scale, and the flags that explain the rows that are not."""
    finite, positive = np.isfinite(arrays[0]), arrays[0] > 0
    for a in arrays[1:]:
        finite &= np.isfinite(a)
        positive &= a > 0
    usable = finite & positive
    flags = []
    if not usable.all():
        if (finite & ~positive).any():
            flags.append("non-positive")
        if not finite.all():
            flags.append("non-finite")
    return usable, flags


def loglog_slope(x, y, weights=None) -> SlopeFit:
    """Weighted least-squares line of log y on log x.

    weights ∝ 1/Var(log y) (see inverse_variance_weights).  Points with x ≤ 0 or y ≤ 0 are rejected and
    flagged "non-positive"; fewer than MIN_POINTS points or a span under MIN_DECADES decades of x is
    flagged "short-window" (the slope is still returned when it exists).
    """
    x, y = _as_1d("x", x), _as_1d("y", y)
    if x.size != y.size:
        raise ParameterError("y", f"length {y.size}", f"the length of x ({x.size})")
    keep, flags = _positive_mask(x, y)
    w = None
    if weights is not None:
        w = _weights(weights, x.size)
        keep &= w > 0
    if not keep.all():
        x, y, w = x[keep], y[keep], (None if w is None else w[keep])
    lx, ly = np.log(x), np.log(y)
    n = lx.size
    lo, hi = (float(lx.min()), float(lx.max())) if n else (math.nan, math.nan)
    decades = (hi - lo) / math.log(10) if n else 0.0
    if n < MIN_POINTS or decades < MIN_DECADES:
        flags.append("short-window")
    if n < 2 or decades == 0.0:
        if n >= 2:
            flags.append("degenerate-x")
        return SlopeFit(math.nan, math.nan, math.nan, n, math.exp(lo), math.exp(hi), decades, ",".join(flags))
    w = np.full(n, 1.0 / n) if w is None else w / w.sum()
    xbar, ybar = w @ lx, w @ ly
    dx = lx - xbar
    sxx = w @ (dx * dx)
    slope = float(w @ (dx * (ly - ybar)) / sxx)
    intercept = float(ybar - slope * xbar)
    stderr = math.nan
    if n > 2:
        resid = ly - intercept - slope * lx
        stderr = float(math.sqrt(w @ (resid * resid) / (n - 2) / sxx))
    return SlopeFit(slope, intercept, stderr, n, math.exp(lo), math.exp(hi), decades, ",".join(flags))


def local_slopes(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Local exponent d log y / d log x at each point of the curve sorted by x.

    Second-order centred differences on the (non-uniform) log grid, one-sided at the ends (np.gradient);
    exact for a pure power law.  Raises on non-positive values or repeated x rather than logging them.
    """
    x, y = _as_1d("x", x), _as_1d("y", y)
    if x.size != y.size or x.size < 2:
        raise ParameterError("x, y", (x.size, y.size), "arrays of equal length >= 2")
    keep, flags = _positive_mask(x, y)
    if flags:
        raise ParameterError("x, y", flags, "finite positive values (local slopes take logs)")
    order = np.argsort(x)
    lx, ly = np.log(x[order]), np.log(y[order])
    if np.any(np.diff(lx) == 0):
        raise ParameterError("x", "repeated values", "distinct x along one curve")
    return x[order], np.gradient(ly, lx)


def window_sensitivity(x, y, starts, weights=None, stop=None) -> pd.DataFrame:
    """Slope of the window [start, stop] as a function of its start (stop defaults to max x).

    A slope that drifts with the start means the window still sees a crossover, not the asymptote.
    """
    x, y = _as_1d("x", x), _as_1d("y", y)
    w = _weights(weights, x.size)
    stop = np.inf if stop is None else stop
    rows = []
    for start in np.atleast_1d(starts):
        sel = (x >= start) & (x <= stop)
        f = loglog_slope(x[sel], y[sel], w[sel]) if np.any(sel) else SlopeFit(
            math.nan, math.nan, math.nan, 0, math.nan, math.nan, 0.0, "short-window")
        rows.append({"start": float(start), "slope": f.slope, "stderr": f.stderr,
                     "n_points": f.n_points, "decades": f.decades, "flag": f.flag})
    return pd.DataFrame(rows)


def systematic_range(x, y, windows: Iterable, weights=None) -> tuple[float, float]:
    """(min, max) of the fitted slope over admissible windows: the systematic uncertainty of a slope.

    Each window is a boolean mask over the points or an (x_lo, x_hi) range.  Windows whose fit carries a
    flag (too short, non-positive points) are not admissible and are skipped; it is an error if none is.
    Report this range beside the bootstrap CI, which only covers the statistical part.
    """
    x, y = _as_1d("x", x), _as_1d("y", y)
    w = _weights(weights, x.size)
    slopes = []
    for win in windows:
        win_arr = np.asarray(win)
        if win_arr.dtype == bool:
            sel = win_arr.ravel()
        else:
            lo, hi = win
            sel = (x >= lo) & (x <= hi)
        f = loglog_slope(x[sel], y[sel], w[sel]) if np.any(sel) else None
        if f is not None and f.ok:
            slopes.append(f.slope)
    if not slopes:
        raise ParameterError("windows", "none admissible", "at least one window with an unflagged fit")
    return float(min(slopes)), float(max(slopes))


# ---------------------------------------------------------------------------------------------------------
# Window rules


def n_slope_window(M, N_eff, gamma: float, a: float, margin: float = WINDOW_MARGIN) -> np.ndarray:
    """Points for an N-slope: M ≥ margin·(N_eff γ)^(1/a).

    SGD after N_eff steps of size γ fits about k* = (N_eff γ)^(1/a) directions (PAPER §3).  When M is a
    factor `margin` above k*, the sketch does not limit SGD and R − σ² ≂ (N_eff γ)^(-(a-1)/a).
    """
    M, N_eff = np.asarray(M, dtype=float), np.asarray(N_eff, dtype=float)
    return M >= margin * (N_eff * gamma) ** (1.0 / a)


def m_slope_window(M, N_eff, gamma: float, a: float, margin: float = WINDOW_MARGIN) -> np.ndarray:
    """Points for an M-slope: N_eff γ ≥ margin·M^a (equivalently k* ≥ margin^(1/a)·M).

    SGD has then fitted every direction the sketch offers and R − σ² ≂ M^(1-a), the approximation error.
    """
    M, N_eff = np.asarray(M, dtype=float), np.asarray(N_eff, dtype=float)
    return N_eff * gamma >= margin * M**a


# ---------------------------------------------------------------------------------------------------------
# Joint fits


@dataclass(frozen=True)
class JointFit:
    """Fit of R = E + A·M^(-p) ⊕ B·N_eff^(-q), where ⊕ is + (additive), max, or the power mean of order k.

    loss is the final robust objective ½Σρ(√w·(log R − log R̂)) (weights rescaled to mean 1);
    rms_log the unweighted RMS log residual.  k is 1 for "additive" and inf for "max".
    An empty flags list means no problem was detected; see the module docstring for the flag names.
    """

    form: str
    E: float
    A: float
    B: float
    p: float
    q: float
    k: float
    loss: float
    rms_log: float
    n_points: int
    converged: bool
    E_fixed: bool
    flags: list[str] = field(default_factory=list)
    k_fitted: bool = False

    @property
    def ok(self) -> bool:
        return not self.flags

    def params(self) -> dict[str, float]:
        out = {"E": self.E, "A": self.A, "B": self.B, "p": self.p, "q": self.q}
        if self.k_fitted:
            out["k"] = self.k
        return out

    def predict(self, M, N_eff) -> np.ndarray:
        """R̂(M, N_eff) under the fitted form."""
        L, _ = _log_power_part(math.log(self.A) if self.A > 0 else -np.inf,
                               math.log(self.B) if self.B > 0 else -np.inf, self.p, self.q,
                               np.log(np.asarray(M, dtype=float)), np.log(np.asarray(N_eff, dtype=float)),
                               self.k)
        return self.E + np.exp(L)


@dataclass(frozen=True)
class _Surface:
    """Data of a joint fit on the log scale; sw = √weights rescaled to mean-1 weights."""

    logM: np.ndarray
    logN: np.ndarray
    logR: np.ndarray
    sw: np.ndarray
    E: float | None
    loss: str
    delta: float

    @property
    def R(self) -> np.ndarray:
        return np.exp(self.logR)

    def cost(self, f: np.ndarray) -> float:
        # Same normalisation as scipy.optimize.least_squares: ½ Σ f_scale²·ρ(f²/f_scale²).
        if self.loss == "linear":
            return 0.5 * float(f @ f)
        a = np.abs(f)
        return 0.5 * float(np.sum(np.where(a <= self.delta, f * f, 2 * self.delta * a - self.delta**2)))

    def irls_weights(self, f: np.ndarray) -> np.ndarray:
        if self.loss == "linear":
            return np.ones_like(f)
        a = np.abs(f)
        return np.where(a <= self.delta, 1.0, self.delta / np.maximum(a, self.delta))


def _surface(M, N_eff, R, E, weights, loss: str, delta: float) -> tuple[_Surface, list[str]]:
    M, N_eff, R = _as_1d("M", M), _as_1d("N_eff", N_eff), _as_1d("R", R)
    if not (M.size == N_eff.size == R.size):
        raise ParameterError("M, N_eff, R", (M.size, N_eff.size, R.size), "arrays of equal length")
    if loss not in LOSSES:
        raise ParameterError("loss", loss, f"one of {', '.join(LOSSES)}")
    if not delta > 0:
        raise ParameterError("huber_delta", delta, "> 0")
    if E is not None and not (np.isfinite(E) and E >= 0):
        raise ParameterError("E", E, "None (fitted) or a finite number >= 0")
    w = _weights(weights, R.size)
    keep, flags = _positive_mask(M, N_eff, R)
    keep &= w > 0
    if not keep.any():
        raise ParameterError("R", "no usable points", "some points with M, N_eff, R > 0 and weight > 0")
    w = w[keep] / w[keep].mean()
    data = _Surface(np.log(M[keep]), np.log(N_eff[keep]), np.log(R[keep]), np.sqrt(w),
                    None if E is None else float(E), LOSSES[loss], float(delta))
    return data, flags


def _log_power_part(logA, logB, p, q, logM, logN, k):
    """log of the power part (u^k + v^k)^(1/k) with u = A·M^-p, v = B·N^-q, and ∂L/∂log u (the u-share).

    Computed with logaddexp so that large k (and k = inf, the max form) neither overflows nor underflows.
    """
    u = logA - p * logM
    v = logB - q * logN
    with np.errstate(invalid="ignore", over="ignore"):
        if np.isinf(k):
            L = np.maximum(u, v)
            share_u = np.where(u > v, 1.0, np.where(u == v, 0.5, 0.0))
        else:
            L = np.logaddexp(k * u, k * v) / k
            share_u = np.nan_to_num(np.exp(k * (u - L)))
    return L, share_u


# --- additive form: variable projection --------------------------------------------------------------------


def _basis(d: _Surface, p: float, q: float) -> np.ndarray:
    cols = [np.exp(-p * d.logM), np.exp(-q * d.logN)]
    if d.E is None:
        cols.insert(0, np.ones_like(d.logM))
    return np.column_stack(cols)


def _linear_cost(d: _Surface, X: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
    Rhat = X @ beta + (d.E or 0.0)
    if np.any(Rhat <= 0):
        return math.inf, np.full_like(Rhat, np.inf)
    f = d.sw * (d.logR - np.log(Rhat))
    return d.cost(f), f


def _gauss_newton_nnls(d: _Surface, X: np.ndarray, Rhat: np.ndarray, omega: np.ndarray) -> np.ndarray:
    # Linearise log R̂ about R̂: log R − log R̂(β) ≈ log(R/R̂) + 1 − E/R̂ − Xβ/R̂, then solve for β ≥ 0.
    s = d.sw * np.sqrt(omega)
    target = s * (d.logR - np.log(Rhat) + 1.0 - (d.E or 0.0) / Rhat)
    beta, _ = optimize.nnls(X * (s / Rhat)[:, None], target)
    return beta


def _inner_solve(d: _Surface, p: float, q: float) -> tuple[np.ndarray, float]:
    """Best (E,) A, B ≥ 0 for fixed (p, q): NNLS on relative residuals, then damped Gauss–Newton/IRLS."""
    X = _basis(d, p, q)
    beta = _gauss_newton_nnls(d, X, d.R, np.ones_like(d.logR))
    cost, f = _linear_cost(d, X, beta)
    for _ in range(INNER_GN_STEPS):
        if not np.isfinite(cost):
            break
        cand = _gauss_newton_nnls(d, X, X @ beta + (d.E or 0.0), d.irls_weights(f))
        t = 1.0
        for _ in range(10):  # backtracking on the segment keeps β ≥ 0 and the loss monotone
            trial = beta + t * (cand - beta)
            c, ft = _linear_cost(d, X, trial)
            if c < cost:
                break
            t *= 0.5
        else:
            break
        gain = cost - c
        beta, cost, f = trial, c, ft
        if gain <= 1e-10 * max(cost, 1e-300):
            break
    return beta, cost


def _unpack_linear(d: _Surface, beta: np.ndarray) -> tuple[float, float, float]:
    if d.E is None:
        return float(beta[0]), float(beta[1]), float(beta[2])
    return d.E, float(beta[0]), float(beta[1])


def _additive_residuals(d: _Surface, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted log residuals and their Jacobian for θ = ([E,] A, B, p, q) on the linear scale."""
    E, A, B, p, q = (d.E, *theta) if d.E is not None else theta
    tm, tn = np.exp(-p * d.logM), np.exp(-q * d.logN)
    Rhat = np.maximum(E + A * tm + B * tn, 1e-300)
    f = d.sw * (d.logR - np.log(Rhat))
    g = d.sw / Rhat
    cols = [-g * tm, -g * tn, g * A * tm * d.logM, g * B * tn * d.logN]
    if d.E is None:
        cols.insert(0, -g)
    return f, np.column_stack(cols)


def _grid_starts(d: _Surface, p_bounds, q_bounds, starts) -> list[tuple[float, float]]:
    """Starts for the local searches: the given (p, q) pairs, or the best 3 of an n×n log grid (n = 8 or
    the given int) ranked by the inner solve's loss."""
    if starts is not None and not isinstance(starts, int | np.integer):
        pairs = [(float(p), float(q)) for p, q in starts]
        if not pairs:
            raise ParameterError("starts", starts, "None, an int >= 2, or a non-empty list of (p, q)")
        return pairs
    n = 8 if starts is None else int(starts)
    if n < 2:
        raise ParameterError("starts", starts, "None, an int >= 2, or a non-empty list of (p, q)")

    def axis(lo, hi):
        # Exponents of practical scaling laws lie in [0.05, 3]; the local search may still leave it.
        if lo < 3.0 and hi > 0.05:
            lo, hi = max(lo, 0.05), min(hi, 3.0)
        return np.geomspace(lo, hi, n)

    grid = [(p, q) for p in axis(*p_bounds) for q in axis(*q_bounds)]
    costs = [_inner_solve(d, p, q)[1] for p, q in grid]
    return [grid[i] for i in np.argsort(costs)[:3]]


def _fit_additive(d: _Surface, p_bounds, q_bounds, starts):
    best = None
    for x0 in _grid_starts(d, p_bounds, q_bounds, starts):
        x0 = np.clip(x0, [p_bounds[0], q_bounds[0]], [p_bounds[1], q_bounds[1]])
        res = optimize.minimize(lambda x: _inner_solve(d, x[0], x[1])[1], x0, method="Nelder-Mead",
                                bounds=[p_bounds, q_bounds],
                                # Only the basin matters here: the least-squares polish below
                                # finishes the optimum, so stop on the simplex size alone.
                                options={"xatol": 1e-2, "fatol": np.inf, "maxiter": 800})
        if best is None or res.fun < best.fun:
            best = res
    p, q = best.x
    beta, cost = _inner_solve(d, p, q)
    lo = np.concatenate([np.zeros(beta.size), [p_bounds[0], q_bounds[0]]])
    hi = np.concatenate([np.full(beta.size, np.inf), [p_bounds[1], q_bounds[1]]])
    theta0 = np.clip(np.array([*beta, p, q]), lo, hi)
    pol = optimize.least_squares(lambda t: _additive_residuals(d, t)[0], theta0,
                                 jac=lambda t: _additive_residuals(d, t)[1], bounds=(lo, hi),
                                 loss=d.loss, f_scale=d.delta, x_scale="jac",
                                 ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=2000)
    polished_cost = d.cost(_additive_residuals(d, pol.x)[0])
    theta, converged = (pol.x, pol.status > 0) if polished_cost <= cost else (theta0, True)
    converged = converged and bool(best.success)
    E, A, B = _unpack_linear(d, theta[:-2])
    return E, A, B, float(theta[-2]), float(theta[-1]), 1.0, converged


# --- max and power-mean forms: direct least squares in log parameters --------------------------------------


def _pm_residuals(d: _Surface, theta: np.ndarray, k_fixed: float | None):
    """Weighted log residuals and Jacobian for θ = ([E,] log A, log B, p, q[, log k])."""
    i = 0
    E = d.E
    if E is None:
        E, i = theta[0], 1
    logA, logB, p, q = theta[i:i + 4]
    k = math.exp(theta[i + 4]) if k_fixed is None else k_fixed
    L, su = _log_power_part(logA, logB, p, q, d.logM, d.logN, k)
    with np.errstate(divide="ignore", over="ignore"):
        # log R̂ = log(E + e^L) without overflow when the search tries huge coefficients.
        logRhat = np.logaddexp(math.log(E) if E > 0 else -np.inf, L)
        f = d.sw * (d.logR - logRhat)
        g = d.sw * np.exp(L - logRhat)
        inv_R = np.exp(-logRhat)
    sv = 1.0 - su
    cols = [-g * su, -g * sv, g * su * d.logM, g * sv * d.logN]
    if d.E is None:
        cols.insert(0, -d.sw * inv_R)
    if k_fixed is None:
        u, v = logA - p * d.logM, logB - q * d.logN
        cols.append(-g * np.nan_to_num(su * u + sv * v - L))
    return f, np.column_stack(cols)


def _fit_power(d: _Surface, form: str, p_bounds, q_bounds, starts, k_fixed):
    k_fit = form == "power_mean" and k_fixed is None
    k_const = math.inf if form == "max" else (1.0 if k_fit else float(k_fixed))
    scale = float(np.exp(np.median(d.logR)))
    lo = [p_bounds[0], q_bounds[0]]
    hi = [p_bounds[1], q_bounds[1]]
    if d.E is None:
        lo, hi = [0.0, -np.inf, -np.inf, *lo], [np.inf, np.inf, np.inf, *hi]
    else:
        lo, hi = [-np.inf, -np.inf, *lo], [np.inf, np.inf, *hi]
    if k_fit:
        lo, hi = [*lo, math.log(K_BOUNDS[0])], [*hi, math.log(K_BOUNDS[1])]
    best = None
    for p, q in _grid_starts(d, p_bounds, q_bounds, starts):
        beta, _ = _inner_solve(d, p, q)
        E, A, B = _unpack_linear(d, beta)
        # A zero coefficient has no logarithm: start it small but alive so the search can still use it.
        A = A if A > 0 else 1e-3 * scale * math.exp(p * d.logM.min())
        B = B if B > 0 else 1e-3 * scale * math.exp(q * d.logN.min())
        base = ([E] if d.E is None else []) + [math.log(A), math.log(B), p, q]
        for logk in ([0.0, math.log(8.0)] if k_fit else [None]):
            theta0 = np.clip(np.array(base + ([] if logk is None else [logk])), lo, hi)
            kf = None if k_fit else k_const
            res = optimize.least_squares(lambda t: _pm_residuals(d, t, kf)[0], theta0,
                                         jac=lambda t: _pm_residuals(d, t, kf)[1], bounds=(lo, hi),
                                         loss=d.loss, f_scale=d.delta, x_scale="jac",
                                         ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=2000)
            if best is None or res.cost < best.cost:
                best = res
    t = best.x
    i = 0 if d.E is not None else 1
    E = d.E if d.E is not None else float(t[0])
    k = math.exp(t[i + 4]) if k_fit else k_const
    return E, math.exp(t[i]), math.exp(t[i + 1]), float(t[i + 2]), float(t[i + 3]), k, best.status > 0


def _near(x: float, bounds) -> bool:
    lo, hi = bounds
    tol = BOUND_TOL * (hi - lo)
    return x - lo <= tol or hi - x <= tol


def _diagnose(d: _Surface, fit: JointFit, p_bounds, q_bounds, k_fitted: bool) -> list[str]:
    """Flags for a fitted surface: exponents on bounds, vanishing terms, unidentified parameters."""
    flags = []
    if _near(fit.p, p_bounds):
        flags.append("p-at-bound")
    if _near(fit.q, q_bounds):
        flags.append("q-at-bound")
    if k_fitted and _near(math.log(fit.k), np.log(K_BOUNDS)):
        flags.append("k-at-bound")
    # A term's share is its part of ∂ log R̂ (for max: R̂'s share where it is the larger term).  A term
    # that never carries a visible share is degenerate, whatever its coefficient.
    L, su = _log_power_part(math.log(fit.A) if fit.A > 0 else -np.inf,
                            math.log(fit.B) if fit.B > 0 else -np.inf, fit.p, fit.q, d.logM, d.logN, fit.k)
    S = np.exp(L)
    Rhat = fit.E + S
    share_A = np.max(su * S / Rhat)
    share_B = np.max((1.0 - su) * S / Rhat)
    if share_A < DEGENERATE_SHARE:
        flags.append("A-zero")
    if share_B < DEGENERATE_SHARE:
        flags.append("B-zero")
    if d.E is None and fit.E <= DEGENERATE_SHARE * float(np.min(Rhat)):
        flags.append("E-at-bound")
    if share_A < DEGENERATE_SHARE or share_B < DEGENERATE_SHARE:
        flags.append("singular-hessian")  # a vanished term leaves its exponent unidentified
    else:
        # Scale-free parameters (E/median R, log A, log B, p, q[, log k]) so the condition number
        # measures identifiability, not units.
        theta = ([fit.E] if d.E is None else []) + [
            math.log(fit.A), math.log(fit.B), fit.p, fit.q] + ([math.log(fit.k)] if k_fitted else [])
        _, J = _pm_residuals(d, np.array(theta), None if k_fitted else fit.k)
        if d.E is None:
            J[:, 0] *= float(np.exp(np.median(d.logR)))
        s = np.linalg.svd(J, compute_uv=False)
        if s[-1] <= s[0] / SINGULAR_COND:
            flags.append("singular-hessian")
    if not fit.converged:
        flags.append("not-converged")
    return flags


def fit_joint(M, N_eff, R, E: float | None = None, weights=None, form: str = "additive",
              loss: str = "huber", huber_delta: float = HUBER_DELTA, starts=None,
              p_bounds: tuple[float, float] = EXPONENT_BOUNDS,
              q_bounds: tuple[float, float] = EXPONENT_BOUNDS, k: float | None = None) -> JointFit:
    """Fit R = E + A·M^(-p) + B·N_eff^(-q) (form="additive"), or with the two terms combined by
    max(·,·) (form="max") or by the power mean (A^k M^(-pk) + B^k N_eff^(-qk))^(1/k) (form="power_mean";
    k fitted in K_BOUNDS unless given).  E, A, B ≥ 0; E fixed when given (e.g. σ², or 0 for R − σ²).

    Objective: ½Σ ρ(√w_i·(log R_i − log R̂_i)), ρ Huber with huber_delta (loss="huber") or squares
    (loss="l2").  weights ∝ 1/Var(log R) (see inverse_variance_weights), rescaled to mean 1.
    starts: None (an 8×8 log grid of (p, q) screened by the inner solve; the best 3 seed local searches),
    an int n (an n×n grid), or explicit (p, q) pairs (no screening; use the point estimate for bootstrap
    refits).  Additive: variable projection + polish (module docstring).  max / power_mean:
    scipy.optimize.least_squares on log residuals in (E, log A, log B, p, q[, log k]).
    """
    if form not in FORMS:
        raise ParameterError("form", form, f"one of {', '.join(FORMS)}")
    for name, b in (("p_bounds", p_bounds), ("q_bounds", q_bounds)):
        if not (len(b) == 2 and 0 < b[0] < b[1] < np.inf):
            raise ParameterError(name, b, "(lo, hi) with 0 < lo < hi < inf")
    if k is not None and not (form == "power_mean" and k > 0):
        raise ParameterError("k", k, "None, or > 0 with form='power_mean'")
    d, data_flags = _surface(M, N_eff, R, E, weights, loss, huber_delta)
    n_free = 4 + (d.E is None) + (form == "power_mean" and k is None)
    if d.logR.size <= n_free:
        raise ParameterError("R", f"{d.logR.size} usable points", f"more than {n_free} positive points")
    if form == "additive":
        E_, A, B, p, q, k_, conv = _fit_additive(d, p_bounds, q_bounds, starts)
    else:
        E_, A, B, p, q, k_, conv = _fit_power(d, form, p_bounds, q_bounds, starts, k)
    k_fitted = form == "power_mean" and k is None
    fit = JointFit(form, E_, A, B, p, q, k_, math.nan, math.nan, d.logR.size, bool(conv), d.E is not None,
                   [], k_fitted)
    f = d.logR - np.log(fit.predict(np.exp(d.logM), np.exp(d.logN)))
    flags = data_flags + _diagnose(d, fit, p_bounds, q_bounds, k_fitted)
    return JointFit(form, E_, A, B, p, q, k_, d.cost(d.sw * f), float(np.sqrt(np.mean(f**2))),
                    d.logR.size, bool(conv), d.E is not None, flags, k_fitted)


# ---------------------------------------------------------------------------------------------------------
# Functional-form comparison


@dataclass(frozen=True)
class FormComparison:
    """Held-out extrapolation error of each form; best is the winner under the parsimony rule."""

    table: pd.DataFrame
    best: str
    holdout: np.ndarray


def corner_holdout(M, N_eff, fraction: float = 1 / 3) -> np.ndarray:
    """Mask of the corner where M and N_eff are both among the top `fraction` of their distinct values."""
    M, N_eff = _as_1d("M", M), _as_1d("N_eff", N_eff)

    def top(v):
        u = np.unique(v)
        return v >= u[-max(1, int(round(fraction * u.size)))]

    return top(M) & top(N_eff)


def compare_forms(M, N_eff, R, E: float | None = None, holdout="corner", forms: Sequence[str] = FORMS,
                  weights=None, corner_fraction: float = 1 / 3, rel_tol: float = 0.05,
                  **fit_kwargs) -> FormComparison:
    """Fit each form away from the held-out corner, predict the corner, compare RMS log errors.

    holdout="corner" holds out the large-M-and-large-N corner (corner_holdout) and trains on the L-shaped
    rest; a boolean mask may be given instead.  The extrapolation into the corner, where both terms are
    small, is what a scaling law is used for.  Parsimony rule: best is the form with the fewest free
    parameters (power_mean with fitted k has one more) among those within rel_tol (relative) of the
    smallest held-out RMS; ties then go to the earlier form in `forms`.
    """
    M, N_eff, R = _as_1d("M", M), _as_1d("N_eff", N_eff), _as_1d("R", R)
    if isinstance(holdout, str):
        if holdout != "corner":
            raise ParameterError("holdout", holdout, "'corner' or a boolean mask")
        held = corner_holdout(M, N_eff, corner_fraction)
    else:
        held = np.asarray(holdout, dtype=bool).ravel()
    if held.all() or not held.any():
        raise ParameterError("holdout", "empty or everything", "a mask holding out some but not all points")
    w = _weights(weights, R.size)
    rows = []
    for form in forms:
        fit = fit_joint(M[~held], N_eff[~held], R[~held], E=E, weights=w[~held], form=form, **fit_kwargs)
        err = np.log(R[held]) - np.log(fit.predict(M[held], N_eff[held]))
        n_par = len(fit.params()) - fit.E_fixed
        rows.append({"form": form, "rms_log_heldout": float(np.sqrt(np.nanmean(err**2))),
                     "rms_log_train": fit.rms_log, "n_params": n_par, "n_train": int((~held).sum()),
                     "n_heldout": int(held.sum()), "E": fit.E, "A": fit.A, "B": fit.B, "p": fit.p,
                     "q": fit.q, "k": fit.k, "flags": ",".join(fit.flags)})
    table = pd.DataFrame(rows)
    best_rms = table["rms_log_heldout"].min()
    tied = table[table["rms_log_heldout"] <= best_rms * (1 + rel_tol) + 1e-12]
    best = str(tied.sort_values("n_params", kind="stable")["form"].iloc[0])
    return FormComparison(table, best, held)


# ---------------------------------------------------------------------------------------------------------
# Uncertainty


def inverse_variance_weights(sem, R, rel_floor: float = SEM_REL_FLOOR) -> np.ndarray:
    """w_i = 1/Var(log R_i) ≈ R_i²/sem_i² (delta method), with sem_i floored at rel_floor·R_i.

    The floor keeps exact points (sem = 0, e.g. from the expected-risk recursion) at a finite weight
    1/rel_floor², so that a mix of exact and noisy points is still well posed.  NaN sem (e.g. a single
    seed) is an error: there is no variance to invert.
    """
    sem, R = _as_1d("sem", sem), _as_1d("R", R)
    if sem.size != R.size:
        raise ParameterError("sem", f"length {sem.size}", f"the length of R ({R.size})")
    if not (np.all(np.isfinite(sem)) and np.all(sem >= 0)):
        raise ParameterError("sem", "non-finite or negative values", "finite values >= 0")
    if not (np.all(np.isfinite(R)) and np.all(R > 0)):
        raise ParameterError("R", "non-positive or non-finite values", "finite values > 0")
    if not rel_floor > 0:
        raise ParameterError("rel_floor", rel_floor, "> 0")
    rel = np.maximum(sem / R, rel_floor)
    return 1.0 / rel**2


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap of a fit: samples (one row per resample, NaN where a refit failed), percentile CIs.

    ci_low/ci_high are the interval's bounds (see bootstrap's `interval`); cov is the sample covariance;
    corr_pq the correlation of p and q (NaN if the fit has no such parameters).  n_flagged counts refits
    whose result carried flags (they are kept: dropping them would bias the interval).
    """

    estimate: dict[str, float]
    samples: pd.DataFrame
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    cov: pd.DataFrame
    corr_pq: float
    level: float
    n_failed: int
    n_flagged: int
    interval: str = "percentile"

    def summary(self) -> pd.DataFrame:
        """One row per parameter: estimate, bootstrap std, CI bounds."""
        return pd.DataFrame({"estimate": self.estimate, "std": self.samples.std(ddof=1).to_dict(),
                             "low": self.ci_low, "high": self.ci_high})


def _params_of(result) -> tuple[dict[str, float], bool]:
    """A fit result as {name: value} and whether it carried a flag."""
    if hasattr(result, "params"):
        flagged = bool(getattr(result, "flags", None) or getattr(result, "flag", ""))
        return {k: float(v) for k, v in result.params().items()}, flagged
    if isinstance(result, Mapping):
        return {k: float(v) for k, v in result.items()}, False
    return {"value": float(result)}, False


@dataclass(frozen=True)
class _Units:
    """Resampling units: rows reordered so each unit is contiguous (order[start[u]:start[u] + size[u]])
    and, per stratum, the units it holds."""

    order: np.ndarray
    start: np.ndarray
    size: np.ndarray
    by_stratum: list[np.ndarray]

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Row positions of one resample: in each stratum, as many units as it has, with replacement."""
        sel = np.concatenate([u[rng.integers(0, u.size, u.size)] for u in self.by_stratum])
        sizes = self.size[sel]
        # Vectorised gather of the chosen units' row blocks (a loop over units costs more than the fit).
        offset = np.repeat(self.start[sel] - (np.cumsum(sizes) - sizes), sizes)
        return self.order[offset + np.arange(sizes.sum())]


def _resampling_units(table: pd.DataFrame, group_cols, strata) -> _Units:
    group_cols = [group_cols] if isinstance(group_cols, str) else list(group_cols or [])
    strata = [strata] if isinstance(strata, str) else list(strata or [])
    n = len(table)
    stratum = table.groupby(strata, sort=True).ngroup().to_numpy() if strata else np.zeros(n, dtype=int)
    unit = table.groupby(strata + group_cols, sort=True).ngroup().to_numpy() if group_cols else np.arange(n)
    order = np.argsort(unit, kind="stable")
    size = np.bincount(unit)
    start = np.cumsum(size) - size
    unit_stratum = stratum[order[start]]
    return _Units(order, start, size, [np.flatnonzero(unit_stratum == s) for s in np.unique(unit_stratum)])


def bootstrap(df: pd.DataFrame | Mapping[str, np.ndarray], fit_fn: Callable, group_cols=None,
              n_boot: int = 1000, seed: int = 0, strata=None, level: float = 0.95,
              interval: str = "percentile") -> BootstrapResult:
    """Nonparametric bootstrap of fit_fn(df) by resampling whole groups with replacement.

    group_cols: the independent units (e.g. ["sketch_seed"]: all rows of a seed are drawn together, so
    correlations across (M, N) within a seed are kept); None resamples rows.  strata: resample units
    independently within each stratum (e.g. per (M, N) cell when every cell has its own seeds).
    df may also be a dict of equal-length numpy arrays; fit_fn then receives dicts, which avoids the
    ~0.1 ms cost of building a DataFrame per resample when the fit itself is cheap.
    fit_fn returns a SlopeFit/JointFit (anything with .params()), a mapping or a float.  A refit that
    raises gives a NaN row (counted in n_failed) and is excluded from the percentiles.
    The resamples depend only on `seed` and the table, so results are reproducible.

    interval="percentile" (default): the (1 ± level)/2 percentiles.  With few units these undercover:
    for a mean of n units the coverage is P(|t_(n-1)| ≤ z·√((n-1)/n)), 93 % for n = 20 and 90 % for
    n = 10.  interval="expanded" widens the tail levels so that this coverage is exact for a mean
    (Hesterberg 2015, "expanded percentile"), using n = the fewest units in any stratum.
    """
    if not 0 < level < 1:
        raise ParameterError("level", level, "in (0, 1)")
    if interval not in ("percentile", "expanded"):
        raise ParameterError("interval", interval, "'percentile' or 'expanded'")
    if isinstance(df, pd.DataFrame):
        df = df.reset_index(drop=True)
        table, take = df, df.iloc.__getitem__
    else:
        arrays = {k: np.asarray(v) for k, v in df.items()}
        table = pd.DataFrame(arrays)
        take = lambda idx: {k: v[idx] for k, v in arrays.items()}  # noqa: E731
    estimate, _ = _params_of(fit_fn(df))
    units = _resampling_units(table, group_cols, strata)
    rng = np.random.default_rng(seed)
    rows, n_failed, n_flagged = [], 0, 0
    for _ in range(n_boot):
        try:
            params, flagged = _params_of(fit_fn(take(units.draw(rng))))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            params, flagged = {}, False
            n_failed += 1
        n_flagged += flagged
        rows.append(params)
    samples = pd.DataFrame(rows, columns=list(estimate))
    tail = 50 * (1 - level)
    if interval == "expanded":
        n = min(u.size for u in units.by_stratum)
        if n < 2:
            raise ParameterError("interval", interval, "'percentile' when a stratum has a single unit")
        z = math.sqrt(n / (n - 1)) * stats.t.ppf(1 - (1 - level) / 2, n - 1)
        tail = 100 * stats.norm.sf(z)
    ci_low = {c: float(np.nanpercentile(samples[c], tail)) for c in samples}
    ci_high = {c: float(np.nanpercentile(samples[c], 100 - tail)) for c in samples}
    corr_pq = math.nan
    if {"p", "q"} <= set(samples):
        corr_pq = float(samples["p"].corr(samples["q"]))
    return BootstrapResult(estimate, samples, ci_low, ci_high, samples.cov(), corr_pq, level,
                           n_failed, n_flagged, interval)


# ---------------------------------------------------------------------------------------------------------
# Theory checks


class TheoryTest(NamedTuple):
    """z: z-score(s) (estimate − theory)/std; p_value: two-sided z-test (scalar) or χ² test (vector)."""

    z: float | np.ndarray
    p_value: float
    verdict: str


def theory_test(estimate, theory, std=None, cov=None, level: float = 0.95) -> TheoryTest:
    """Test fitted exponents against theory.

    Scalar: z = (estimate − theory)/std, two-sided p-value.  Vector (e.g. (p, q) with a bootstrap
    covariance): χ² = dᵀ cov⁻¹ d with d = estimate − theory, on rank(cov) degrees of freedom (a
    pseudo-inverse copes with a rank-deficient covariance); z is then the vector of marginal z-scores.
    verdict is "consistent", or "theory outside 95% CI" when p_value < 1 − level.
    """
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    th = np.broadcast_to(np.asarray(theory, dtype=float), est.shape)
    d = est - th
    if cov is not None:
        C = np.atleast_2d(np.asarray(cov, dtype=float))
        if C.shape != (est.size, est.size):
            raise ParameterError("cov", C.shape, f"a {est.size}x{est.size} matrix")
        sd = np.sqrt(np.diag(C))
        rank = np.linalg.matrix_rank(C)
        if rank == 0:
            raise ParameterError("cov", "zero matrix", "a non-zero covariance")
        chi2 = float(d @ np.linalg.pinv(C) @ d)
        p_value = float(stats.chi2.sf(chi2, rank))
    elif std is not None:
        sd = np.broadcast_to(np.asarray(std, dtype=float), est.shape)
        if not np.all(sd > 0):
            raise ParameterError("std", std, "> 0")
        if est.size != 1:
            raise ParameterError("estimate", estimate, "a scalar when std is given (use cov for vectors)")
        p_value = float(2 * stats.norm.sf(abs(d[0] / sd[0])))
    else:
        raise ParameterError("std, cov", None, "one of them")
    z = d / sd
    z_out = float(z[0]) if np.ndim(estimate) == 0 else z
    verdict = CONSISTENT if p_value >= 1 - level else f"theory outside {level:.0%} CI"
    return TheoryTest(z_out, p_value, verdict)
