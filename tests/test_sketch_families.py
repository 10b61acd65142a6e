"""Sketch families other than the paper's Gaussian (docs/METHODS.md §19): their structure, the problem build against
the dense definition, and the exact engine against full-dimensional SGD on the same sketch."""

import numpy as np
import pytest
import yaml

from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.naive import naive_sgd
from sketchlaw.engine.problem import build_problem, check_sketch, full_sketch, sketch_chunk, sketch_family
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.sgd import monte_carlo
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.errors import ParameterError
from sketchlaw.workflow.grid import ConfigError, check_config, plan

FAMILIES = ["gaussian", "rademacher", "sparse1", "sparse3", "srht"]


@pytest.mark.parametrize("label,parsed", [("gaussian", ("gaussian", 0)), ("rademacher", ("rademacher", 0)),
                                          ("sparse1", ("sparse", 1)), ("sparse12", ("sparse", 12)),
                                          ("srht", ("srht", 0))])
def test_family_labels(label, parsed):
    assert sketch_family(label) == parsed


@pytest.mark.parametrize("label", ["sparse0", "sparse", "Gaussian", "count", "sparse-2"])
def test_unknown_family_is_refused_naming_sketch(label):
    with pytest.raises(ParameterError, match="sketch"):
        sketch_family(label)


def test_sparse_family_needs_s_at_most_M():
    check_sketch("sparse8", 8)
    with pytest.raises(ParameterError, match="s <= M = 4"):
        check_sketch("sparse8", 4)


@pytest.mark.parametrize("label", FAMILIES[1:])
def test_every_family_has_unit_column_norm_and_the_gaussian_second_moment(label):
    """Each column S_i has ‖S_i‖² = 1 exactly (E[S_i S_iᵀ] = I/M with mean zero entries), as the Gaussian's has in mean:
    the mean-field tail and the normalisation of the equivalent carry over."""
    M, d = 16, 3000
    S = full_sketch(7, M, d, label)
    np.testing.assert_allclose((S**2).sum(axis=0), 1.0, rtol=1e-12)
    # E[S_i S_iᵀ] = I/M, estimated over the d columns: off-diagonals within 5 standard errors of 0
    second = S @ S.T / d
    off = second[~np.eye(M, dtype=bool)]
    assert np.abs(off).max() < 5 * np.sqrt(1.0 / (M * M * d)) * np.sqrt(np.log(M * M)), np.abs(off).max()
    np.testing.assert_allclose(np.diag(second), 1.0 / M, rtol=0.2)


def test_sparse_sketch_has_s_distinct_rows_per_column_drawn_uniformly():
    M, s, d = 12, 3, 24_000
    S = full_sketch(3, M, d, f"sparse{s}")
    assert ((S != 0).sum(axis=0) == s).all()
    np.testing.assert_allclose(np.abs(S[S != 0]), 1.0 / np.sqrt(s))
    counts = (S != 0).sum(axis=1)  # each row is hit with probability s/M per column
    expected, sd = d * s / M, np.sqrt(d * (s / M) * (1 - s / M))
    assert np.abs(counts - expected).max() < 4.5 * sd, counts
    signs = np.sign(S[S != 0])
    assert abs(signs.mean()) < 5 / np.sqrt(signs.size)


def test_sparse_chunk_is_sparse_and_dense_families_are_not():
    from scipy import sparse

    assert sparse.issparse(sketch_chunk(0, 16, 5000, 1, "sparse2"))
    assert isinstance(sketch_chunk(0, 16, 5000, 1, "rademacher"), np.ndarray)


def test_srht_rows_are_orthogonal_on_a_power_of_two():
    """With d = n = 2^k the SRHT's rows are scaled rows of an orthogonal matrix: S Sᵀ = (n/M)·I exactly."""
    M, d = 16, 2048
    S = full_sketch(5, M, d, "srht")
    np.testing.assert_allclose(S @ S.T, (d / M) * np.eye(M), atol=1e-10)
    # entries ±1/√M, and rows that are distinct Walsh functions times the column signs
    np.testing.assert_allclose(np.abs(S), 1.0 / np.sqrt(M))


@pytest.mark.parametrize("label", FAMILIES)
def test_build_equals_the_dense_definition(label):
    """μ, E Approx and E p(0) of the chunked (and, for sparse families, sparse) build against dense linear algebra
    on the whole sketch."""
    M, d, a, b = 12, 1500, 2.0, 1.5
    spectrum, prior = Spectrum("power", a, d), Prior(b)
    p = build_problem(spectrum, M, 1.0, 4, prior, tail="none", sketch=label)
    S = full_sketch(4, M, d, label)
    lam, s = spectrum.eigenvalues(), prior.variances(spectrum)
    Sigma = (S * lam) @ S.T
    mu, U = np.linalg.eigh(Sigma)
    mu, U = mu[::-1], U[:, ::-1]
    C = (S * (lam * np.sqrt(s)))  # S H Λ_w^{1/2}
    t = ((U.T @ C) ** 2).sum(axis=1)
    np.testing.assert_allclose(p.mu, mu, rtol=1e-10)
    assert p.approx == pytest.approx(np.sum(lam * s) - np.sum(t / mu), rel=1e-9)
    np.testing.assert_allclose(p.p0, t / mu**2, rtol=1e-8)


