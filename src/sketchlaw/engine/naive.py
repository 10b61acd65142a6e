"""Textbook one-pass SGD in the full d-dimensional space: the reference the reduced engines are tested against.

Draw x ~ N(0, H), form the sketched features Sx, y = <x, w*> + ε, and update v ← v − γ_t(<Sx, v> − y)Sx. It holds the
whole M × d sketch and costs O(M·d) per step: for tests and benchmarks only. With covariates x = H^{1/2} z of a
non-Gaussian coordinate law (``engine.coordinates``) the reduction to M dimensions is no longer exact in distribution
and this is the truth; ``fourth_moment_risk`` is its exact expected risk in d dimensions (docs/METHODS.md §21).
"""

from __future__ import annotations

import numpy as np

from sketchlaw import seeds
from sketchlaw.engine.coordinates import draw, kurtosis
from sketchlaw.engine.problem import full_sketch
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum


def naive_sgd(spectrum: Spectrum, M: int, sigma2: float, sketch_seed: int, schedule: Schedule, trials: int,
              seed: int, prior: Prior | None = None, wstar: np.ndarray | None = None,
              sketch: str = "gaussian", coordinates: str = "gaussian", checkpoints=None) -> np.ndarray:
    """Final population risks (trials,) of full-dimensional SGD on a sketch of family ``sketch`` with covariates of
    the coordinate law ``coordinates``; a fresh w* ~ prior per trial unless given. With ``checkpoints`` (step
    counts): the risks after each of them in increasing order, (trials, len(checkpoints)) — one run for every N of a
    constant schedule.

    Written in z (x = H^{1/2} z): with A = S·H^{1/2} and w̃ = H^{1/2} w*, each step draws z and forms Az and ⟨z, w̃⟩,
    the same draws in the same order as on x, so the coordinates' draw (O(trials·d)) and one (trials × d)·(d × M)
    product are all its work. A diverging run overflows to inf or nan instead of raising."""
    prior = prior or Prior()
    d = spectrum.d
    S = full_sketch(sketch_seed, M, d, sketch)
    lam = spectrum.eigenvalues()
    sqrt_lam, noise_sd = np.sqrt(lam), np.sqrt(sigma2)
    gen = seeds.rng(seed, seeds.NAIVE_DATA)
    W = (gen.standard_normal((trials, d)) * np.sqrt(prior.variances(spectrum))) if wstar is None else \
        np.broadcast_to(wstar, (trials, d)).copy()
    At, Wt = (S * sqrt_lam).T.copy(), W * sqrt_lam
    v = np.zeros((trials, M))
    cps = {schedule.N} if checkpoints is None else {int(c) for c in checkpoints}

    def risk():
        diff = v @ S - W  # Sᵀv − w*, row-wise
        return sigma2 + np.einsum("rd,d,rd->r", diff, lam, diff)

    with np.errstate(over="ignore", invalid="ignore"):
        out = [risk()] if 0 in cps else []
        for t, g in enumerate(schedule.step_sizes(), start=1):
            z = draw(gen, (trials, d), coordinates)
            y = np.einsum("rd,rd->r", z, Wt) + noise_sd * gen.standard_normal(trials)
            f = z @ At
            v -= (g * (np.einsum("rm,rm->r", f, v) - y))[:, None] * f
            if t in cps:
                out.append(risk())
    return out[-1] if checkpoints is None else np.stack(out, axis=1)


def fourth_moment_risk(spectrum: Spectrum, M: int, sigma2: float, sketch_seed: int, schedule: Schedule,
                       prior: Prior | None = None, sketch: str = "gaussian", coordinates: str = "gaussian",
                       checkpoints=None) -> np.ndarray:
    """Exact expected risk (over data and prior) of one-pass SGD on the sketched features for covariates
    x = H^{1/2} z of a coordinate law with fourth moment κ, by the second-moment recursion of u = Sᵀv − w* in d
    dimensions (docs/METHODS.md §21): with P = SᵀS, U ← U − γ(PHU + UHP) + γ²P(E[xxᵀUxxᵀ] + σ²H)P, where
    E[xxᵀUxxᵀ] = tr(HU)·H + 2·HUH + (κ − 3)·diag(λ_i² U_ii), from U_0 = Λ_w; the risk is σ² + tr(HU). O(d³) per step
    and O(d²) memory: for small d (tests, the fourth-moment reference). Returns the risk at ``checkpoints`` (default:
    the last step)."""
    prior = prior or Prior()
    S = full_sketch(sketch_seed, M, spectrum.d, sketch)
    return fourth_moment_recursion(spectrum.eigenvalues(), S.T @ S, np.diag(prior.variances(spectrum)), sigma2,
                                   schedule, kurtosis(coordinates), checkpoints)


