"""Points above their own sketch's stability bound are results (diverged), not errors (issue 24; docs/METHODS.md §5).

Unit checks of each piece: the bound of one mode, the training jobs' diverged rows, the tables' split, the planner's
bound with the mean-field tail and its warning, the figures' loader and the results page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sketchlaw.present import plotting
from sketchlaw.present import report
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.workflow.grid import ConfigError, check_config, spectrum_bound, stability_warnings
from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.workflow.tables import check_finite, diverged_table, split_diverged
from sketchlaw.workflow.followups import batch_step_size
from sketchlaw.workflow.training import exact_rows, followup_rows, montecarlo_rows, stable_points


@pytest.mark.parametrize("mu", [1.0, 0.3, 7.77, 1 / 3, 2.9e-3, 1e-9])
@pytest.mark.parametrize("batch", [1, 4])
def test_one_mode_bound_is_the_bracket_end_without_root_finding(mu, batch):
    # one mode: the secular equation holds at g μ = 2B/(B + 2), the lower end 2B/((B + 1)μ + μ) of the bracket
    bound = critical_step_size(np.array([mu]), batch=batch)
    assert bound == pytest.approx(2 * batch / ((batch + 2) * mu), rel=1e-14)


def test_one_mode_bound_from_a_sketch_of_size_one():
    p = build_problem(Spectrum("power", 1.75, 8), 1, 1.0, 0, Prior())
    assert critical_step_size(p.mu) == pytest.approx(2 / (3 * p.mu[0]), rel=1e-14)


@pytest.fixture(scope="module")
def unstable():
    """A sketch (M = 2) and a γ between its bound and the spectrum's."""
    for seed in range(50):
        p = build_problem(Spectrum("power", 2.0, 64), 2, 1.0, seed, Prior(1.5))
        bound = critical_step_size(p.mu)
        if bound < 0.9 * critical_step_size(Spectrum("power", 2.0, 64).eigenvalues()):
            return p, bound
    pytest.fail("no unstable sketch")


def _job(points, drop=False):
    return {"points": points, "sigma2": 1.0, "schedule": "geometric", "log_base": "e", "drop_unstable": drop,
            "columns": {"experiment": "main", "M": 2}, "compute_of_N": {}}


def test_stable_points_split(unstable):
    p, bound = unstable
    pts = [(100, 0.5 * bound), (100, bound), (100, 2 * bound)]
    keep, diverged, b = stable_points(pts, p.mu)
    assert b == bound and keep == [(100, 0.5 * bound)] and diverged == [(100, bound), (100, 2 * bound)]
    keep, diverged, _ = stable_points(pts, p.mu, drop_unstable=True)
    assert keep == [(100, 0.5 * bound)] and diverged == []


@pytest.mark.slow
def test_exact_rows_record_diverged_points(unstable):
    p, bound = unstable
    df = exact_rows(p, _job([(100, 0.5 * bound), (1000, 0.5 * bound), (100, 1.01 * bound)]))
    assert list(df["diverged"]) == [False, False, True]
    assert df.loc[2, ["risk", "bias", "variance", "excess", "reducible"]].isna().all()
    assert (df["gamma_max"] == bound).all() and np.isfinite(df.loc[2, "approx"])
    ok = ExactEngine.from_problem(p).run(Schedule(0.5 * bound, 100)).risk
    assert df.loc[0, "risk"] == pytest.approx(ok, rel=1e-12)
    check_finite(df, "exact rows")  # the diverged row's NaNs are allowed
    with pytest.raises(ArithmeticError):
        check_finite(df.assign(diverged=False), "exact rows")
    every = exact_rows(p, _job([(100, 2 * bound)]))
    assert len(every) == 1 and every["diverged"].all()
    assert exact_rows(p, _job([(100, 2 * bound)], drop=True)).empty


def test_montecarlo_rows_diverged(unstable):
    p, bound = unstable
    job = {**_job([(50, 0.5 * bound), (50, 1.5 * bound)]), "trials": 3, "point_seeds": [7, 8]}
    rows = montecarlo_rows(p, job)
    assert rows["diverged"].tolist() == [False, True] and rows["mc_seed"].tolist() == [7, 8]
    assert rows["mc_mean"].notna().tolist() == [True, False]


