"""The covariates experiment (docs/METHODS.md §21): its jobs' Monte Carlo against the exact risks on the same sketch,
the stability thresholds against the bounds, the plan (one addressable job per law, M and sketch seed, seeds from the
grid coordinates) and the config checks."""

from __future__ import annotations

import copy

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from sketchlaw.engine.naive import fourth_moment_risk
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.seeds import coordinate_seed
from sketchlaw.workflow.covariates import covariate_rows, stability_rows, with_exact
from sketchlaw.workflow.grid import ConfigError, check_config, followup_groups, followup_params, plan
from sketchlaw.workflow.training import exact_rows, sketched_problem

from .harness import REPO

SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
KEY = {"spectrum": "power", "a": 2.0, "b": None, "d": 16, "M": 4, "seed": 1, "tail": "none", "sketch": "gaussian"}


def job(law: str, N=(100, 300), trials: int = 1000, schedule: str = "geometric") -> dict:
    return {"problem": KEY, "coordinates": law, "N": list(N), "gamma": 0.1, "schedule": schedule, "log_base": "e",
            "sigma2": 1.0, "trials": trials, "mc_seed": coordinate_seed("test", law)}


@pytest.mark.slow
def test_gaussian_monte_carlo_agrees_with_the_exact_engine_on_the_same_sketch():
    """The job's Gaussian law is the exact engine's model: its Monte Carlo lies within 4.5 standard errors of the
    exact risk of the same sketch at every N (and the constant schedule's checkpoints too)."""
    problem = sketched_problem(KEY)
    for schedule in ("geometric", "constant"):
        mc = covariate_rows(job("gaussian", schedule=schedule))
        exact = exact_rows(problem, {"columns": {}, "points": [[N, 0.1] for N in mc["N"]], "sigma2": 1.0,
                                     "schedule": schedule, "log_base": "e", "drop_unstable": False,
                                     "compute_of_N": {}})
        z = (mc["mc_mean"].to_numpy() - exact["risk"].to_numpy()) / mc["mc_sem"].to_numpy()
        assert np.all(np.abs(z) < 4.5), (schedule, z)
        assert not mc["diverged"].any() and (mc["kurtosis"] == 3.0).all()


@pytest.mark.parametrize("law", ["bernoulli0.3", "student8"])
def test_non_gaussian_monte_carlo_agrees_with_the_fourth_moment_recursion(law):
    """A heavy law's Monte Carlo is the d-dimensional fourth-moment recursion's expectation (4.5 standard errors),
    and it differs from the Gaussian one there (the recursion moves with κ)."""
    mc = covariate_rows(job(law, N=(200,)))
    spectrum, sch = Spectrum("power", 2.0, 16), Schedule(0.1, 200, "geometric", "e")
    exact = fourth_moment_risk(spectrum, 4, 1.0, 1, sch, Prior(None), coordinates=law)[0]
    gauss = fourth_moment_risk(spectrum, 4, 1.0, 1, sch, Prior(None))[0]
    assert abs(mc["mc_mean"].iloc[0] - exact) < 4.5 * mc["mc_sem"].iloc[0], (mc, exact)
    assert abs(exact - gauss) > 1e-4 * gauss


def test_a_step_above_the_laws_bound_is_diverged_not_run():
    rows = covariate_rows({**job("bernoulli0.1"), "gamma": 0.5})
    assert rows["diverged"].all() and rows["mc_mean"].isna().all() and (rows["gamma_max"] < 0.5).all()