def fourth_moment_recursion(lam: np.ndarray, P: np.ndarray, U: np.ndarray, sigma2: float, schedule: Schedule,
                            kappa: float, checkpoints=None) -> np.ndarray:
    """``fourth_moment_risk``'s recursion for H = diag(λ), P = SᵀS (the identity: the unsketched problem), initial
    second moment U of u = Sᵀv − w* and coordinates of fourth moment κ: the risk σ² + tr(HU) at the checkpoints."""
    cps = set(int(c) for c in ([schedule.N] if checkpoints is None else checkpoints))
    out = [sigma2 + float(lam @ np.diag(U))] if 0 in cps else []
    for t, g in enumerate(schedule.step_sizes(), start=1):
        U = _fourth_moment_step(lam, P, U, g, kappa) + (g * g * sigma2) * (P @ (lam[:, None] * P))
        # kept exactly symmetric: on an antisymmetric rounding error the step acts as U − γ(PHU − UHP), which is not
        # contracting, and would grow into the risk over a few thousand steps
        U = 0.5 * (U + U.T)
        if t in cps:
            out.append(sigma2 + float(lam @ np.diag(U)))
    return np.array(out)


def _fourth_moment_step(lam: np.ndarray, P: np.ndarray, U: np.ndarray, g: float, kappa: float) -> np.ndarray:
    """The homogeneous part of one step of ``fourth_moment_recursion`` (σ² = 0) applied to a symmetric U."""
    PHU = P @ (lam[:, None] * U)
    fourth = np.outer(lam, lam) * U * 2.0
    fourth[np.diag_indices(len(lam))] += (kappa - 3.0) * lam**2 * np.diag(U) + float(lam @ np.diag(U)) * lam
    return U - g * (PHU + PHU.T) + g * g * (P @ fourth @ P)


def fourth_moment_critical_step(lam: np.ndarray, P: np.ndarray, kappa: float, rel_tol: float = 1e-4) -> float:
    """The step size where the fourth-moment recursion's linear map on symmetric d × d matrices reaches spectral radius
    1 (bisection; the map's eigenvalue 1 exactly, the constant null-space block of u = Sᵀv − w*, is left out): the
    stability bound of SGD with a sketch P = SᵀS and coordinates of fourth moment κ. O(d⁶) work: small d only."""
    d = len(lam)
    iu = np.triu_indices(d)

    def radius(g):
        cols = []
        for i, j in zip(*iu):
            E = np.zeros((d, d))
            E[i, j] = E[j, i] = 1.0
            cols.append(_fourth_moment_step(lam, P, E, g, kappa)[iu])
        ev = np.abs(np.linalg.eigvals(np.array(cols).T))
        return float(ev[np.abs(ev - 1.0) > 1e-6].max())  # the eigenvalue-1 block is defective: rounding spreads it

    lo, hi = 0.0, 1.0 / float(np.trace(P) * lam.max())
    while radius(hi) <= 1.0:  # bracket the threshold from above
        lo, hi = hi, 2.0 * hi
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if radius(mid) > 1.0 else (mid, hi)
    return 0.5 * (lo + hi)


def naive_multipass_sgd(spectrum: Spectrum, M: int, sigma2: float, sketch_seed: int, schedule: Schedule,
                        n_samples: int, trials: int, seed: int, prior: Prior | None = None) -> np.ndarray:
    """Final population risks (trials,) of full-dimensional multi-pass SGD over ``n_samples`` fixed samples.

    Per trial: w* ~ prior, X (n_samples × d) with rows x ~ N(0, H), y = Xw* + ε; each update takes a uniformly drawn
    (with replacement) row of X and steps on its sketched features Sx. Memory O(trials·n_samples·d).
    """
    prior = prior or Prior()
    d = spectrum.d
    S = full_sketch(sketch_seed, M, d)
    lam = spectrum.eigenvalues()
    gen = seeds.rng(seed, seeds.NAIVE_DATA, 1)  # 1: the multi-pass reference's stream (one-pass uses the bare tag)
    W = gen.standard_normal((trials, d)) * np.sqrt(prior.variances(spectrum))
    X = gen.standard_normal((trials, n_samples, d)) * np.sqrt(lam)
    y = np.einsum("rnd,rd->rn", X, W) + np.sqrt(sigma2) * gen.standard_normal((trials, n_samples))
    Z = X @ S.T
    rows = np.arange(trials)
    v = np.zeros((trials, M))
    for g in schedule.step_sizes():
        i = gen.integers(0, n_samples, size=trials)
        z = Z[rows, i]
        v -= (g * (np.einsum("rm,rm->r", z, v) - y[rows, i]))[:, None] * z
    diff = v @ S - W
    return sigma2 + np.einsum("rd,d,rd->r", diff, lam, diff)
