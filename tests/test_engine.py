"""The exact engine against its definitions: Monte Carlo, step-by-step recursion, brute-force linear algebra."""

import numpy as np
import pytest
from scipy import stats

from sketchlaw.engine.exact import ExactEngine, phase_map
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.engine.naive import naive_sgd
from sketchlaw.engine.problem import full_sketch
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.sgd import monte_carlo, run_sgd
from sketchlaw.engine.spectra import Prior, Spectrum

from .conftest import make_problem

MC_CASES = [  # (a, b, M, N, gamma): both paper spectra, a source prior, both regimes of M vs (N_eff γ)^(1/a)
    (1.5, None, 16, 1000, 0.1),
    (1.5, None, 32, 3000, 0.2),
    (2.0, None, 8, 3000, 0.3),
    (2.0, None, 32, 500, 0.1),
    (2.0, 1.5, 16, 2000, 0.1),
    (2.0, 3.0, 16, 1000, 0.2),
]


@pytest.mark.parametrize("a,b,M,N,gamma", MC_CASES)
def test_monte_carlo_mean_matches_exact_expected_risk(a, b, M, N, gamma):
    problem = make_problem(a=a, b=b, M=M, d=2048, seed=11)
    schedule = Schedule(gamma, N)
    exact = ExactEngine.from_problem(problem).run(schedule)
    mc = monte_carlo(problem, schedule, trials=2000, seed=7)
    z = (mc.mean - exact.risk) / mc.sem
    assert abs(z) < 3, f"MC mean {mc.mean:.6g} ± {mc.sem:.2g} vs exact {exact.risk:.6g} (z = {z:.2f})"


def test_monte_carlo_checkpoints_match_exact_trajectory():
    problem = make_problem(a=1.5, M=16, seed=4)
    schedule = Schedule(0.2, 2000)
    cps = [0, 10, 100, 700, 2000]
    exact = ExactEngine.from_problem(problem).run(schedule, checkpoints=cps)
    mc = monte_carlo(problem, schedule, trials=2000, seed=1, checkpoints=cps)
    for k, t in enumerate(cps):
        r = mc.checkpoint_risks[k]
        z = (r.mean() - exact[k].risk) / (r.std(ddof=1) / np.sqrt(len(r)))
        assert abs(z) < 3, (t, z)
    assert np.array_equal(mc.checkpoint_risks[-1], mc.risks)


def test_reduced_sgd_matches_naive_full_dimensional_sgd():
    spectrum, M, sigma2, sketch_seed = Spectrum("power", 1.5, 200), 10, 0.5, 5
    problem = make_problem(a=1.5, M=M, d=200, sigma2=sigma2, seed=sketch_seed)
    schedule = Schedule(0.15, 400)
    reduced = monte_carlo(problem, schedule, trials=2000, seed=2).risks
    naive = naive_sgd(spectrum, M, sigma2, sketch_seed, schedule, trials=2000, seed=3)
    se = np.sqrt(reduced.var(ddof=1) / len(reduced) + naive.var(ddof=1) / len(naive))
    assert abs(reduced.mean() - naive.mean()) < 3 * se
    assert stats.ks_2samp(reduced, naive).pvalue > 0.01
    exact = ExactEngine.from_problem(problem).run(schedule).risk
    assert abs(naive.mean() - exact) < 3 * naive.std(ddof=1) / np.sqrt(len(naive))


def test_approximation_error_equals_least_squares_residual():
    problem = make_problem(a=1.5, M=12, d=300, seed=8, b=2.5)
    v_eig, approx = problem.sample_targets(5, seed=9)
    W = problem.targets(5, seed=9)
    lam = problem.spectrum.eigenvalues()
    S = full_sketch(problem.seed, problem.M, 300)
    B = np.sqrt(lam)[:, None] * S.T  # H^{1/2} Sᵀ
    for j in range(5):
        g = np.sqrt(lam) * W[:, j]
        coef, *_ = np.linalg.lstsq(B, g, rcond=None)
        assert approx[j] == pytest.approx(np.sum((g - B @ coef) ** 2), rel=1e-9)
        assert problem.U @ v_eig[j] == pytest.approx(coef, rel=1e-8, abs=1e-10)  # v* = argmin