def test_with_exact_joins_the_gaussian_curve_and_refuses_a_missing_one():
    keys = {"experiment": "covariates", "spectrum": "power", "a": 2.0, "b": 2.0, "M": 4, "d": 16, "gamma": 0.1,
            "sketch_seed": 0}
    mc = pd.DataFrame([{**keys, "coordinates": law, "N": N, "mc_mean": 1.0, "diverged": False}
                       for law in ("gaussian", "rademacher") for N in (10, 20)])
    exact = pd.DataFrame([{**keys, "N": N, "risk": 1.5, "approx": 0.1, "bias": 0.2, "variance": 0.2, "excess": 0.4,
                           "reducible": 0.5, "gamma_max": 0.3, "diverged": N == 20} for N in (10, 20)])
    out = with_exact(mc, exact)
    assert len(out) == 4 and (out["risk"] == 1.5).all() and (out["gamma_max_gaussian"] == 0.3).all()
    assert out["diverged"].tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="Gaussian exact"):
        with_exact(mc, exact[exact["N"] == 10])
    # the exact curve's points beyond the Monte Carlo's grid follow, the law empty
    wider = pd.concat([exact, exact.iloc[:1].assign(M=8, d=32, N=40)], ignore_index=True)
    out = with_exact(mc, wider)
    alone = out[out["coordinates"] == ""]
    assert len(out) == 5 and alone[["M", "N"]].values.tolist() == [[8, 40]]
    assert alone["mc_mean"].isna().all() and (alone["gamma_max_gaussian"] == 0.3).all() and not alone["diverged"].any()


def _synthetic_table(mc_slope: float, exact_far_slope: float) -> pd.DataFrame:
    """A covariates table at a = 2 (theorem: R − σ² ∝ M^−1 at large N): the Gaussian exact curve ∝ M^exact_far_slope
    on the block's M = 16…64 at N = 10⁷, and ∝ M^−0.8 on the Monte Carlo's M = 2…8 at N = 32000, where one law's
    Monte Carlo (three seeds, small scatter) follows ``mc_slope``."""
    rng = np.random.default_rng(0)
    base = {"experiment": "covariates", "spectrum": "power", "a": 2.0, "b": 2.0, "sigma2": 1.0, "gamma": 0.1}
    rows = []
    for seed in range(3):
        for M in (16, 32, 64):
            rows.append({**base, "coordinates": "", "M": M, "N": 10**7, "sketch_seed": seed,
                         "reducible": 3.0 * M**exact_far_slope * (1 + 0.01 * rng.standard_normal())})
        for M in (2, 4, 8):
            exact = 0.5 * M**-0.8
            rows.append({**base, "coordinates": "student8", "kurtosis": 4.5, "M": M, "N": 32000, "sketch_seed": seed,
                         "reducible": exact, "mc_mean": 1.0 + 0.5 * M**mc_slope * (1 + 0.01 * rng.standard_normal())})
    df = pd.DataFrame(rows)
    df["N_eff"] = df["N"] / np.log(df["N"])
    return df


@pytest.mark.parametrize("mc_slope, far_slope, verdict", [(-0.8, -1.0, "pre-asymptotic"),
                                                           (-0.8, -0.8, "disagrees"), (-0.5, -1.0, "disagrees")])
def test_a_monte_carlo_row_extrapolates_to_the_exact_window_row_of_the_larger_grid(mc_slope, far_slope, verdict):
    """A law's M row short of the theorem on the Monte Carlo's small M is pre-asymptotic when it follows the Gaussian
    exact curve on the same points and the exact curve's window on the block's larger M holds the theorem; it
    disagrees when the exact window misses the theorem too, or when the law leaves the exact curve."""
    from sketchlaw.analysis.covariates import covariate_rows as exponent_rows
    from sketchlaw.analysis.rows import Diagnostics

    rows = pd.DataFrame(exponent_rows(_synthetic_table(mc_slope, far_slope), {}, Diagnostics(), "source"))
    rows = rows[rows["variable"] == "M"].set_index("estimator")
    assert rows.loc["window", "fitted"] == pytest.approx(far_slope, abs=0.02)
    assert rows.loc["window", "fixed_value"] == 10**7 and rows.loc["montecarlo", "fixed_value"] == 32000
    assert rows.loc["montecarlo", "theory_finite"] == pytest.approx(-0.8, abs=1e-9)
    assert rows.loc["montecarlo", "verdict"] == verdict


