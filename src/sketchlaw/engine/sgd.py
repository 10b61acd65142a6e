"""Monte Carlo one-pass SGD in the reduced coordinates (docs/METHODS.md §10), vectorized over independent trials.

Given (S, w*), SGD on sketched features z = Sx is SGD on z ~ N(0, Σ), y = <z, v*> + ξ with ξ ~ N(0, σ_M²)
independent of z (σ_M² = σ² + Approx(S, w*)). In Σ's eigenbasis (z̃ = Uᵀz ~ N(0, diag μ), θ* = Uᵀv*) every step costs
O(M) instead of O(M·d), and the trajectory has exactly the distribution of the paper's SGD. The population risk of an
iterate is exact, with no test set: R_M(v) = σ² + Approx(S, w*) + Σ_j μ_j (θ_j − θ*_j)².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sketchlaw import seeds
from sketchlaw.errors import DivergenceError, check_int
from sketchlaw.engine.stability import check_stable
from sketchlaw.engine.schedules import Schedule

# Random draws are made in blocks of steps: large enough to amortize the generator, small enough for memory.
_STEP_BLOCK_BYTES = 32 * 2**20
# An iterate error this many times the initial one (or non-finite) means divergence (the expected risk is bounded).
_EXPLOSION_FACTOR = 1e8


@dataclass
class MonteCarloResult:
    """Realized risks of the final iterate of each trial (and optionally at checkpoints)."""

    risks: np.ndarray               # (trials,) exact population risk R_M(v_N) of each trial's last iterate
    approx: np.ndarray              # (trials,) Approx(S, w*) of each trial's target
    sigma2: float
    checkpoints: np.ndarray | None = None   # (k,) step counts
    checkpoint_risks: np.ndarray | None = None  # (k, trials)

    @property
    def mean(self) -> float:
        return float(np.mean(self.risks))

    @property
    def std(self) -> float:
        return float(np.std(self.risks, ddof=1)) if len(self.risks) > 1 else 0.0

    @property
    def sem(self) -> float:
        return self.std / np.sqrt(len(self.risks))

    def summary(self) -> dict:
        return {"mc_trials": len(self.risks), "mc_mean": self.mean, "mc_std": self.std, "mc_sem": self.sem}


def run_sgd(mu: np.ndarray, targets: np.ndarray, approx: np.ndarray, sigma2: float, schedule: Schedule,
            seed: int, checkpoints=None, progress: bool = False, batch: int = 1,
            dtype=np.float64) -> MonteCarloResult:
    """One-pass SGD from v_0 = 0 for each row of ``targets`` (Uᵀv*, shape (trials, M)), all trials at once.

    ``batch`` B > 1: each of the schedule's updates averages the gradient over B fresh samples (N·B samples in all).

    ``approx`` (trials,) gives each trial's Approx(S, w*), hence its noise level σ² + Approx. Data are drawn from
    ``seeds.rng(seed, SGD_DATA, block)``; the same seed gives identical results. ``dtype=np.float32`` draws the data
    in single precision (a different stream, cheaper to draw; the iterates stay in double precision).
    """
    mu = np.asarray(mu, dtype=float)
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    R, M = targets.shape
    approx = np.broadcast_to(np.asarray(approx, dtype=float), (R,))
    batch = check_int("batch", batch, minimum=1)
    check_stable(schedule.gamma, mu, batch=batch)
    cps = np.array(sorted(set(int(c) for c in ([schedule.N] if checkpoints is None else checkpoints))))
    sqrt_mu = np.sqrt(mu)
    noise_sd = np.sqrt(sigma2 + approx)
    err = -targets.copy()  # e_0 = v_0 − θ* = −θ*
    limit = _EXPLOSION_FACTOR * max(1.0, float(np.max(np.sum(mu * targets ** 2, axis=1))))
    gammas = schedule.step_sizes()
    block = max(1, _STEP_BLOCK_BYTES // (8 * R * batch * (M + 1)))
    cp_risks, ci, t = [], 0, 0
    if cps[0] == 0:
        cp_risks.append(population_risks(err, mu, sigma2, approx)); ci = 1
    # One buffer for every block's draws, refilled in place: a fresh array of this size each block costs page faults
    # (about a third of the draws' time on the project's VM); filled in place, the stream is the same number for number.
    Z_buffer = np.empty((min(block, schedule.N), R, batch, M) if batch > 1 else (min(block, schedule.N), R, M),
                        dtype=dtype)
    starts = range(0, schedule.N, block)
    if progress:  # to stderr, i.e. the job's log in the workflow
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"SGD steps (blocks of {block})", mininterval=5.0, ascii=True)
    for b, start in enumerate(starts):
        n = min(block, schedule.N - start)
        gen = seeds.rng(seed, seeds.SGD_DATA, b)
        if batch > 1:
            t = _batched_steps(gen, err, Z_buffer[:n], sqrt_mu, noise_sd, gammas[start:start + n], t, cps,
                               cp_risks, lambda e: population_risks(e, mu, sigma2, approx))
            ci = int(np.searchsorted(cps, t, side="right"))
            check_divergence(err, mu, limit, t, schedule.gamma)
            continue
        Z = Z_buffer[:n]
        gen.standard_normal(out=Z, dtype=dtype)
        Z *= sqrt_mu.astype(dtype, copy=False)                   # z̃_t ~ N(0, diag μ)
        XI = gen.standard_normal((n, R), dtype=dtype) * noise_sd  # ξ_t ~ N(0, σ_M²), independent of z̃_t
        G = gammas[start:start + n]
        for i in range(n):
            z = Z[i]
            # e_t = e_{t−1} − γ_t (<z, e_{t−1}> − ξ_t) z
            resid = np.einsum("rm,rm->r", z, err) - XI[i]
            err -= (G[i] * resid)[:, None] * z
            t += 1
            if ci < len(cps) and cps[ci] == t:
                cp_risks.append(population_risks(err, mu, sigma2, approx)); ci += 1
        check_divergence(err, mu, limit, t, schedule.gamma)
    risks = population_risks(err, mu, sigma2, approx)
    if checkpoints is None:
        return MonteCarloResult(risks, np.array(approx), sigma2)
    return MonteCarloResult(risks, np.array(approx), sigma2, cps, np.array(cp_risks))


def check_divergence(err, mu, limit, t, gamma):
    energy = np.sum(mu * err * err, axis=1)
    if not np.all(np.isfinite(energy)) or energy.max() > limit:
        raise DivergenceError(f"Monte Carlo SGD diverged by step {t} at gamma={gamma} "
                              f"(iterate error grew beyond {limit:.3g} or became non-finite)")


def _batched_steps(gen, err, Z, sqrt_mu, noise_sd, gammas, t, cps, cp_risks, risks):
    """len(gammas) mini-batch updates on ``err`` in place: e ← e − (γ/B) Σ_b (<z_b, e> − ξ_b) z_b, the samples drawn
    into ``Z`` (n × R × B × M)."""
    n, R, batch, M = Z.shape
    gen.standard_normal(out=Z, dtype=Z.dtype)
    Z *= sqrt_mu.astype(Z.dtype, copy=False)
    XI = gen.standard_normal((n, R, batch), dtype=Z.dtype) * noise_sd[:, None]
    for i in range(n):
        resid = np.einsum("rbm,rm->rb", Z[i], err) - XI[i]
        err -= (gammas[i] / batch) * np.einsum("rb,rbm->rm", resid, Z[i])
        t += 1
        if t in cps:
            cp_risks.append(risks(err))
    return t


def population_risks(err, mu, sigma2, approx):
    return sigma2 + approx + np.sum(mu * err * err, axis=1)


def monte_carlo(problem, schedule: Schedule, trials: int, seed: int, fresh_target: bool = True,
                checkpoints=None, progress: bool = False, batch: int = 1, dtype=np.float64) -> MonteCarloResult:
    """R independent SGD runs on ``problem``: fresh data per trial, and a fresh w* per trial unless
    ``fresh_target`` is False (then one w* is drawn and shared, and the risk is conditional on it)."""
    trials = check_int("trials", trials, minimum=1)
    targets, approx = problem.sample_targets(trials if fresh_target else 1, seed)
    if not fresh_target:
        targets, approx = np.repeat(targets, trials, axis=0), np.repeat(approx, trials)
    return run_sgd(problem.mu, targets, approx, problem.sigma2, schedule, seed, checkpoints, progress, batch, dtype)