def test_prior_averages_equal_means_over_sampled_targets():
    problem = make_problem(a=2.0, M=8, d=1024, seed=2)
    v_eig, approx = problem.sample_targets(20000, seed=1)
    se = approx.std(ddof=1) / np.sqrt(len(approx))
    assert abs(approx.mean() - problem.approx) < 4 * se
    sq = v_eig ** 2
    se_p = sq.std(axis=0, ddof=1) / np.sqrt(len(sq))
    assert np.all(np.abs(sq.mean(axis=0) - problem.p0) < 4 * se_p)


def test_initial_error_profile_is_accurate_for_tiny_eigenvalues():
    """a = 3, M = 1024: μ_M ~ 1e-9, so (Uᵀ T U)_jj ~ μ_j² sits below ε‖T‖. p(0) must still equal the mean of
    (Uᵀv*)_j² over sampled targets (which never form T) for every mode; forming T first gave 50 negative entries
    and |z| up to 300 here."""
    problem = make_problem(a=3.0, M=1024, d=4096, seed=11, tail="mean")
    assert problem.mu[-1] < 1e-8
    v_eig, _ = problem.sample_targets(2000, seed=7)
    sq = v_eig ** 2
    z = (sq.mean(axis=0) - problem.p0) / (sq.std(axis=0, ddof=1) / np.sqrt(len(sq)))
    assert (problem.p0 > 0).all()
    assert np.abs(z).max() < 5, (np.argmax(np.abs(z)), np.abs(z).max())


def test_analytic_risk_of_an_iterate_equals_empirical_squared_error(rng):
    d, M, sigma2 = 200, 10, 0.7
    spectrum = Spectrum("power", 2.0, d)
    problem = make_problem(a=2.0, M=M, d=d, sigma2=sigma2, seed=6)
    S = full_sketch(problem.seed, M, d)
    lam = spectrum.eigenvalues()
    w = rng.standard_normal(d)
    v = rng.standard_normal(M) * 0.3
    analytic = sigma2 + np.sum(lam * (S.T @ v - w) ** 2)
    # The reduced form σ² + Approx + (v − v*)ᵀΣ(v − v*), with v* from the normal equations.
    Sigma = (S * lam) @ S.T
    vstar = np.linalg.solve(Sigma, S @ (lam * w))
    approx = np.sum(lam * (S.T @ vstar - w) ** 2)
    assert analytic == pytest.approx(sigma2 + approx + (v - vstar) @ Sigma @ (v - vstar), rel=1e-10)
    n = 200_000
    x = rng.standard_normal((n, d)) * np.sqrt(lam)
    sq = (x @ (S.T @ v) - (x @ w + np.sqrt(sigma2) * rng.standard_normal(n))) ** 2
    assert abs(sq.mean() - analytic) < 4 * sq.std(ddof=1) / np.sqrt(n)


@pytest.mark.parametrize("a,M,d,gamma", [(1.5, 64, 4096, 0.1), (2.0, 128, 4096, 0.3), (3.0, 256, 8192, 0.2)])
def test_phase_jumping_equals_step_by_step_recursion(a, M, d, gamma):
    engine = ExactEngine.from_problem(make_problem(a=a, M=M, d=d, seed=1))
    schedule = Schedule(gamma, 20000)
    cps = [1, 37, 1000, 5000, 20000]
    stepped = engine.run(schedule, checkpoints=cps, method="step")
    jumped = engine.run(schedule, checkpoints=cps, method="jump")
    for s, j in zip(stepped, jumped):
        assert j.bias == pytest.approx(s.bias, rel=1e-10)
        assert j.variance == pytest.approx(s.variance, rel=1e-10)


