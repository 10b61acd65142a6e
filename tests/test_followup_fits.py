"""The follow-ups' exponent rows (sketchlaw.analysis.followups) on synthetic tables with known slopes: the estimate
recovers the slope, the verdict is `consistent` when the slope is the theory's and `disagrees` when it is not
(falsifiable), and the rows join the exponent table through the registry's analyses. Also the planner's follow-up
jobs: seeds from grid coordinates, one reuse job per (M, N, sketch seed)."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from sketchlaw.analysis.table import ANALYSES, exponent_table
from sketchlaw.workflow import registry
from sketchlaw.workflow.grid import check_config, followup_groups, followup_params, plan
from sketchlaw.seeds import coordinate_seed

from .harness import REPO

KEY = {"experiment": None, "spectrum": "power", "a": 2.0, "b": 2.0, "prior": "isotropic", "d": 1024, "gamma": 0.1,
       "sigma2": 1.0}
N_GRID = np.array([10**3, 10**4, 10**5, 10**6, 10**7, 10**8])
# A bump at N = 10^6 and 10^7: the upper-half window (10^6 ... 10^8) and the one shifted down (10^5 ... 10^7) then
# see slopes on either side of the curve's own exponent, so the systematic range holds it (an exact pure power law
# would hold it only up to rounding).
BUMP = np.exp(0.01 * np.array([0, 0, 0, 1, 1, 0]))


def _exponents(tables: dict) -> pd.DataFrame:
    return exponent_table(tables)[0]


def _row(df, variable, estimator, **curve):
    sel = (df["variable"] == variable) & (df["estimator"] == estimator)
    for column, value in curve.items():
        sel &= df[column] == value
    assert sel.sum() == 1, (variable, estimator, curve, df[["variable", "estimator", "schedule", "step_rule"]])
    return df[sel].iloc[0]


def _schedule_tables(power_slope: float):
    n_eff = N_GRID / np.log(N_GRID)
    claim = pd.concat([
        pd.DataFrame({"schedule": "geometric", "kind": "geometric", "paper": True, "N": N_GRID, "N_eff": n_eff,
                      "reducible": 0.3 * n_eff**-0.5}),
        pd.DataFrame({"schedule": "power decay to 0 (q = 3)", "kind": "power", "paper": False, "N": N_GRID,
                      "N_eff": n_eff,
                      "reducible": 0.4 * BUMP * N_GRID.astype(float) ** power_slope}),
    ]).assign(experiment="schedules", a=2.0, b=2.0)
    rows = []
    for seed in (0, 1):
        for label, kind, x, scale in (("geometric", "geometric", n_eff, 0.3), ("constant", "constant", N_GRID, 0.2)):
            rows.append(pd.DataFrame({**KEY, "experiment": "schedules", "M": 4096, "sketch_seed": seed,
                                      "schedule": label, "kind": kind, "paper": kind == "geometric", "N": N_GRID,
                                      "N_eff": n_eff,
                                      "intrinsic_time": 0.2 * n_eff,
                                      "reducible": scale * (1 + 0.01 * seed) * x.astype(float) ** -0.5}))
    return {"schedules": pd.concat(rows, ignore_index=True), "schedules_claim": claim}


@pytest.mark.parametrize("power_slope,verdict", [(-0.5, "consistent"), (-0.4, "disagrees")])
def test_schedule_rows_recover_the_slopes_and_judge_them(power_slope, verdict):
    e = _exponents(_schedule_tables(power_slope))
    geo = _row(e, "N_eff", "primary", schedule="geometric")
    assert geo["fitted"] == pytest.approx(-0.5, abs=1e-9) and geo["verdict"] == "consistent"
    assert geo["quantity"] == "excess_limit" and geo["fixed_value"] == math.inf and geo["n_seeds"] == 0
    power = _row(e, "N", "primary", schedule="power decay to 0 (q = 3)")
    assert power["fitted"] == pytest.approx(power_slope, abs=3e-3) and power["theory"] == -0.5
    assert power["verdict"] == verdict
    window = _row(e, "N_eff", "window", schedule="geometric")  # the sketched table, M = 4096 ≥ 4·(Σγ)^(1/2) on its grid
    assert window["fitted"] == pytest.approx(-0.5, abs=1e-9) and window["n_seeds"] == 2
    assert _row(e, "N", "window", schedule="constant")["verdict"] == "no theory"
    # the claim's local slopes as the figure plots them: the analysis' rows, at the midpoints (estimators.local_slopes)
    diag = exponent_table(_schedule_tables(power_slope))[3]
    local = diag[(diag["kind"] == "local_slope_primary") & (diag["schedule"] == "geometric")]
    np.testing.assert_allclose(local["x"], np.sqrt(N_GRID[1:] * N_GRID[:-1]))
    law = diag[(diag["kind"] == "local_slope_theory") & (diag["schedule"] == "geometric")]
    n_eff = N_GRID / np.log(N_GRID)  # the law N_eff^-1/2 against N: −(1 − 1/log N)/2 between grid points
    np.testing.assert_allclose(law["value"], np.diff(np.log(n_eff**-0.5)) / np.diff(np.log(N_GRID)), rtol=1e-12)


def test_schedule_rows_without_the_claim_say_why():
    tables = _schedule_tables(-0.5)
    del tables["schedules_claim"]
    e = _exponents(tables)
    row = _row(e, "N_eff", "primary", schedule="geometric")
    assert row["verdict"] == "not fitted" and row["reason"].startswith("no unsketched claim")


@pytest.mark.parametrize("power,verdict", [(1.0, "consistent"), (0.8, "disagrees")])
def test_batch_rows_fit_the_variance_against_its_predictor(power, verdict):
    """Pooled over N and B; points whose step sits at the stability cap (variance off the law here) are left out."""
    frames = []
    for N in (10**5, 10**6):
        B = np.array([1, 2, 4, 8, 16, 32, 64])
        T = N // B
        T_eff = T / np.log(T)
        pred = np.minimum(512, (T_eff * 0.001) ** 0.5) / (B * T_eff)
        capped = B >= 32
        frames.append(pd.DataFrame({**KEY, "experiment": "batch", "M": 512, "sketch_seed": 0, "N": N, "B": B, "T": T,
                                    "T_eff": T_eff, "step_rule": "fixed", "gamma_B": 0.001, "capped": capped,
                                    "variance": 0.3 * pred**power * np.where(capped, 3.0, 1.0),
                                    "variance_predictor": pred, "reducible": 0.01 + 0.3 * pred**power}))
    e = _exponents({"batch": pd.concat(frames, ignore_index=True)})
    row = _row(e, "variance_predictor", "primary", step_rule="fixed")
    assert row["n_points"] == 10 and row["fixed_variable"] == "M" and row["fixed_value"] == 512
    assert row["fitted"] == pytest.approx(power, abs=1e-9) and row["theory"] == 1.0 and row["verdict"] == verdict
    assert _row(e, "critical_B", "window", step_rule="fixed")["verdict"] == "no theory"
    # the figure's selections are rows the analysis wrote: the pooled points (x = B, fixed = N) and the critical
    # batch sizes (x = N)
    diag = exponent_table({"batch": pd.concat(frames, ignore_index=True)})[3]
    pooled = diag[diag["kind"] == "pooled_point"]
    assert len(pooled) == 10 and set(pooled["x"]) == {1, 2, 4, 8, 16} and set(pooled["fixed"]) == {1e5, 1e6}
    assert set(diag.loc[diag["kind"].str.startswith("critical_B"), "x"]) == {1e5, 1e6}


def test_pooled_slope_interval_covers_at_its_nominal_rate():
    """The pooled slope's t-interval from the residual scatter holds the true slope ~95 % of the time when the
    scatter is independent noise (200 synthetic data sets of 12 points)."""
    from sketchlaw.analysis.estimators import pooled_slope

    rng = np.random.default_rng(7)
    x = np.geomspace(1e-6, 1e-3, 12)
    hits = 0
    for _ in range(200):
        y = 0.3 * x * np.exp(0.1 * rng.standard_normal(x.size))
        est = pooled_slope(x, y, np.repeat([0, 1, 2], 4))
        hits += est.ci_low <= 1.0 <= est.ci_high
    assert 180 <= hits <= 199  # binomial(200, 0.95): mean 190, sd 3.1


@pytest.mark.parametrize("slope,verdict", [(-0.25, "consistent"), (-0.1, "disagrees")])
def test_reuse_rows_fit_the_monte_carlo_slope_against_L(slope, verdict):
    L = np.array([100, 200, 400, 800, 1600, 3200])
    rows = []
    for M in (64, 128, 256):
        approx = 0.5 * M**-0.5
        excess = (1 + 64 / M) * L.astype(float) ** slope  # the L term: a pure power of L at each M
        rows.append(pd.DataFrame({**KEY, "experiment": "reuse", "b": 1.5, "prior": "source", "M": M,
                                  "sketch_seed": 0, "N": 1000, "L": L, "mc_trials": 1000,
                                  "mc_mean": 1.0 + approx + excess, "mc_sem": 1e-4 * excess,
                                  "onepass_L_reducible": approx + excess, "approx": approx}))
    e = _exponents({"reuse": pd.concat(rows, ignore_index=True)})
    row = _row(e, "L", "montecarlo")
    # N ≥ 4·L^(b/a), i.e. L ≤ (N/4)^(a/b) ≈ 1575: L = 100 ... 800; M ≥ 4·L^(1/a); the largest M
    assert row["n_points"] == 4 and row["fixed_value"] == 256
    assert row["quantity"] == "excess_mc" and row["fitted"] == pytest.approx(slope, abs=1e-6)
    assert row["theory"] == pytest.approx(-0.25) and row["verdict"] == verdict
    assert row["ci_low"] < row["fitted"] < row["ci_high"]
    assert math.isnan(row["extrapolated"])  # the one-pass curve at fixed M has no L → ∞ limit to read
    approx = _row(e, "M", "primary")
    assert approx["fitted"] == pytest.approx(-0.5, abs=1e-9) and approx["theory"] == pytest.approx(-0.5)
    # R − σ² against M at L = 3200: only M = 16 ... 28 have L ≥ 4·M^a, none on this grid
    row = _row(e, "M", "montecarlo")
    assert row["verdict"] == "not fitted" and row["reason"].startswith("0 M with L = 3200")
    assert (e.loc[e["experiment"] == "reuse", "samples"] == 1000).all()


def test_every_registry_analysis_has_an_implementation():
    for e in registry.EXPERIMENTS.values():
        assert set(e.analyses) <= {"montecarlo", "joint"} | set(ANALYSES), e.name
    for name in registry.FOLLOWUP_KINDS:
        assert registry.EXPERIMENTS[name].kind == name and name in registry.EXPERIMENTS[name].analyses


def test_reuse_jobs_one_per_problem_and_N_with_seeds_from_their_coordinates():
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    check_config(config)
    jobs = [j for j in plan(config)["followups"] if j.kind == "reuse"]
    block = config["experiments"]["reuse"]
    assert len(jobs) == len(block["M"]) * len(block["N"]) * len(block.get("sketch_seeds", [0]))
    seeds = [followup_params(config, j)["mc_seed"] for j in jobs]
    assert len(set(seeds)) == len(seeds)
    for job, seed in zip(jobs, seeds):
        assert seed == coordinate_seed("reuse", job.problem.stem, *job.points[0])
    # another grid around the same point gives it the same stream
    config["experiments"]["reuse"]["M"] = [block["M"][-1]]
    (job,) = [j for j in plan(config)["followups"] if j.kind == "reuse"]
    assert followup_params(config, job)["mc_seed"] == seeds[-1]
    groups = followup_groups(plan(config)["followups"])
    assert all(len(v) == 1 for (e, _), v in groups.items() if e == "reuse")


@pytest.mark.parametrize("path", ["config.yaml", "config/followups.yaml", "config/paper.yaml", "config/test.yaml"])
def test_shipped_followup_blocks_are_valid(path):
    """Every shipped config's follow-up blocks pass the schema (as Snakemake applies it) and check_config, and plan
    jobs; paper.yaml's reuse block is the Fig. 1 setting of Lin, Wu and Bartlett (d = 10^4, M = 1000, N = 10^5)."""
    from snakemake.utils import validate

    from sketchlaw.workflow.grid import settings, truncation

    config = yaml.safe_load((REPO / path).read_text())
    validate(config, str(REPO / "schemas" / "config.schema.yaml"))
    check_config(config)
    # (the real dataset's and the coordinate laws' jobs run through the same rule, but are not follow-ups)
    kinds = {j.kind for j in plan(config)["followups"] if j.kind not in ("dataset", "covariates")}
    assert kinds == set(registry.FOLLOWUP_KINDS) & set(config["experiments"]) and kinds, kinds
    if path == "config/paper.yaml":
        s = settings(config, "reuse")
        assert s["N"] == [100000] and 1000 in s["M"] and truncation(s, 1000) == 10**4 and s["sigma2"] == 1.0
        assert len(s["sketch_seeds"]) == 100 and max(s["L"]) == round(1e5 ** (2 / 1.5))
