"""Mini-batch SGD: the batched exact recursion against batched Monte Carlo, and the batch experiment's entry point."""

import numpy as np
import pandas as pd
import pytest

from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.analysis.followups import critical_batch_size
from sketchlaw.workflow.followups import batch_rows, batch_step_size
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.sgd import monte_carlo

from .conftest import make_problem

BATCH_CASES = [  # (a, b, M, N samples, B, gamma): both regimes of M vs (T_eff γ)^(1/a), a source prior
    (2.0, None, 8, 2000, 4, 0.3),
    (1.5, None, 16, 4096, 16, 0.2),
    (2.0, 1.5, 16, 2048, 64, 0.5),
    (3.0, None, 32, 1200, 3, 0.2),
]


@pytest.mark.parametrize("a,b,M,N,B,gamma", BATCH_CASES)
def test_batched_exact_risk_matches_batched_monte_carlo(a, b, M, N, B, gamma):
    problem = make_problem(a=a, b=b, M=M, d=1024, seed=5)
    schedule = Schedule(gamma, N // B)
    exact = ExactEngine(problem.mu, problem.p0, problem.sigma2, problem.approx, batch=B).run(schedule).risk
    mc = monte_carlo(problem, schedule, 2000, 9, batch=B)
    assert abs(mc.mean - exact) < 3 * mc.sem, (mc.mean, exact, mc.sem)


def test_batched_monte_carlo_sees_the_batch():
    """Against the B = 1 recursion with the same number of updates the batched Monte Carlo is far off (so the
    agreement above is not an accident of a batch option that does nothing)."""
    problem = make_problem(a=2.0, M=16, d=1024, seed=5)
    schedule = Schedule(0.3, 300)
    mc = monte_carlo(problem, schedule, trials=2000, seed=9, batch=8)
    unbatched = ExactEngine.from_problem(problem).run(schedule).risk
    assert abs(mc.mean - unbatched) > 10 * mc.sem


def test_entry_point_at_batch_one_is_the_plain_engine():
    M, N, gamma = 32, 5000, 0.2
    problem = make_problem(a=2.0, M=M, d=1024, seed=0, tail="mean")
    df = batch_rows(problem, 2.0, [N], [1], gamma, ("fixed", "linear"))
    plain = ExactEngine.from_problem(problem).run(Schedule(gamma, N))
    for _, row in df.iterrows():
        assert row["gamma_B"] == gamma and row["T"] == N
        assert row["risk"] == pytest.approx(plain.risk, rel=1e-13)
        assert row["variance"] == pytest.approx(plain.variance, rel=1e-12)


def test_entry_point_columns_and_scaled_step_sizes():
    problem = make_problem(a=1.5, M=16, d=1024, seed=0, tail="mean")
    df = batch_rows(problem, 1.5, [4096], [1, 4, 64, 1024], 0.02, ("fixed", "linear", "sqrt"))
    for _, r in df.iterrows():
        assert r["T"] == 4096 // r["B"]
        bound = critical_step_size(problem.mu, batch=int(r["B"]))
        assert r["gamma_B"] < bound
        want = {"fixed": 0.02, "linear": 0.02 * r["B"], "sqrt": 0.02 * np.sqrt(r["B"])}[r["step_rule"]]
        assert r["gamma_B"] == pytest.approx(min(want, 0.5 * bound) if r["step_rule"] != "fixed" else want)
        assert r["capped"] == (r["step_rule"] != "fixed" and want > 0.5 * bound)
        pred = min(16, (r["T_eff"] * r["gamma_B"]) ** (1 / 1.5)) / (r["B"] * r["T_eff"])
        assert r["variance_predictor"] == pytest.approx(pred)
    # Linear scaling keeps the intrinsic time (hence, uncapped, nearly the bias) where fixed steps lose it.
    lin = df[(df.step_rule == "linear") & (~df.capped)].set_index("B")["bias"]
    fixed = df[df.step_rule == "fixed"].set_index("B")["bias"]
    assert df.capped.any() and fixed[64] > 2 * fixed[1] and lin[4] < 1.2 * lin[1]


def test_batch_step_size_rejects_unknown_rules():
    with pytest.raises(ValueError):
        batch_step_size(0.1, 4, "cubic", np.array([1.0, 0.5]))


def test_critical_batch_size_definition():
    df = pd.DataFrame({"N": 100, "step_rule": "fixed", "B": [1, 2, 4, 8, 16],
                       "reducible": [1.0, 1.05, 1.09, 1.2, 1.05]})
    out = critical_batch_size(df, tolerance=0.1)
    assert out["critical_B"].item() == 4 and not out["at_grid_edge"].item()
    flat = df.assign(reducible=1.0)
    out = critical_batch_size(flat)
    assert out["critical_B"].item() == 16 and out["at_grid_edge"].item()


def test_every_step_rule_starts_from_gamma_itself_at_batch_one():
    """B = 1 is the common baseline of the step rules (critical_batch_size compares each B with it): with γ above
    the scaled rules' cap (half the stability bound) but below the bound, every rule still runs γ at B = 1, and no
    scaled rule ever steps below γ (the cap was applied at B = 1 too, and at B = 2 fell below γ)."""
    M, N = 16, 512
    problem = make_problem(a=2.0, M=M, d=1024, seed=0, tail="mean")
    gamma = 0.9 * critical_step_size(problem.mu)
    assert gamma > 0.5 * critical_step_size(problem.mu, batch=2)
    for rule in ("fixed", "linear", "sqrt"):
        assert batch_step_size(gamma, 1, rule, problem.mu) == (gamma, False)
        for B in (2, 4, 64):
            gB, capped = batch_step_size(gamma, B, rule, problem.mu)
            assert gamma <= gB < critical_step_size(problem.mu, batch=B)
    df = batch_rows(problem, 2.0, [N], [1, 2, 4], gamma, ("fixed", "linear", "sqrt"))
    base = df[df.B == 1]
    assert (base.gamma_B == gamma).all() and not base.capped.any()
    assert base.reducible.nunique() == 1  # one baseline for every rule