def _followup(kind, gamma, **extra):
    return {"kind": kind, "gamma": gamma, "sigma2": 1.0, "a": 2.0, "b": 1.5, "N": [64], "log_base": "e",
            "columns": {"experiment": kind, "M": 2, "gamma": gamma}, **extra}


@pytest.mark.parametrize("factor", [0.5, 1.5])
def test_followup_rows_diverged(unstable, factor):
    p, bound = unstable
    g = factor * bound
    specs = [{"kind": "geometric"}, {"kind": "cosine"}, {"kind": "wsd", "warmup": 0.1, "decay": 0.5}]
    sch = followup_rows(p, _followup("schedules", g, specs=specs))
    assert len(sch) == 3 and sch["diverged"].all() == (factor > 1) and (sch["gamma_max"] == bound).all()
    batch = followup_rows(p, _followup("batch", g, B=[1, 4], step_rules=["fixed", "linear"]))
    assert len(batch) == 4
    for _, r in batch.iterrows():
        step = batch_step_size(g, int(r["B"]), r["step_rule"], p.mu)[0]
        assert r["gamma_B"] == step and r["diverged"] == (not step < critical_step_size(p.mu, batch=int(r["B"])))
        assert r["diverged"] == np.isnan(r["risk"])
    reuse = followup_rows(p, _followup("reuse", g, N=[16], L=[8, 32], trials=3, mc_seed=1))
    assert len(reuse) == 2 and reuse["diverged"].all() == (factor > 1)
    for df in (sch, batch, reuse):
        check_finite(df, "followup")
        assert {"risk", "reducible"} & set(df.columns)


def test_split_and_list_diverged():
    df = pd.DataFrame({"experiment": "main", "spectrum": "power", "a": 2.0, "b": 2.0, "M": [1, 2], "d": 8,
                       "sketch_seed": [0, 0], "N": 100, "gamma": 0.3, "gamma_max": [0.2, 0.5],
                       "diverged": [True, False], "risk": [np.nan, 1.5]})
    ok, bad = split_diverged(df)
    assert list(ok["M"]) == [2] and list(bad["M"]) == [1]
    listed = diverged_table({"main": df, "main_limit": pd.DataFrame({"N": [1]})})
    assert len(listed) == 1 and "0.2" in listed["reason"][0] and listed["table"][0] == "main"
    assert diverged_table({}).empty


def _config(block, **defaults):
    return {"defaults": {"sigma2": 1.0, "gamma": 0.3, "schedule": "geometric", "log_base": "e", "d_per_M": 4,
                         "d_min": 64, "tail": "none", "sketch_seeds": [0], **defaults},
            "experiments": block}


def test_planner_bound_counts_the_tail():
    s = {"spectrum": "power", "d_per_M": 4, "d_min": 64}
    truncated = spectrum_bound(s, 1.1, 8, infinite=False)
    full = spectrum_bound(s, 1.1, 8, infinite=True)
    assert full < 0.2 < 0.3 < truncated  # ζ(1.1) ≈ 10.6: the tail's trace dominates
    compute = {"compute": {"spectrum": "power", "a": [1.1], "M": [2, 4, 8], "C": [1000, 10000]}}
    check_config(_config(compute))  # no tail, no limit: the truncated spectrum decides
    with pytest.raises(ConfigError, match=r"experiments\.compute\.gamma.*mean-field tail") as err:
        check_config(_config(compute, tail="mean"))
    assert err.value.field == "experiments.compute.gamma"


def test_planner_warns_where_a_sketch_may_diverge():
    main = {"main": {"spectrum": "power", "a": [1.25], "M": [1, 3, 9, 39, 1000], "N": [100, 1000]}}
    cfg = _config(main, d_min=1024)
    check_config(cfg)
    (warning,) = stability_warnings(cfg)
    assert "experiments.main.gamma" in warning and "[1, 3, 9, 39]" in warning
    assert stability_warnings(_config(main, d_min=1024, gamma=0.01)) == []


