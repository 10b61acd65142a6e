"""The real dataset as a population (docs/METHODS.md §20): the kernel features reproduce the target exactly, a
sketched problem of the dataset has the exact risk of its definition, and real-data SGD takes its samples from the
dataset itself."""

import numpy as np
import pytest

from sketchlaw.engine import empirical
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.problem import build_problem, full_sketch
from sketchlaw.engine.reuse import run_multipass
from sketchlaw.engine.schedules import Schedule
from sketchlaw.errors import ParameterError
from sketchlaw.workflow import datasets


@pytest.fixture(scope="module")
def toy():
    """A small dataset (n = 120 points in 5 dimensions) with a smooth target: fast, and positive definite."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 5))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2
    lam, V, ell2 = empirical.rbf_kernel_features(X)
    return X, (y - y.mean()) / y.std(), lam, V, ell2


def test_kernel_features_have_covariance_h_and_reproduce_the_target(toy):
    X, y, lam, V, _ = toy
    Phi = empirical.kernel_features(lam, V)
    w = empirical.kernel_target(lam, V, y)
    np.testing.assert_allclose(Phi.T @ Phi / len(y), np.diag(lam), atol=1e-12)
    np.testing.assert_allclose(Phi @ w, y, atol=1e-8)  # no label noise: the target is in the span
    np.testing.assert_allclose(np.einsum("ij,ij->i", Phi, Phi), 1.0, rtol=1e-10)  # k(x, x) = 1: unit-norm features
    T = empirical.tail_energy(lam, w)
    assert T[0] == pytest.approx(np.mean(y**2), rel=1e-10) and (np.diff(T) <= 0).all()


def test_a_dataset_with_repeated_rows_is_refused_naming_the_kernel(toy):
    X = np.vstack([toy[0], toy[0][:3]])
    with pytest.raises(ParameterError, match="bandwidth2"):
        empirical.rbf_kernel_features(X, toy[4])


def test_sketched_dataset_problem_has_the_exact_risk_of_its_definition(toy):
    """For a fixed target, Problem.target gives Uᵀv* and Approx(S, w*) of the dense definition, and the population
    risk on the dataset of any v is Approx + (v − v*)ᵀΣ(v − v*) (what real-data SGD's risk is computed from)."""
    _, y, lam, V, _ = toy
    Phi, w = empirical.kernel_features(lam, V), empirical.kernel_target(lam, V, y)
    M = 12
    p = build_problem(empirical.EmpiricalSpectrum(lam), M, 0.0, 4, empirical.EmpiricalPrior(w**2))
    theta, approx = p.target(w)
    S = full_sketch(4, M, len(lam))
    Sigma = (S * lam) @ S.T
    vstar = np.linalg.solve(Sigma, S @ (lam * w))
    np.testing.assert_allclose(p.U @ theta, vstar, rtol=1e-8)
    assert approx == pytest.approx(np.mean((Phi @ S.T @ vstar - y) ** 2), rel=1e-8)
    v = np.random.default_rng(0).standard_normal(M)
    on_data = np.mean((Phi @ S.T @ v - y) ** 2)
    assert on_data == pytest.approx(approx + (v - vstar) @ Sigma @ (v - vstar), rel=1e-9)
    Z, xi = datasets.real_features(p, Phi, y, theta)
    np.testing.assert_allclose(Z, Phi @ S.T @ p.U, atol=1e-10)
    np.testing.assert_allclose(Z.T @ xi / len(y), 0.0, atol=1e-10)  # uncorrelated over the dataset, by v*'s definition


def test_real_data_sgd_on_gaussian_data_is_the_gaussian_multipass_engine(toy):
    """The data hook of run_multipass: handing it the Gaussian datasets it would draw reproduces its default run bit
    for bit (the hook changes where samples come from, nothing else)."""
    from sketchlaw.engine.reuse import dataset

    mu = np.array([0.5, 0.2, 0.1])
    targets = np.ones((3, 3)) * 0.3
    sch = Schedule(0.2, 200)
    plain = run_multipass(mu, targets, 0.1, 1.0, sch, 40, seed=8)
    hooked = run_multipass(mu, targets, 0.1, 1.0, sch, 40, seed=8,
                           data=lambda r: dataset(8, r, 40, mu, float(np.sqrt(1.1))))
    np.testing.assert_array_equal(plain.risks, hooked.risks)


@pytest.mark.slow
def test_real_data_sgd_is_within_reach_of_its_gaussian_equivalent(toy):
    """On the toy dataset one-pass SGD on the real features and the exact Gaussian-equivalent risk (same second
    moments, same target, same sketch) agree at small N within 10 % (the fourth moments differ; the figure measures
    where they part on the digits)."""
    _, y, lam, V, _ = toy
    Phi, w = empirical.kernel_features(lam, V), empirical.kernel_target(lam, V, y)
    p = build_problem(empirical.EmpiricalSpectrum(lam), 16, 0.0, 1, empirical.EmpiricalPrior(w**2))
    theta, approx = p.target(w)
    sch = Schedule(0.2, 300)
    exact = ExactEngine(p.mu, theta**2, 0.0, approx).run(sch).risk
    Z, xi = datasets.real_features(p, Phi, y, theta)
    mc = run_multipass(p.mu, np.repeat(theta[None], 400, axis=0), approx, 0.0, sch, len(y), 2, data=lambda r: (Z, xi))
    assert abs(mc.mean / exact - 1) < 0.1, (mc.mean, mc.sem, exact)


@pytest.mark.slow
def test_digits_population_is_the_bundled_dataset():
    pop = datasets.population("digits")
    n = datasets.SAMPLES["digits"]
    assert pop["Phi"].shape == (n, n) and len(pop["lam"]) == n and (pop["lam"] > 0).all()
    np.testing.assert_allclose(pop["Phi"] @ pop["w"], pop["y"], atol=1e-6)
    assert abs(pop["y"].mean()) < 1e-12 and pop["y"].std() == pytest.approx(1.0)


def _config(**block):
    import yaml

    base = yaml.safe_load(open("config/test.yaml"))
    base["experiments"] = {"digits": {**base["experiments"]["digits"], **block}}
    return base


@pytest.mark.parametrize("block,field", [({"M": [16, 2000]}, "experiments.digits.M"),
                                         ({"gamma": 0.7}, "experiments.digits.gamma"),
                                         ({"modes": [10, 15]}, "experiments.digits.modes"),
                                         ({"modes": [10, 1000]}, "experiments.digits.modes"),
                                         ({"N": [1000, 100]}, "experiments.digits.N"),
                                         ({"montecarlo": {"trials": 5, "M": [32], "N": [1000]}},
                                          "experiments.digits.montecarlo.M")])
def test_dataset_config_is_refused_naming_the_field(block, field):
    from sketchlaw.workflow.grid import ConfigError, check_config

    check_config(_config())
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        check_config(_config(**block))


def test_dataset_plan_has_one_job_per_sketch_seed_with_every_m():
    from sketchlaw.workflow.grid import followup_groups, followup_params, plan

    config = _config(sketch_seeds=[0, 1])
    jobs = [j for j in plan(config)["followups"] if j.kind == "dataset"]
    groups = followup_groups(jobs)
    assert len(groups) == 2 and all(len(g) == len(config["experiments"]["digits"]["M"]) for g in groups.values())
    params = [followup_params(config, j) for j in jobs]
    assert len({p["mc_seed"] for p in params}) == len(params)  # each problem its own Monte Carlo stream