@pytest.mark.slow
def test_stability_thresholds_against_the_bounds():
    """On d = 8: the Gaussian law's map bound is the exact engine's; the recursion's measured threshold is the map's;
    the fourth-moment formula on the sketched spectrum lies below the map's bound for κ > 3 and above it for κ < 3
    (docs/METHODS.md §21)."""
    df = stability_rows({"experiment": "covariates", "curves": [{"a": 2.0, "b": None}], "sketch_seeds": [0],
                         "coordinates": ["gaussian", "rademacher", "bernoulli0.3"], "d": 8, "M": 3, "steps": 400,
                         "trials": 20, "sigma2": 1.0, "seed": 5}).set_index("coordinates")
    assert df.loc["gaussian", "gamma_map"] == pytest.approx(df.loc["gaussian", "gamma_gaussian"], rel=2e-4)
    assert np.allclose(df["gamma_recursion"], df["gamma_map"], rtol=5e-3)
    assert df.loc["bernoulli0.3", "gamma_kappa"] < df.loc["bernoulli0.3", "gamma_map"] < df.loc["gaussian", "gamma_map"]
    assert df.loc["rademacher", "gamma_kappa"] > df.loc["rademacher", "gamma_map"] > df.loc["gaussian", "gamma_map"]


# ---------------------------------------------------------------------------------------------- plan and config

CONFIG = {"defaults": {"sigma2": 1.0, "gamma": 0.1, "schedule": "geometric", "log_base": "e", "d_per_M": 4,
                       "d_min": 8, "tail": "none", "sketch_seeds": [0, 1]},
          "experiments": {"covariates": {"spectrum": "power", "a": [1.5], "M": [8, 16], "N": [100, 1000, 10000],
                                         "coordinates": ["gaussian", "rademacher", "student6"],
                                         "montecarlo": {"trials": 10, "M": [4, 8], "N": [100, 1000]},
                                         "stability": {"d": 8, "M": 4, "steps": 100, "trials": 10}}}}


def test_plan_one_addressable_job_per_law_M_and_seed_with_seeds_from_the_grid():
    check_config(CONFIG)
    p = plan(CONFIG)
    groups = followup_groups(p["followups"])
    assert len(groups) == 3 * 2 * 2 and all(len(jobs) == 1 for jobs in groups.values())
    assert {jobs[0].problem.M for jobs in groups.values()} == {4, 8}
    assert all([N for N, _ in jobs[0].points] == [100, 1000] for jobs in groups.values())
    # the Gaussian exact curve: one problem per (M, seed) of either grid, on the block's M × N and the Monte Carlo's
    # twins only, so the Monte Carlo's smaller M adds no point at the block's largest N
    assert len(p["exact"]) == 3 * 2
    points = {job.problem.M: [N for N, _ in job.points] for job in p["exact"]}
    assert points == {4: [100, 1000], 8: [100, 1000, 10000], 16: [100, 1000, 10000]}
    params = {stem: followup_params(CONFIG, jobs[0]) for (_, stem), jobs in groups.items()}
    # dropping a law changes no other job's parameters (seeds derive from coordinates, not from job order)
    fewer = copy.deepcopy(CONFIG)
    fewer["experiments"]["covariates"]["coordinates"] = ["student6", "gaussian"]
    for (_, stem), jobs in followup_groups(plan(fewer)["followups"]).items():
        assert followup_params(fewer, jobs[0]) == params[stem]
    assert len({p["mc_seed"] for p in params.values()}) == len(params)


def _refused(change: dict, field: str) -> None:
    config = copy.deepcopy(CONFIG)
    config["experiments"]["covariates"].update(change)
    jsonschema.validate(config, SCHEMA)
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert err.value.field == field, err.value


