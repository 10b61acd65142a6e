"""The comparison of joint functional forms of the risk surface R(M, N_eff) (docs/METHODS.md §13).

The main theorem gives, for SGD on an M-parameter sketch trained on N samples (N_eff = N / ln N),

    R(M, N) = E + A·M^(-p) + B·N_eff^(-q),    theory: E = σ², p = a − 1, q = (a − 1)/a,

and the two terms may also combine as a max or a power mean. Each form is fitted away from the large-M, large-N
corner and judged by how well it predicts that corner (``compare_forms``); the table of this comparison is its own
(``joint_forms``): a form chosen this way is not a safe primary estimate of an exponent, which the one-variable
estimators of ``sketchlaw.analysis.estimators`` give.

Decisions a caller must know
----------------------------
* Non-positive (or non-finite) points are never logged: they are dropped and the fit carries a flag.
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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize

from sketchlaw.errors import ParameterError

HUBER_DELTA = 1e-3
EXPONENT_BOUNDS = (0.01, 5.0)
K_BOUNDS = (0.1, 50.0)
INNER_GN_STEPS = 3
DEGENERATE_SHARE = 1e-6
SINGULAR_COND = 1e6
BOUND_TOL = 1e-3
FORMS = ("additive", "max", "power_mean")
LOSSES = {"huber": "huber", "l2": "linear", "linear": "linear"}
FORM_COLUMNS = ["experiment", "a", "b", "form", "p", "q", "k", "rms_log_heldout", "rms_log_train", "n_params",
                "n_train", "n_heldout", "best", "flags"]


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


def joint_forms(table: pd.DataFrame) -> list[dict]:
    """The comparison of the joint forms on each (a, b) slice of a scaling table with b ≤ a (seed means of the risk
    against M and N_eff, E = σ² fixed); a grid too small for a joint fit gives no rows."""
    out = []
    for (experiment, a, b), df in table.groupby(["experiment", "a", "b"], sort=True):
        if b > a:
            continue
        sigma2 = float(df["sigma2"].iloc[0])
        mean = df.groupby(["M", "N_eff"], as_index=False)["risk"].mean()
        try:
            comp = compare_forms(mean["M"], mean["N_eff"], mean["risk"], E=sigma2)
        except ParameterError:
            continue
        for r in comp.table.to_dict("records"):
            out.append({"experiment": experiment, "a": a, "b": b, **{k: r.get(k) for k in FORM_COLUMNS[3:-2]},
                        "best": r["form"] == comp.best, "flags": r.get("flags", "")})
    return out
