"""Textbook one-pass SGD in the full d-dimensional space: the reference the reduced engines are tested against.

Draw x ~ N(0, H), form the sketched features Sx, y = <x, w*> + ε, and update v ← v − γ_t(<Sx, v> − y)Sx. It holds the
whole M × d sketch and costs O(M·d) per step: for tests and benchmarks only.
"""

from __future__ import annotations

import numpy as np

from sketchlaw import seeds
from sketchlaw.engine.problem import full_sketch
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum


def naive_sgd(spectrum: Spectrum, M: int, sigma2: float, sketch_seed: int, schedule: Schedule, trials: int,
              seed: int, prior: Prior | None = None, wstar: np.ndarray | None = None,
              sketch: str = "gaussian") -> np.ndarray:
    """Final population risks (trials,) of full-dimensional SGD on a sketch of family ``sketch``; a fresh w* ~ prior
    per trial unless given."""
    prior = prior or Prior()
    d = spectrum.d
    S = full_sketch(sketch_seed, M, d, sketch)
    lam = spectrum.eigenvalues()
    gen = seeds.rng(seed, seeds.NAIVE_DATA)
    W = (gen.standard_normal((trials, d)) * np.sqrt(prior.variances(spectrum))) if wstar is None else \
        np.broadcast_to(wstar, (trials, d)).copy()
    v = np.zeros((trials, M))
    sqrt_lam, noise_sd = np.sqrt(lam), np.sqrt(sigma2)
    for g in schedule.step_sizes():
        x = gen.standard_normal((trials, d)) * sqrt_lam
        y = np.einsum("rd,rd->r", x, W) + noise_sd * gen.standard_normal(trials)
        z = x @ S.T
        v -= (g * (np.einsum("rm,rm->r", z, v) - y))[:, None] * z
    diff = v @ S - W  # Sᵀv − w*, row-wise
    return sigma2 + np.einsum("rd,d,rd->r", diff, lam, diff)


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
