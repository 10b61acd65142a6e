"""Multi-pass SGD with data reuse, by Monte Carlo in the reduced coordinates with an explicit dataset.

N samples are drawn once per trial; each of the L updates picks one of them uniformly at random (with replacement)
and takes a step on it; the last iterate's population risk is exact. The iterates correlate with the training set,
so no diagonal recursion closes: only Monte Carlo is exact here (the one-pass engine is the N ≫ L² limit).

In Σ's eigenbasis a sample is z̃ ~ N(0, diag μ) with label y = <z̃, θ*> + ξ, ξ ~ N(0, σ² + Approx(S, w*)) and the
error e = v − θ* obeys e ← e − γ_t (<z̃_i, e> − ξ_i) z̃_i, so only (z̃_i, ξ_i) are stored: memory O(N·(M + 1)) per
trial (8 bytes each), trials are run in blocks of at most ``_BLOCK_BYTES`` of data. Trial r's dataset comes from
``seeds.rng(seed, REUSE_DATA, r)`` and its indices, in chunks of INDEX_CHUNK steps, from
``seeds.rng(seed, REUSE_INDEX, r, chunk)``: the numbers never depend on the block size.
"""

from __future__ import annotations

import numpy as np

from sketchlaw import seeds
from sketchlaw.errors import check_int
from sketchlaw.engine.stability import check_stable
from sketchlaw.engine.sgd import MonteCarloResult, check_divergence, population_risks

# Stream tags beside seeds.SKETCH ... NAIVE_DATA (kept clear of them; candidates to move into sketchlaw.seeds).
REUSE_DATA, REUSE_INDEX, NAIVE_REUSE = 101, 102, 103
INDEX_CHUNK = 2**14
_BLOCK_BYTES = 64 * 2**20
_EXPLOSION_FACTOR = 1e8


def dataset(seed: int, trial: int, n_samples: int, mu: np.ndarray, noise_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Trial ``trial``'s samples: z̃ (n_samples, M) ~ N(0, diag μ) and ξ (n_samples,) ~ N(0, noise_sd²)."""
    gen = seeds.rng(seed, REUSE_DATA, trial)
    Z = gen.standard_normal((n_samples, len(mu))) * np.sqrt(mu)
    return Z, gen.standard_normal(n_samples) * noise_sd


def sample_indices(seed: int, trial: int, n_samples: int, start: int, stop: int) -> np.ndarray:
    """Indices drawn by updates start+1, ..., stop of trial ``trial`` (uniform on [0, n_samples), with replacement)."""
    out = []
    for c in range(start // INDEX_CHUNK, (stop - 1) // INDEX_CHUNK + 1):
        chunk = seeds.rng(seed, REUSE_INDEX, trial, c).integers(0, n_samples, size=INDEX_CHUNK)
        lo, hi = max(start, c * INDEX_CHUNK) - c * INDEX_CHUNK, min(stop, (c + 1) * INDEX_CHUNK) - c * INDEX_CHUNK
        out.append(chunk[lo:hi])
    return np.concatenate(out)


def run_multipass(mu, targets, approx, sigma2: float, schedule, n_samples: int, seed: int,
                  first_trial: int = 0, data=None) -> MonteCarloResult:
    """Multi-pass SGD from v_0 = 0 over ``n_samples`` fixed samples for each row of ``targets`` (Uᵀv*, (trials, M)).

    ``schedule`` counts updates (L = schedule.N). ``first_trial`` numbers the trials (their random streams), so a
    run split into pieces reproduces the whole run. ``data(trial)`` gives a trial's samples (z̃ (n_samples, M), ξ
    (n_samples,)) in Σ's eigenbasis: by default Gaussian ones (``dataset``); a real dataset is passed here, whose ξ
    need not be independent of z̃ (the population is then the dataset itself: the risk is exact on it).
    """
    mu = np.asarray(mu, dtype=float)
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    R, M = targets.shape
    n_samples = check_int("n_samples", n_samples, minimum=1)
    approx = np.broadcast_to(np.asarray(approx, dtype=float), (R,))
    check_stable(schedule.gamma, mu)
    gammas, L = schedule.step_sizes(), schedule.N
    block = max(1, _BLOCK_BYTES // (8 * n_samples * (M + 1)))
    risks = np.empty(R)
    for r0 in range(0, R, block):
        rows = np.arange(r0, min(R, r0 + block))
        draws = [dataset(seed, first_trial + r, n_samples, mu, float(np.sqrt(sigma2 + approx[r]))) if data is None
                 else data(first_trial + r) for r in rows]
        Z = np.stack([z for z, _ in draws])   # (b, N, M)
        XI = np.stack([x for _, x in draws])  # (b, N)
        err = -targets[rows].copy()
        limit = _EXPLOSION_FACTOR * max(1.0, float(np.max(np.sum(mu * targets[rows] ** 2, axis=1))))
        local = np.arange(len(rows))
        for start in range(0, L, INDEX_CHUNK):
            stop = min(L, start + INDEX_CHUNK)
            idx = np.stack([sample_indices(seed, first_trial + r, n_samples, start, stop) for r in rows])
            for i in range(stop - start):
                z = Z[local, idx[:, i]]
                resid = np.einsum("rm,rm->r", z, err) - XI[local, idx[:, i]]
                err -= (gammas[start + i] * resid)[:, None] * z
            check_divergence(err, mu, limit, stop, schedule.gamma)
        risks[rows] = population_risks(err, mu, sigma2, approx[rows])
    return MonteCarloResult(risks, np.array(approx), sigma2)


def multipass_monte_carlo(problem, schedule, n_samples: int, trials: int, seed: int) -> MonteCarloResult:
    """``trials`` independent multi-pass runs on ``problem``, each with a fresh w* and a fresh dataset."""
    trials = check_int("trials", trials, minimum=1)
    targets, approx = problem.sample_targets(trials, seed)
    return run_multipass(problem.mu, targets, approx, problem.sigma2, schedule, n_samples, seed)


def expected_repeats(L: int, n_samples: int) -> float:
    """Expected number of updates that reuse an already-drawn sample: L − N(1 − (1 − 1/N)^L) ≈ L²/(2N) for L ≪ N."""
    return float(L - n_samples * -np.expm1(L * np.log1p(-1.0 / n_samples)))