def test_phase_map_is_an_exact_orthogonal_eigendecomposition():
    problem = make_problem(a=2.0, M=96, d=4096, seed=2)
    g, mu = 0.25, problem.mu
    pm = phase_map(mu, g)
    K = np.diag((1 - g * mu) ** 2 + (g * mu) ** 2) + g * g * np.outer(mu, mu)
    P = np.random.default_rng(0).standard_normal((len(mu), 3))
    Qk, Qd = pm.to_eigen(P)
    assert pm.from_eigen(Qk, Qd) == pytest.approx(P, abs=1e-13)
    assert pm.from_eigen((1 - pm.theta_kept)[:, None] * Qk, (1 - pm.e_deflated)[:, None] * Qd) == \
        pytest.approx(K @ P, abs=1e-13)
    assert np.abs(pm.V.T @ pm.V - np.eye(len(pm.V))).max() < 1e-12


def test_chunked_sigma_equals_dense_product():
    problem = make_problem(a=1.5, M=24, d=3000, seed=5)  # d not a multiple of the chunk size
    S = full_sketch(5, 24, 3000)
    lam = problem.spectrum.eigenvalues()
    Sigma = (S * lam) @ S.T
    assert (problem.U * problem.mu) @ problem.U.T == pytest.approx(Sigma, rel=1e-12, abs=1e-15)
    assert problem.approx == pytest.approx(np.trace(np.diag(lam)) - np.trace(np.linalg.solve(Sigma, (S * lam**2) @ S.T)),
                                           rel=1e-9)


def test_sketch_entries_have_variance_one_over_M():
    S = full_sketch(0, 64, 4096)
    assert S.var() * 64 == pytest.approx(1.0, abs=4 * np.sqrt(2 / S.size))
    assert abs(S.mean()) < 4 / np.sqrt(S.size) / 8


def test_critical_step_size_is_the_exact_divergence_threshold():
    problem = make_problem(a=1.5, M=32, d=2048, seed=0)
    mu = problem.mu
    gc = critical_step_size(mu)
    assert 2 / (2 * mu.max() + mu.sum()) <= gc <= 2 / mu.sum()
    for g, expect_stable in [(gc * 0.999, True), (gc * 1.001, False)]:
        K = np.diag((1 - g * mu) ** 2 + (g * mu) ** 2) + g * g * np.outer(mu, mu)
        assert (np.linalg.eigvalsh(K).max() < 1) == expect_stable


def test_reduced_sgd_is_deterministic_and_seed_dependent(small_problem):
    schedule = Schedule(0.1, 300)
    a = monte_carlo(small_problem, schedule, trials=50, seed=1).risks
    b = monte_carlo(small_problem, schedule, trials=50, seed=1).risks
    c = monte_carlo(small_problem, schedule, trials=50, seed=2).risks
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_fixed_target_runs_condition_on_one_draw(small_problem):
    schedule = Schedule(0.1, 200)
    mc = monte_carlo(small_problem, schedule, trials=20, seed=3, fresh_target=False)
    assert np.all(mc.approx == mc.approx[0])


def test_run_sgd_rejects_divergent_step(small_problem):
    from sketchlaw.errors import ParameterError

    with pytest.raises(ParameterError, match="gamma"):
        run_sgd(small_problem.mu, np.zeros((2, 16)), 0.0, 1.0, Schedule(5.0, 100), seed=0)


def test_run_many_equals_individual_runs():
    engine = ExactEngine.from_problem(make_problem(a=1.5, M=64, d=4096, seed=3))
    schedules = [Schedule(0.2, N) for N in (100, 1000, 12345, 10**6)] + [Schedule(0.1, 5000, kind="constant")]
    many = engine.run_many(schedules)
    for sch, r in zip(schedules, many):
        single = engine.run(sch, method="step" if sch.N <= 12345 else "jump")
        assert r.bias == pytest.approx(single.bias, rel=1e-10)
        assert r.variance == pytest.approx(single.variance, rel=1e-10)


