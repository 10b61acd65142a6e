"""Exact expected risk of one-pass SGD on the sketched problem.

In Σ's eigenbasis the diagonal p_j(t) = (Uᵀ E[e_t e_tᵀ] U)_jj of the error covariance closes:

    p(t) = K_g p(t−1) + g² σ_M² μ,     K_g = diag(1 − e) + g² μ μᵀ,     e_j = 2gμ_j − 2g²μ_j²,

at step size g = γ_t. The expected excess risk is μ·p. Bias is the run from p(0) without noise; variance the run from
0 with noise σ_M² = σ² + Approx; they add up exactly (linearity, independent Gaussian noise).

A constant-step phase of n steps is jumped in closed form: K_g is diagonal plus rank one, so its eigenvalues κ solve
the secular equation 1 + g² Σ_j μ_j² / (d_j − κ) = 0 (LAPACK dlasd4, O(M) per root) and its eigenvectors follow in
O(M²) (Gu–Eisenstat: the rank-one vector is recomputed from the roots so the eigenvectors are orthogonal to working
precision). Then p ← V[κⁿ ⊙ Vᵀp + (1 − κⁿ)/(1 − κ) ⊙ Vᵀc]. Everything is carried in terms of θ = 1 − κ and e = 1 − d,
which are small numbers known to full relative precision, so κⁿ = exp(n·log1p(−θ)) is accurate for n up to 10⁹.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dlasd4
from scipy.optimize import brentq

from .errors import DivergenceError, ParameterError
from .schedules import Schedule

_EPS = np.finfo(float).eps


def critical_step_size(mu: np.ndarray, multiplicity=None, batch: int = 1) -> float:
    """The exact stability threshold γ_c of the expected second-moment recursion for spectrum μ of Σ.

    ρ(K_g) < 1 iff Σ_j n_j gμ_j / (B(2 − (1 + 1/B)gμ_j)) < 1 (1 is an eigenvalue of K_g exactly when the secular
    equation holds at κ = 1; n_j the multiplicity of mode j, B the batch size). The left side increases in g, so γ_c
    is its root on (0, 2/((1 + 1/B)μ_max)). For B = 1 it lies in [2/(2μ_max + tr Σ), 2/tr Σ].
    """
    mu = np.asarray(mu, dtype=float)
    n = np.ones_like(mu) if multiplicity is None else np.asarray(multiplicity, dtype=float)
    B, trace = float(batch), float(np.dot(n, mu))
    lo = 2.0 * B / ((B + 1.0) * mu.max() + trace)
    hi = min(2.0 * B / trace, 2.0 / ((1.0 + 1.0 / B) * mu.max()))
    f = lambda g: float(np.sum(n * g * mu / (B * (2.0 - (1.0 + 1.0 / B) * g * mu)))) - 1.0  # noqa: E731
    if f(hi * (1 - 1e-15)) <= 0:
        return hi
    return brentq(f, lo, hi * (1 - 1e-15), xtol=1e-15, rtol=1e-14)


def check_stable(gamma: float, mu: np.ndarray, multiplicity=None, batch: int = 1) -> float:
    """Raise ParameterError naming γ and the bound if SGD's expected risk diverges at step size γ; return the bound."""
    bound = critical_step_size(mu, multiplicity, batch)
    if not gamma < bound:
        raise ParameterError("gamma", gamma, f"0 < gamma < {bound:.6g} (the exact stability bound for this sketch; "
                                             f"sufficient: gamma < 2/(2·mu_max + tr Σ) = "
                                             f"{2 / (2 * mu.max() + mu.sum()):.6g})")
    return bound