def test_gaussian_family_is_the_papers_sketch_byte_for_byte():
    """The default family draws exactly what the project drew before families existed (streams unchanged)."""
    a = build_problem(Spectrum("power", 2.0, 3000), 24, 1.0, seed=5)
    b = build_problem(Spectrum("power", 2.0, 3000), 24, 1.0, seed=5, sketch="gaussian")
    assert np.array_equal(a.mu, b.mu) and a.approx == b.approx and "sketch" not in a.meta


@pytest.mark.slow
@pytest.mark.parametrize("label,a,M,N,gamma", [("rademacher", 2.0, 8, 400, 0.2), ("sparse1", 2.0, 8, 400, 0.2),
                                               ("sparse2", 1.5, 8, 300, 0.1), ("srht", 2.0, 8, 300, 0.2)])
def test_exact_engine_agrees_with_full_dimensional_sgd_on_the_same_sketch(label, a, M, N, gamma):
    """The exact expected risk of one sketch of the family (Gaussian x: Sx is Gaussian for any fixed S, so the
    reduction of §3 holds) against naive SGD in d dimensions on that sketch, fresh w* and data per trial: within 4
    standard errors."""
    d = 256
    spectrum = Spectrum("power", a, d)
    problem = build_problem(spectrum, M, 1.0, 2, Prior(), tail="none", sketch=label)
    schedule = Schedule(gamma, N)
    exact = ExactEngine.from_problem(problem).run(schedule).risk
    risks = naive_sgd(spectrum, M, 1.0, 2, schedule, trials=3000, seed=9, sketch=label)
    z = (risks.mean() - exact) / (risks.std(ddof=1) / np.sqrt(len(risks)))
    assert abs(z) < 4, (label, risks.mean(), exact, z)


@pytest.mark.slow
@pytest.mark.parametrize("label", ["rademacher", "sparse1", "sparse4"])
def test_reduced_monte_carlo_agrees_with_exact_on_the_same_sketch(label):
    """The reduced Monte Carlo (fresh w* drawn through the family's own chunks) on a sketch of the family: within 4
    standard errors of its exact expected risk."""
    problem = build_problem(Spectrum("power", 2.0, 2048), 16, 1.0, 3, Prior(), tail="mean", sketch=label)
    schedule = Schedule(0.1, 2000)
    exact = ExactEngine.from_problem(problem).run(schedule).risk
    mc = monte_carlo(problem, schedule, trials=2000, seed=5)
    assert abs(mc.mean - exact) < 4 * mc.sem, (label, mc.mean, mc.sem, exact)


def _config(**block):
    base = yaml.safe_load(open("config/test.yaml"))
    base["experiments"] = {"sketches": {"spectrum": "power", "a": [2.0], "M": [8, 16], "N": [1000, 10000],
                                        "sketches": ["gaussian", "sparse2"], "sketch_seeds": [0], **block}}
    return base


def test_config_sketches_are_checked_naming_the_field():
    check_config(_config())
    with pytest.raises(ConfigError, match="experiments.sketches.sketches"):
        check_config(_config(sketches=["sparse16"]))  # s > the smallest M
    with pytest.raises(ConfigError, match="experiments.sketches.sketches"):
        check_config(_config(sketches=["srht", "srht"]))
    # CountSketch of d = 16 coordinates into 16 rows leaves rows empty: singular without the mean-field tail only
    check_config(_config(sketches=["sparse1"], M=[16], d_min=16, d_per_M=1))
    with pytest.raises(ConfigError, match="experiments.sketches.sketches.*rows empty"):
        check_config(_config(sketches=["sparse1"], M=[16], d_min=16, d_per_M=1, tail="none"))
    config = _config()
    config["experiments"]["main"] = {"spectrum": "power", "a": [2.0], "M": [8], "N": [100], "sketches": ["srht"]}
    with pytest.raises(ConfigError, match="experiments.main.sketches"):
        check_config(config)


def test_plan_draws_one_problem_per_family_and_keeps_gaussian_stems():
    jobs = plan(_config())["exact"]
    stems = sorted(j.problem.stem for j in jobs)
    assert len(stems) == 4 and len(set(stems)) == 4
    assert [s for s in stems if "_k" not in s] == sorted(s for s in stems if s.endswith(("M8_s0", "M16_s0"))
                                                         and "sparse" not in s)
    assert sum("_ksparse2_" in s for s in stems) == 2
