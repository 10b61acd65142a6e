"""The exact stability bound of one-pass SGD on a sketched problem: pure numpy and scipy, so that the planner and the
jobs that only check a step size (Monte Carlo, baselines) never load the compiled engine."""

from __future__ import annotations

import numpy as np

from sketchlaw.errors import ParameterError


def critical_step_size(mu: np.ndarray, multiplicity=None, batch: int = 1, kurtosis: float = 3.0) -> float:
    """The exact stability threshold γ_c of the expected second-moment recursion for spectrum μ of Σ.

    ρ(K_g) < 1 iff Σ_j n_j gμ_j / (B(2 − c·gμ_j)) < 1 with c = 1 + 1/B (1 is an eigenvalue of K_g exactly when the
    secular equation holds at κ = 1; n_j the multiplicity of mode j, B the batch size). The left side increases in g,
    so γ_c is its root on (0, 2/(c·μ_max)). For B = 1 it lies in [2/(2μ_max + tr Σ), 2/tr Σ].

    ``kurtosis`` κ = E z⁴ of covariates with independent coordinates z in Σ's eigenbasis (3: Gaussian) gives
    c = 1 + (κ − 2)/B (docs/METHODS.md §21): the bound of the unsketched problem with coordinates of that law.
    """
    mu = np.asarray(mu, dtype=float)
    n = np.ones_like(mu) if multiplicity is None else np.asarray(multiplicity, dtype=float)
    B, trace = float(batch), float(np.dot(n, mu))
    c = 1.0 + (float(kurtosis) - 2.0) / B  # ≥ 0: κ ≥ 1 for any unit-variance law
    lo = 2.0 * B / (B * c * mu.max() + trace)
    hi = min(2.0 * B / trace, 2.0 / (c * mu.max())) if c > 0 else 2.0 * B / trace
    f = lambda g: float(np.sum(n * g * mu / (B * (2.0 - c * g * mu)))) - 1.0  # noqa: E731
    if f(hi * (1 - 1e-15)) <= 0:
        return hi
    if f(lo) >= 0:  # the lower end is the root (one mode: γ_c = 2B/((B + 1)μ) exactly), or rounding put it past it
        return lo
    from scipy.optimize import brentq  # here: importing scipy.optimize costs every short job a tenth of a second

    return brentq(f, lo, hi * (1 - 1e-15), xtol=1e-15, rtol=1e-14)


def check_stable(gamma: float, mu: np.ndarray, multiplicity=None, batch: int = 1) -> float:
    """Raise ParameterError naming γ and the bound if SGD's expected risk diverges at step size γ; return the bound."""
    bound = critical_step_size(mu, multiplicity, batch)
    if not gamma < bound:
        raise ParameterError("gamma", gamma, f"0 < gamma < {bound:.6g} (the exact stability bound for this sketch; "
                                             f"sufficient: gamma < 2/(2·mu_max + tr Σ) = "
                                             f"{2 / (2 * mu.max() + mu.sum()):.6g})")
    return bound