@dataclass
class PhaseMap:
    """Eigendecomposition of K_g = diag(1 − e) + g² μ μᵀ in θ = 1 − κ form, with deflation.

    Coordinates: ``order`` sorts modes by d ascending; ``rotations`` are Givens rotations (i, k, c, s) that deflate
    nearly-equal d's; modes in ``deflated`` are exact eigenvectors of the rotated matrix (eigenvalue 1 − e); the
    remaining ``kept`` modes have eigenvectors V (columns) with eigenvalues 1 − θ.
    """

    g: float
    order: np.ndarray
    rotations: list
    kept: np.ndarray
    deflated: np.ndarray
    theta_kept: np.ndarray
    e_deflated: np.ndarray
    V: np.ndarray

    def to_eigen(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = P[self.order].copy()
        for i, k, c, s in self.rotations:
            xi, xk = X[i].copy(), X[k].copy()
            X[i], X[k] = c * xi + s * xk, -s * xi + c * xk
        return self.V.T @ X[self.kept], X[self.deflated]

    def from_eigen(self, Qk: np.ndarray, Qd: np.ndarray) -> np.ndarray:
        X = np.empty((len(self.order),) + Qk.shape[1:])
        X[self.kept] = self.V @ Qk
        X[self.deflated] = Qd
        for i, k, c, s in reversed(self.rotations):
            xi, xk = X[i].copy(), X[k].copy()
            X[i], X[k] = c * xi - s * xk, s * xi + c * xk
        P = np.empty_like(X)
        P[self.order] = X
        return P


def decay_rates(mu: np.ndarray, g: float, batch: int = 1) -> np.ndarray:
    """e = 1 − d: the diagonal of K_g is 1 − e, e_j = 2gμ_j − (1 + 1/B) g²μ_j² (B = 1: 2gμ_j − 2g²μ_j²)."""
    return 2 * g * mu - (1.0 + 1.0 / batch) * g * g * mu * mu


def phase_map(mu: np.ndarray, g: float, weights=None, batch: int = 1) -> PhaseMap:
    """Decompose K_g = diag(1 − e) + (g²/B) w wᵀ (see module docstring; w = μ unless ``weights`` are given);
    O(M²) time and memory."""
    M = len(mu)
    e_all = decay_rates(mu, g, batch)
    order = np.argsort(-e_all, kind="stable")  # d = 1 − e ascending
    e = e_all[order].copy()
    z = (mu if weights is None else np.asarray(weights, dtype=float))[order].copy()
    rho = g * g / batch * float(z @ z)
    z /= np.sqrt(z @ z)
    # Deflation threshold on the scale of e (not of d ≈ 1): the decomposition is done in e-space.
    tol = 8 * _EPS * max(e.max(), rho)
    rotations, kept, deflated, prev = [], [], [], None
    for j in range(M):
        if rho * abs(z[j]) <= tol:
            deflated.append(j)
            continue
        if prev is not None:
            tau = np.hypot(z[prev], z[j])
            c, s = z[j] / tau, -z[prev] / tau
            if abs((e[prev] - e[j]) * c * s) <= tol:
                rotations.append((prev, j, c, s))
                z[j], z[prev] = tau, 0.0
                e[prev], e[j] = c * c * e[prev] + s * s * e[j], s * s * e[prev] + c * c * e[j]
                deflated.append(prev)
                prev = j
                continue
            kept.append(prev)
        prev = j
    if prev is not None:
        kept.append(prev)
    kept = np.array(sorted(kept, key=lambda j: -e[j]), dtype=int)
    deflated = np.array(deflated, dtype=int)
    m = len(kept)
    theta = np.empty(m)
    V = np.empty((m, m))
    if m:
        ek, zk = e[kept], z[kept]
        nz = np.sqrt(zk @ zk)
        rho_k, zk = rho * nz * nz, zk / nz
        # LAPACK wants D² + ρzzᵀ with 0 <= D ascending: shift K by (1 − e_max)·I, which keeps the poles e_max − e
        # to absolute precision eps·e_max (instead of eps for 1 − e) and leaves κ − d unchanged.
        dd = np.sqrt(ek[0] - ek)
        if np.any(np.diff(dd) <= 0):
            raise ArithmeticError("phase map: eigenvalues of the phase matrix are not separated after deflation")
        tau0 = np.empty(m)  # κ_I − d_I from LAPACK: a starting point, polished in e-space below
        for I in range(m):
            dl, _sig, wk, info = dlasd4(I, dd, zk, rho_k)  # scipy wrapper takes a 0-based root index
            if info != 0:
                raise ArithmeticError(f"dlasd4 failed for root {I} (info={info})")
            tau0[I] = -dl[I] * wk[I]
        delta, theta = _refine_roots(ek, zk, rho_k, tau0)
        # Gu–Eisenstat: ẑ_j² = Π_I (κ_I − d_j) / (ρ Π_{k≠j} (d_k − d_j)); by interlacing each ratio
        # (κ_k − d_j)/(d_k − d_j), k ≠ j, and κ_j − d_j are positive, so magnitudes suffice.
        diff = ek[None, :] - ek[:, None]  # d_k − d_j = e_j − e_k, [k, j]
        np.fill_diagonal(diff, 1.0)
        logz2 = np.sum(np.log(np.abs(delta)), axis=0) - np.sum(np.log(np.abs(diff)), axis=0) - np.log(rho_k)
        zhat = np.sign(zk) * np.exp(0.5 * logz2)
        V = zhat[:, None] / delta.T  # V[j, I] = ẑ_j / (d_j − κ_I)
        V /= np.linalg.norm(V, axis=0)
    return PhaseMap(g=g, order=order, rotations=rotations, kept=kept, deflated=deflated, theta_kept=theta,
                    e_deflated=e[deflated], V=V)


def _refine_roots(e, z, rho, tau0, iterations: int = 3):
    """Newton-polish the secular roots in the e = 1 − d representation, from the nearer pole.

    Root I of 1 + ρ Σ_j z_j² / (d_j − κ) = 0 is written κ_I = d_o + τ with o the nearer of the poles I, I+1, so every
    denominator (e_o − e_j) − τ is computed from differences of e, which are known to full relative precision even
    when 1 − e rounds them away. Returns delta[I, j] = d_j − κ_I and θ_I = 1 − κ_I.
    """
    m = len(e)
    gap = np.append(e[:-1] - e[1:], np.inf)  # d_{I+1} − d_I
    upper = tau0 > 0.5 * gap
    origin = np.arange(m) + upper
    tau = np.where(upper, tau0 - gap, tau0)
    E = e[origin][:, None] - e[None, :]
    z2 = rho * z * z
    lo = np.where(upper, -0.5 * gap, 0.0)
    hi = np.where(upper, 0.0, 0.5 * gap)
    for _ in range(iterations):
        den = E - tau[:, None]
        f = 1.0 + (z2[None, :] / den).sum(axis=1)
        fp = (z2[None, :] / den ** 2).sum(axis=1)
        new = tau - f / fp
        tau = np.where((new > lo) & (new < hi) & np.isfinite(new), new, tau)
    return E - tau[:, None], e[origin] - tau


def _powers(theta: np.ndarray, n: np.ndarray):
    """κⁿ and (1 − κⁿ)/(1 − κ) for κ = 1 − θ, accurate for tiny θ (shapes broadcast: θ (m,1), n (1,k))."""
    log_k = np.log1p(-theta)
    kn = np.exp(n * log_k)
    with np.errstate(invalid="ignore", divide="ignore"):
        geo = np.where(np.abs(theta) > 0, -np.expm1(n * log_k) / np.where(theta == 0, 1, theta), n)
    return kn, geo


@dataclass
class RiskBreakdown:
    """Expected risk E R_M(v_N) = σ² + Approx + Bias + Var (docs/METHODS.md §2, §4), conditional on the sketch."""

    sigma2: float
    approx: float
    bias: float
    variance: float

    @property
    def excess(self) -> float:
        return self.bias + self.variance

    @property
    def risk(self) -> float:
        return self.sigma2 + self.approx + self.bias + self.variance

    def as_dict(self) -> dict:
        noise = self.sigma2 + self.approx
        return {"risk": self.risk, "sigma2": self.sigma2, "approx": self.approx, "bias": self.bias,
                "variance": self.variance, "excess": self.excess, "reducible": self.risk - self.sigma2,
                # Var is linear in σ_M² = σ² + Approx: its split into label noise and misspecification.
                "variance_from_noise": self.variance * self.sigma2 / noise if noise > 0 else 0.0,
                "variance_from_approx": self.variance * self.approx / noise if noise > 0 else 0.0}


class ExactEngine:
    """Expected risk after N SGD updates, averaged over data and prior, for fixed μ, p(0), σ² and E Approx.

    ``multiplicity`` n_j lets one mode stand for n_j identical modes (or a quadrature weight, see
    ``sketchlaw.limit``): the sum P_j over the copies obeys P ← (1 − e)P + n(g²/B)μ(μ·P + σ_M²), which in the
    coordinates q = P/√n is the recursion above with the rank-one vector w = √n·μ, so the phase maps stay symmetric.
    ``batch`` B averages each update's gradient over B fresh samples: the fourth-moment and noise terms shrink by
    1/B (diagonal 1 − 2gμ + (1 + 1/B)g²μ², rank one g²/B·wwᵀ, forcing g²/B·σ_M²·w); a schedule then counts updates.
    """

    def __init__(self, mu, p0, sigma2: float, approx: float, multiplicity=None, batch: int = 1):
        self.mu = np.asarray(mu, dtype=float)
        self.p0 = np.asarray(p0, dtype=float)
        self.sigma2, self.approx = float(sigma2), float(approx)
        self.batch = int(batch)
        if self.batch < 1:
            raise ParameterError("batch", batch, "an integer >= 1")
        self.multiplicity = None if multiplicity is None else np.asarray(multiplicity, dtype=float)
        root = np.ones_like(self.mu) if self.multiplicity is None else np.sqrt(self.multiplicity)
        self.w = self.mu * root        # rank-one vector and read-out in q = P/√n coordinates
        self.q0 = self.p0 * root
        self._maps: dict[float, PhaseMap] = {}

    @classmethod
    def from_problem(cls, problem) -> "ExactEngine":
        return cls(problem.mu, problem.p0, problem.sigma2, problem.approx)

    @property
    def noise(self) -> float:
        return self.sigma2 + self.approx

    def _map(self, g: float) -> PhaseMap:
        if g not in self._maps:
            self._maps = {g: phase_map(self.mu, g, self.w, self.batch)}  # keep one: phases come in decreasing g
        return self._maps[g]

    def _step(self, P: np.ndarray, g: float, n: int) -> np.ndarray:
        """n plain recursion steps on the columns of P = [p_bias, p_var] (O(M) per step)."""
        w, e, r = self.w, decay_rates(self.mu, g, self.batch), g * g / self.batch
        forcing = np.array([0.0, self.noise])
        for _ in range(n):
            P = P - e[:, None] * P + r * w[:, None] * (w @ P + forcing)[None, :]
        return P

    def _jump(self, P: np.ndarray, g: float, n) -> np.ndarray:
        """Jump n steps at step size g; P has column pairs [p_bias, p_var], n is an int or one count per pair."""
        pm = self._map(g)
        pairs = P.shape[1] // 2
        n = np.repeat(np.broadcast_to(np.asarray(n, dtype=float), (pairs,)), 2)[None, :]
        noisy = np.tile([0.0, 1.0], pairs)[None, :]  # only the variance columns are driven by noise
        Qk, Qd = pm.to_eigen(P)
        Ck, Cd = pm.to_eigen((g * g / self.batch * self.noise) * self.w[:, None])
        kn, geo = _powers(pm.theta_kept[:, None], n)
        knd, geod = _powers(pm.e_deflated[:, None], n)
        return pm.from_eigen(kn * Qk + geo * Ck * noisy, knd * Qd + geod * Cd * noisy)

    def run_many(self, schedules) -> list[RiskBreakdown]:
        """Final expected risks for many schedules (e.g. an N grid), sharing each phase's decomposition.

        Geometric schedules with the same γ use the same step sizes γ·2^-ℓ, so phase ℓ is decomposed once and
        jumped for all of them together: the cost grows with the number of distinct step sizes, not with len(N).
        """
        out: list[RiskBreakdown | None] = [None] * len(schedules)
        groups: dict[tuple, list[int]] = {}
        for i, sch in enumerate(schedules):
            check_stable(sch.gamma, self.mu, self.multiplicity, self.batch)
            groups.setdefault((sch.gamma, sch.kind), []).append(i)
        for idx in groups.values():
            phases = [schedules[i].phases() for i in idx]
            P = np.tile(np.stack([self.q0, np.zeros_like(self.q0)], axis=1), (1, len(idx)))
            for ell in range(max(len(ph) for ph in phases)):
                g = next(ph[ell][0] for ph in phases if len(ph) > ell)
                n = np.array([ph[ell][1] if len(ph) > ell else 0 for ph in phases])
                P = self._jump(P, g, n)
            if not np.all(np.isfinite(P)):
                raise DivergenceError(f"exact recursion produced non-finite values at gamma={schedules[idx[0]].gamma}")
            for k, i in enumerate(idx):
                out[i] = self._breakdown(P[:, 2 * k:2 * k + 2])
        return out

    def run(self, schedule: Schedule, checkpoints=None, method: str = "auto"):
        """Expected risk after the whole schedule (a RiskBreakdown), or a list of them at the given checkpoints.

        method: "step" (plain recursion), "jump" (closed-form phases) or "auto" (jump unless a phase is short).
        """
        if method not in ("auto", "step", "jump"):
            raise ParameterError("method", method, "one of auto, step, jump")
        check_stable(schedule.gamma, self.mu, self.multiplicity, self.batch)
        cps = sorted(set(int(c) for c in ([schedule.N] if checkpoints is None else checkpoints)))
        if cps[0] < 0 or cps[-1] > schedule.N:
            raise ParameterError("checkpoints", cps, f"integers in [0, N={schedule.N}]")
        P = np.stack([self.q0, np.zeros_like(self.q0)], axis=1)
        out, t, ci = [], 0, 0
        while ci < len(cps) and cps[ci] == 0:
            out.append(self._breakdown(P)); ci += 1
        for g, n in schedule.phases():
            end = t + n
            while t < end:
                stop = min(end, cps[ci]) if ci < len(cps) else end
                k = stop - t
                use_step = method == "step" or (method == "auto" and k <= 4 * len(self.mu) and g not in self._maps)
                P = self._step(P, g, k) if use_step else self._jump(P, g, k)
                t = stop
                while ci < len(cps) and cps[ci] == t:
                    out.append(self._breakdown(P)); ci += 1
        if not np.all(np.isfinite(P)):
            raise DivergenceError(f"exact recursion produced non-finite values at gamma={schedule.gamma}")
        return out if checkpoints is not None else out[-1]

    def _breakdown(self, P: np.ndarray) -> RiskBreakdown:
        bias, var = (self.w @ P).tolist()
        return RiskBreakdown(self.sigma2, self.approx, max(bias, 0.0), max(var, 0.0))
