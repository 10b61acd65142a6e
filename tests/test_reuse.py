"""Multi-pass SGD with data reuse: the reduced Monte Carlo against naive full-dimensional multi-pass SGD, and its
approach to the one-pass exact risk as the dataset grows at a fixed number of updates."""

import numpy as np
import pytest
from scipy import stats

from sketchlaw.engine import reuse
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.naive import naive_multipass_sgd
from sketchlaw.engine.reuse import expected_repeats, multipass_monte_carlo, run_multipass, sample_indices
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum

from .conftest import make_problem


@pytest.mark.parametrize("a,b,M,N,L,gamma", [(2.0, None, 16, 50, 200, 0.3), (1.5, 2.0, 8, 20, 300, 0.2)])
def test_reduced_multipass_matches_naive_full_dimensional_multipass(a, b, M, N, L, gamma):
    d, sigma2, sketch_seed = 200, 1.0, 3
    problem = make_problem(a=a, b=b, M=M, d=d, sigma2=sigma2, seed=sketch_seed)
    schedule = Schedule(gamma, L)
    reduced = multipass_monte_carlo(problem, schedule, N, trials=2000, seed=1).risks
    naive = naive_multipass_sgd(Spectrum("power", a, d), M, sigma2, sketch_seed, schedule, N, trials=2000, seed=2,
                                prior=Prior(b))
    se = np.sqrt(reduced.var(ddof=1) / len(reduced) + naive.var(ddof=1) / len(naive))
    assert abs(reduced.mean() - naive.mean()) < 4 * se
    assert stats.ks_2samp(reduced, naive).pvalue > 0.01


def test_multipass_approaches_the_one_pass_risk_as_the_dataset_grows():
    problem = make_problem(a=2.0, M=16, d=256, seed=4)
    L = 100
    schedule = Schedule(0.3, L)
    onepass = ExactEngine.from_problem(problem).run(schedule).risk
    z = {}
    for N in (10, 100, 5000):  # about 45, 33 and 1 repeated draws
        mc = multipass_monte_carlo(problem, schedule, N, trials=2000, seed=6)
        z[N] = (mc.mean - onepass) / mc.sem
    assert abs(z[5000]) < 4, z
    assert z[10] > 10 and z[10] > z[100] > 4 + z[5000], z  # reuse costs risk, less so as N grows


def test_results_do_not_depend_on_the_trial_block_size_or_on_splitting(monkeypatch):
    problem = make_problem(a=2.0, M=8, d=128, seed=1)
    schedule = Schedule(0.3, 40)
    targets, approx = problem.sample_targets(6, 3)
    args = (problem.mu, targets, approx, problem.sigma2, schedule, 30, 5)
    whole = run_multipass(*args).risks
    monkeypatch.setattr(reuse, "_BLOCK_BYTES", 1)  # one trial per block
    assert np.array_equal(run_multipass(*args).risks, whole)
    tail = run_multipass(problem.mu, targets[4:], approx[4:], problem.sigma2, schedule, 30, 5, first_trial=4).risks
    assert np.array_equal(tail, whole[4:])


def test_index_chunks_are_one_stream():
    n, stop = 17, 2 * reuse.INDEX_CHUNK + 5
    full = sample_indices(3, 2, n, 0, stop)
    parts = np.concatenate([sample_indices(3, 2, n, lo, hi) for lo, hi in
                            [(0, 7), (7, reuse.INDEX_CHUNK + 1), (reuse.INDEX_CHUNK + 1, stop)]])
    assert np.array_equal(full, parts) and full.min() >= 0 and full.max() < n


def test_expected_repeats_against_counting():
    L, N = 300, 1000
    repeats = [L - len(np.unique(sample_indices(0, t, N, 0, L))) for t in range(2000)]
    se = np.std(repeats, ddof=1) / np.sqrt(len(repeats))
    assert abs(np.mean(repeats) - expected_repeats(L, N)) < 4 * se
    assert expected_repeats(L, 10**9) == pytest.approx(L * (L - 1) / (2 * 10**9), rel=1e-3)  # ≈ L²/2N