def test_load_table_leaves_out_diverged_rows(tmp_path):
    df = pd.DataFrame({"M": [1, 2, 3], "risk": [np.nan, 1.0, 2.0], "diverged": [True, False, False]})
    df.to_parquet(tmp_path / "main.parquet")
    pd.DataFrame({"M": [1]}).to_parquet(tmp_path / "other.parquet")
    t = plotting.load_table(tmp_path, "main", required=["M", "risk"])
    assert list(t["M"]) == [2, 3] and t.attrs["diverged"] == 1
    assert "1 point not shown" in plotting.diverged_note(t)
    assert plotting.diverged_note(plotting.load_table(tmp_path, "other")) == ""


def test_results_page_lists_diverged_points():
    listed = pd.DataFrame({"table": ["main"], "M": [1], "gamma": [0.3], "gamma_max": [0.17],
                           "reason": ["step size 0.3 >= 0.17, the stability bound of this sketch (seed 0, M = 1)"]})
    html = report.diverged_section(listed)
    assert "1 grid point had" in html and "stability bound of this sketch" in html
    assert "None" in report.diverged_section(None)


def test_batch_curve_without_its_reference_is_left_out_with_the_reason():
    """Found by the generated suite: a batch curve whose B = 1 point diverged on every sketch made the critical
    batch size raise 'a grid that includes B = 1' in the fit step."""
    df = pd.DataFrame({"experiment": "batch", "spectrum": "power", "a": 2.0, "b": 2.0, "M": 2, "d": 8,
                       "sketch_seed": [0, 0, 0, 0, 1, 1, 1, 1], "N": 100,
                       "step_rule": ["fixed", "fixed", "linear", "linear"] * 2, "B": [1, 4, 1, 4] * 2,
                       "gamma": 0.3, "gamma_B": [0.3, 0.3, 0.1, 0.1] * 2, "gamma_max": [0.2, 0.5, 0.2, 0.5] * 2,
                       "diverged": [True, False, False, False, True, False, False, False],
                       "risk": [np.nan, 1.0, 1.0, 1.0] * 2})
    ok, left = split_diverged(df)
    assert set(ok["step_rule"]) == {"linear"} and len(ok) == 4
    assert list(left["left_out"].str.startswith("its curve's B = 1")) == [False, True, False, True]
    listed = diverged_table({"batch": df})
    assert list(listed["diverged"]) == [True, False, True, False]
    assert listed["reason"].str.startswith("not diverged").sum() == 2
    one_seed = df.assign(diverged=[True, False, False, False] + [False] * 4)  # another sketch keeps the reference
    assert len(split_diverged(one_seed)[0]) == 7


def test_exact_job_without_points_writes_typed_columns(unstable):
    """Found by the generated suite: a compute block whose budget leaves an M no N >= 2 gave that job an empty table
    of object columns, which turned the experiment's risk column to objects and crashed the frontier's log."""
    p, bound = unstable
    job = {**_job([]), "compute_of_N": {"4": 4}}
    empty = exact_rows(p, job)
    assert empty.empty and empty["risk"].dtype == float and empty["N"].dtype.kind == "i"
    assert empty["diverged"].dtype == bool and empty["compute"].dtype.kind == "i"
    full = exact_rows(p, {**job, "points": [(4, 0.5 * bound)]})
    both = pd.concat([full, empty], ignore_index=True)
    assert both["risk"].dtype == float and both["N"].dtype.kind == "i"


def test_claim_with_one_sample_size_is_refused_up_front():
    """Found by the generated suite: claim.N with one value made the schedule_claim job raise (local slopes need two
    N) after the run had started."""
    block = {"schedules": {"spectrum": "power", "a": [2.0], "M": [4], "N": [100], "schedules": [{"kind": "geometric"}],
                           "claim": {"N": [16]}}}
    with pytest.raises(ConfigError, match=r"experiments\.schedules\.claim\.N.*at least two") as err:
        check_config(_config(block, gamma=0.1))
    assert err.value.field == "experiments.schedules.claim.N"
    check_config(_config({"schedules": {**block["schedules"], "claim": {"N": [16, 100]}}}, gamma=0.1))
