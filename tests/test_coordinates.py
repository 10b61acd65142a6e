"""Covariates with non-Gaussian coordinates (docs/METHODS.md §21): the laws, the exact fourth-moment recursion in d
dimensions against full-dimensional SGD, and the stability bound with a fourth moment."""

import numpy as np
import pytest

from sketchlaw.engine.coordinates import coordinate_law, draw, kurtosis
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.naive import fourth_moment_recursion, fourth_moment_risk, naive_sgd
from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.errors import ParameterError


@pytest.mark.parametrize("label", ["gaussian", "rademacher", "student10", "bernoulli0.3", "bernoulli1"])
def test_laws_have_unit_variance_and_their_fourth_moment(label):
    z = draw(np.random.default_rng(1), 1_000_000, label)
    for power, expected in ((1, 0.0), (2, 1.0), (4, kurtosis(label))):
        v = z**power
        assert abs(v.mean() - expected) <= 5 * v.std() / np.sqrt(z.size) + 1e-12, (power, v.mean(), expected)


@pytest.mark.parametrize("label", ["student4", "student3.5", "bernoulli0", "bernoulli1.5", "laplace"])
def test_laws_without_a_finite_fourth_moment_or_unknown_are_refused(label):
    with pytest.raises(ParameterError, match="coordinates"):
        coordinate_law(label)


def test_the_gaussian_draws_are_the_plain_normal_stream():
    assert np.array_equal(draw(np.random.default_rng(4), (3, 5)), np.random.default_rng(4).standard_normal((3, 5)))


def test_fourth_moment_recursion_with_gaussian_coordinates_is_the_exact_engine():
    """κ = 3: the d-dimensional recursion is the exact engine's M-dimensional one (§4) on the same sketch."""
    spectrum, sch = Spectrum("power", 1.5, 48), Schedule(0.15, 300)
    for sketch in ("gaussian", "sparse2"):
        p = build_problem(spectrum, 8, 0.7, 5, Prior(2.0), tail="none", sketch=sketch)
        exact = ExactEngine.from_problem(p).run(sch).risk
        full = fourth_moment_risk(spectrum, 8, 0.7, 5, sch, Prior(2.0), sketch=sketch)[0]
        assert full == pytest.approx(exact, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("label,gamma", [("rademacher", 0.2), ("student6", 0.2), ("bernoulli0.2", 0.1)])
def test_full_dimensional_sgd_agrees_with_the_fourth_moment_recursion(label, gamma):
    """d = 32, M = 8: naive SGD with x = H^{1/2}z (fresh w* and data per run) within 4 standard errors of the exact
    fourth-moment recursion."""
    spectrum, sch = Spectrum("power", 2.0, 32), Schedule(gamma, 200)
    risks = naive_sgd(spectrum, 8, 1.0, 2, sch, trials=4000, seed=3, coordinates=label)
    exact = fourth_moment_risk(spectrum, 8, 1.0, 2, sch, coordinates=label)[0]
    assert abs(risks.mean() - exact) < 4 * risks.std(ddof=1) / np.sqrt(len(risks)), (risks.mean(), exact)


@pytest.mark.parametrize("label", ["gaussian", "rademacher", "student6", "bernoulli0.2"])
def test_unsketched_stability_bound_with_a_fourth_moment(label):
    """P = I, H diagonal: the recursion's diagonal closes with e_j = 2γλ_j − (κ − 1)γ²λ_j², and the bound of §5 with
    that e (``critical_step_size(..., kurtosis=κ)``) is where the expected risk stops being bounded."""
    lam = np.arange(1, 17, dtype=float) ** -1.5
    kappa = kurtosis(label)
    gc = critical_step_size(lam, kurtosis=kappa)
    growth = []
    for g in (0.97 * gc, 1.03 * gc):
        r = fourth_moment_recursion(lam, np.eye(16), np.eye(16), 1.0, Schedule(g, 10000, kind="constant"), kappa,
                                    checkpoints=[5000, 10000])
        growth.append(r[1] / r[0])
    assert growth[0] < 1 + 1e-6 and growth[1] > 1.01, (label, gc, growth)
    if kappa > 3:
        assert gc < critical_step_size(lam)  # a heavier fourth moment lowers the bound


def test_fourth_moment_recursion_stays_exact_over_long_runs():
    """Near the stability bound and over thousands of steps (where an unsymmetrized recursion drifted away)."""
    spectrum, sch = Spectrum("power", 2.0, 32), Schedule(0.45, 3000, kind="constant")
    p = build_problem(spectrum, 8, 1.0, 2, Prior(), tail="none")
    exact = [r.risk for r in ExactEngine.from_problem(p).run(sch, checkpoints=[1500, 3000], method="step")]
    full = fourth_moment_risk(spectrum, 8, 1.0, 2, sch, checkpoints=[1500, 3000])
    np.testing.assert_allclose(full, exact, rtol=1e-9)


@pytest.mark.parametrize("label", ["rademacher", "student6", "bernoulli0.2"])
def test_sketched_stability_bound_lies_between_the_gaussian_and_the_kurtosis_formula(label):
    """With a sketch the coordinates of Sx mix those of x: the measured bound (spectral radius of the d-dimensional
    map) is the Gaussian sketch's exactly at κ = 3, and for other laws lies between the Gaussian bound of the sketched
    spectrum μ and the unsketched formula applied to μ with the law's κ."""
    from sketchlaw.engine.naive import fourth_moment_critical_step

    d, M = 16, 4
    spectrum = Spectrum("power", 2.0, d)
    S = full_sketch_for(d, M)
    lam, P = spectrum.eigenvalues(), S.T @ S
    mu = build_problem(spectrum, M, 1.0, 2, Prior(), tail="none").mu
    gaussian = fourth_moment_critical_step(lam, P, 3.0)
    assert gaussian == pytest.approx(critical_step_size(mu), rel=2e-4)
    measured = fourth_moment_critical_step(lam, P, kurtosis(label))
    ends = sorted([critical_step_size(mu), critical_step_size(mu, kurtosis=kurtosis(label))])
    assert ends[0] * (1 - 2e-4) <= measured <= ends[1] * (1 + 2e-4), (label, measured, ends)


def full_sketch_for(d, M):
    from sketchlaw.engine.problem import full_sketch

    return full_sketch(2, M, d)