@pytest.mark.parametrize("kind,a,b", [("power", 1.5, None), ("power", 2.0, 1.5), ("logpower", 2.0, None)])
def test_mean_field_tail_makes_the_truncation_irrelevant(kind, a, b):
    """With the tail's mean added, d = 512 and d = 8192 give the same problem (same sketch prefix) to ~1e-3,
    while cutting the tail moves Approx by far more: the infinite-dimensional limit is what is simulated."""
    from sketchlaw.engine.problem import build_problem
    from sketchlaw.engine.spectra import tail_sums

    def approx(d, tail):
        return build_problem(Spectrum(kind, a, d), 16, 1.0, 0, Prior(b), tail=tail).approx

    small, large = approx(512, "mean"), approx(8192, "mean")
    assert small == pytest.approx(large, rel=2e-3)
    assert abs(approx(512, "none") - large) > 20 * abs(small - large)
    if kind == "power" and b is None:
        i = np.arange(513, 10**6 + 1, dtype=float)
        assert tail_sums(Spectrum(kind, a, 512), Prior())["tau_H"] == pytest.approx(
            np.sum(i ** -a) + tail_sums(Spectrum(kind, a, 10**6), Prior())["tau_H"], rel=1e-12)


def test_monte_carlo_with_mean_field_tail_matches_exact():
    from sketchlaw.engine.problem import build_problem

    problem = build_problem(Spectrum("power", 1.5, 1024), 16, 1.0, 2, tail="mean")
    schedule = Schedule(0.2, 1500)
    exact = ExactEngine.from_problem(problem).run(schedule)
    mc = monte_carlo(problem, schedule, trials=2000, seed=5)
    assert abs(mc.mean - exact.risk) < 3 * mc.sem
    assert mc.approx.mean() == pytest.approx(problem.approx, rel=0.05)


def test_multiplicity_equals_repeated_modes():
    """A mode of multiplicity n behaves as n identical copies: same risk by jumps and by steps."""
    mu = np.array([0.5, 0.2, 0.05, 0.01])
    p0 = np.array([1.0, 0.7, 2.0, 0.3])
    n = np.array([1, 3, 2, 5])
    from sketchlaw.engine.schedules import Schedule

    copies = ExactEngine(np.repeat(mu, n), np.repeat(p0, n), 1.0, 0.1)
    weighted = ExactEngine(mu, p0, 1.0, 0.1, multiplicity=n)
    sch = Schedule(0.05, 5000)
    a, b = copies.run(sch), weighted.run(sch)
    assert abs(a.bias - b.bias) <= 1e-12 * a.bias and abs(a.variance - b.variance) <= 1e-12 * a.variance
    s = weighted.run(sch, method="step")
    assert abs(s.bias - b.bias) <= 1e-10 * s.bias and abs(s.variance - b.variance) <= 1e-10 * s.variance
    assert critical_step_size(np.repeat(mu, n)) == pytest.approx(critical_step_size(mu, n), rel=1e-12)


def test_batch_of_one_is_the_plain_engine_and_batches_jump_like_steps():
    rng = np.random.default_rng(3)
    mu = np.sort(rng.uniform(1e-4, 0.3, 40))[::-1]
    p0 = rng.uniform(0.1, 1.0, 40)
    from sketchlaw.engine.schedules import Schedule

    sch = Schedule(0.1, 20000)
    plain, one = ExactEngine(mu, p0, 1.0, 0.2).run(sch), ExactEngine(mu, p0, 1.0, 0.2, batch=1).run(sch)
    assert plain.risk == one.risk
    eng = ExactEngine(mu, p0, 1.0, 0.2, batch=8)
    jump, step = eng.run(sch, method="jump"), eng.run(sch, method="step")
    assert abs(jump.risk - step.risk) <= 1e-10 * step.risk
    assert eng.run(sch).variance < 0.5 * plain.variance  # averaging 8 gradients cuts the variance
    assert critical_step_size(mu, batch=8) > critical_step_size(mu)
