"""Least squares and ridge on the same sketched features: the 'conventional wisdom' baselines whose variance grows
with M (docs/METHODS.md §11), against which SGD's implicit regularization is shown.

In Σ's eigenbasis, N samples z_i ~ N(0, diag μ), y_i = <z_i, θ*> + ξ_i with ξ_i ~ N(0, σ_M²) (exact reduction,
docs/METHODS.md §3). For ridge v̂ = (Ĝ + λI)⁻¹ Zᵀy / N with Ĝ = ZᵀZ / N, conditional on Z the errors are exact:
    bias     = λ² θ*ᵀ (Ĝ+λ)⁻¹ diag(μ) (Ĝ+λ)⁻¹ θ*
    variance = σ_M² / N · tr( diag(μ) (Ĝ+λ)⁻¹ Ĝ (Ĝ+λ)⁻¹ )
and only the design Z (and the target) is averaged by Monte Carlo. λ = 0 is least squares, whose variance has the
exact mean σ_M² M / (N − M − 1) (Wishart identity; ``theory.ols_variance``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sketchlaw import seeds
from sketchlaw.errors import ParameterError, check_int


@dataclass
class RidgeResult:
    lambdas: np.ndarray   # (L,)
    bias: np.ndarray      # (L, trials)
    variance: np.ndarray  # (L, trials)
    approx: np.ndarray    # (trials,)
    sigma2: float

    def risk(self) -> np.ndarray:
        """(L, trials) realized expected-over-noise risk σ² + Approx + bias + variance."""
        return self.sigma2 + self.approx[None, :] + self.bias + self.variance


def ridge_monte_carlo(problem, N: int, lambdas, trials: int, seed: int) -> RidgeResult:
    """Exact-given-design bias and variance of ridge (λ > 0) or least squares (λ = 0, needs N > M + 1)."""
    N = check_int("N", N, minimum=2)
    trials = check_int("trials", trials, minimum=1)
    lambdas = np.asarray(lambdas, dtype=float)
    if np.any(lambdas < 0):
        raise ParameterError("lambdas", lambdas.tolist(), "values >= 0")
    if np.any(lambdas == 0) and N <= problem.M + 1:
        raise ParameterError("N", N, f"N > M + 1 = {problem.M + 1} for least squares")
    targets, approx = problem.sample_targets(trials, seed)
    mu = problem.mu
    bias = np.empty((len(lambdas), trials))
    var = np.empty((len(lambdas), trials))
    for r in range(trials):
        Z = seeds.rng(seed, seeds.SGD_DATA, r).standard_normal((N, problem.M)) * np.sqrt(mu)
        ev, Q = np.linalg.eigh(Z.T @ Z / N)
        ev = np.maximum(ev, 0.0)
        theta = Q.T @ targets[r]
        w = np.einsum("ij,i,ij->j", Q, mu, Q)  # diag(Qᵀ diag(μ) Q)
        for k, lam in enumerate(lambdas):
            inv = 1.0 / (ev + lam)
            u = lam * inv * theta
            Qu = Q @ u
            bias[k, r] = Qu @ (mu * Qu)  # uᵀ Qᵀ diag(μ) Q u: O(M²) per λ, where forming Qᵀ diag(μ) Q costs O(M³)
            var[k, r] = (problem.sigma2 + approx[r]) / N * np.sum(w * ev * inv * inv)
    return RidgeResult(lambdas, bias, var, approx, problem.sigma2)