@pytest.mark.parametrize("law", ["student4", "student3.5", "bernoulli0.0"])
def test_a_schema_valid_law_outside_its_range_is_refused_naming_the_field(law):
    _refused({"coordinates": ["gaussian", law]}, "experiments.covariates.coordinates")


@pytest.mark.parametrize("law", ["t6", "bernoulli2", "bernoulli0", "student", "laplace", ""])
def test_the_schema_refuses_unknown_laws(law):
    config = copy.deepcopy(CONFIG)
    config["experiments"]["covariates"]["coordinates"] = [law]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, SCHEMA)


@pytest.mark.parametrize("change, field", [
    ({"coordinates": ["gaussian", "gaussian"]}, "coordinates"),
    ({"tail": "mean"}, "tail"),
    ({"spectrum": "logpower"}, "spectrum"),
    ({"gamma": 0.3, "coordinates": ["bernoulli0.1"]}, "gamma"),
    ({"stability": {"d": 4, "M": 8, "steps": 10, "trials": 2}}, "stability"),
    ({"montecarlo": {"trials": 2, "M": [4], "N": [200]}}, "montecarlo.N"),
])
def test_config_checks_name_the_field(change, field):
    _refused(change, f"experiments.covariates.{field}")


def test_covariates_keys_are_refused_in_other_experiments():
    config = copy.deepcopy(CONFIG)
    config["experiments"]["main"] = {"spectrum": "power", "a": [1.5], "M": [4], "N": [100], "tail": "mean",
                                     "coordinates": ["gaussian"]}
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert err.value.field == "experiments.main.coordinates"


@pytest.mark.parametrize("with_limit, verdict", [(True, "pre-asymptotic"), (False, "disagrees")])
def test_the_exact_n_eff_window_extrapolates_to_the_m_infinity_limit(with_limit, verdict):
    """The Gaussian exact N_eff window short of the theorem (a = 2: −0.47 against −1/2, as at the regime's edge) is
    pre-asymptotic when the M = ∞ limit's Bias + Var reaches −1/2, and disagrees without a limit to extrapolate to; a
    law's Monte Carlo row on the exact curve's points takes the exact row's extrapolation."""
    from sketchlaw.analysis.covariates import covariate_rows as exponent_rows
    from sketchlaw.analysis.rows import Diagnostics

    base = {"experiment": "covariates", "spectrum": "power", "a": 2.0, "b": 2.0, "sigma2": 1.0, "gamma": 0.1}
    Ns = np.array([100, 1000, 10**4, 10**5])
    N_eff = Ns / np.log(Ns)
    rows = [{**base, "coordinates": law, "M": 512, "N": N, "N_eff": ne, "sketch_seed": seed,
             "reducible": 2.0 * ne**-0.47 * (1 + 1e-3 * seed),
             "mc_mean": 1.0 + 2.0 * ne**-0.47 * (1 + 0.02 * (seed - 1)) if law else np.nan, "kurtosis": 4.5}
            for law in ("", "student8") for seed in range(3) for N, ne in zip(Ns, N_eff)]
    far_N = np.geomspace(1e6, 1e9, 4)
    limit = pd.DataFrame([{"spectrum": "power", "a": 2.0, "b": 2.0, "model": model, "N_eff": n, "excess": n**-0.5}
                          for model, grid in (("limit", N_eff), ("limit_far", far_N)) for n in grid])
    tables = {"covariates_limit": limit} if with_limit else {}
    out = pd.DataFrame(exponent_rows(pd.DataFrame(rows), tables, Diagnostics(), "source"))
    out = out[out["variable"] == "N_eff"].set_index("estimator")
    assert out.loc["window", "fitted"] == pytest.approx(-0.47, abs=1e-3)
    assert out.loc["window", "verdict"] == verdict and out.loc["montecarlo", "verdict"] == verdict
    if with_limit:
        assert out.loc["montecarlo", "extrapolated"] == pytest.approx(-0.5, abs=1e-3)
