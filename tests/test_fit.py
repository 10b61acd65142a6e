"""Tests of sketchlaw.fit: exact recovery on synthetic surfaces, flags, weights, bootstrap coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sketchlaw import fit as F
from sketchlaw.errors import ParameterError

M_GRID = np.geomspace(16, 4096, 9)
N_GRID = np.geomspace(1e2, 1e6, 13)


def surface(M=M_GRID, N=N_GRID):
    MM, NN = np.meshgrid(M, N)
    return MM.ravel(), NN.ravel()


MM, NN = surface()

# (E, A, p, B, q): the paper's a = 1.5 and a = 2 exponents with unequal constants.
TRUTHS = [(1.0, 1.0, 0.5, 2.0, 1 / 3), (0.5, 3.0, 1.0, 1.0, 0.5)]


def additive(E, A, p, B, q, M=MM, N=NN):
    return E + A * M**-p + B * N**-q


# --------------------------------------------------------------------------------------------------------
# Joint fits: recovery


@pytest.mark.parametrize("truth", TRUTHS)
@pytest.mark.parametrize("fix_E", [False, True])
def test_additive_fit_recovers_noise_free_surface(truth, fix_E):
    E, A, p, B, q = truth
    f = F.fit_joint(MM, NN, additive(*truth), E=E if fix_E else None)
    assert f.flags == [] and f.converged and f.E_fixed == fix_E
    np.testing.assert_allclose([f.p, f.q, f.A, f.B, f.E], [p, q, A, B, E], rtol=1e-6)
    assert f.rms_log < 1e-10


@pytest.mark.parametrize("form,k", [("max", np.inf), ("power_mean", 2.0)])
def test_max_and_power_mean_forms_recover_their_own_surfaces(form, k):
    E, A, p, B, q = TRUTHS[0]
    u, v = A * MM**-p, B * NN**-q
    R = E + (np.maximum(u, v) if form == "max" else (u**k + v**k) ** (1 / k))
    f = F.fit_joint(MM, NN, R, form=form)
    np.testing.assert_allclose([f.p, f.q, f.A, f.B, f.E, f.k], [p, q, A, B, E, k], rtol=1e-6)
    assert f.flags == [] and f.converged
    np.testing.assert_allclose(f.predict(MM, NN), R, rtol=1e-9)


def test_power_mean_with_fixed_k_equal_one_is_the_additive_form():
    R = additive(*TRUTHS[1])
    f = F.fit_joint(MM, NN, R, form="power_mean", k=1.0)
    np.testing.assert_allclose([f.p, f.q], [1.0, 0.5], rtol=1e-6)
    assert f.k == 1.0 and "k" not in f.params() and not f.k_fitted


def test_joint_fit_drops_non_positive_points_with_a_flag():
    R = additive(0.0, 1.0, 0.5, 2.0, 1 / 3)
    R[[0, 5]] = [0.0, -1.0]
    f = F.fit_joint(MM, NN, R, E=0.0)
    assert "non-positive" in f.flags and f.n_points == R.size - 2
    np.testing.assert_allclose([f.p, f.q], [0.5, 1 / 3], rtol=1e-6)


# --------------------------------------------------------------------------------------------------------
# Joint fits: degenerate results are flagged, never silent


def test_pure_M_power_law_is_flagged_degenerate():
    f = F.fit_joint(MM, NN, 1.0 + 2.0 * MM**-0.5)
    assert "B-zero" in f.flags and "singular-hessian" in f.flags
    assert f.p == pytest.approx(0.5, rel=1e-6)


def test_pure_N_power_law_is_flagged_degenerate():
    f = F.fit_joint(MM, NN, 2.0 * NN**-0.5, E=0.0)
    assert "A-zero" in f.flags and "singular-hessian" in f.flags


def test_exponent_pinned_at_search_bound_is_flagged():
    R = additive(1.0, 1.0, 3.0, 1.0, 0.5)  # true p = 3 lies outside the search range below
    f = F.fit_joint(MM, NN, R, p_bounds=(0.01, 2.0))
    assert "p-at-bound" in f.flags and f.p == pytest.approx(2.0, abs=1e-3)
    assert "q-at-bound" not in f.flags


def test_free_E_ending_at_zero_is_flagged():
    f = F.fit_joint(MM, NN, additive(0.0, 1.0, 0.5, 2.0, 1 / 3))
    assert f.flags == ["E-at-bound"]


def test_fit_joint_rejects_bad_arguments():
    with pytest.raises(ParameterError):
        F.fit_joint(MM, NN, additive(*TRUTHS[0]), form="cubic")
    with pytest.raises(ParameterError):
        F.fit_joint(MM[:4], NN[:4], additive(*TRUTHS[0])[:4])  # 4 points for 5 parameters
    with pytest.raises(ParameterError):
        F.fit_joint(MM, NN, additive(*TRUTHS[0]), k=2.0)  # k only means something for power_mean


# --------------------------------------------------------------------------------------------------------
# Log-log slopes


def test_loglog_slope_recovers_exact_power_law():
    x = np.geomspace(10, 1e5, 12)
    f = F.loglog_slope(x, 3.0 * x**-0.75)
    assert f.slope == pytest.approx(-0.75, abs=1e-10)
    assert f.intercept == pytest.approx(np.log(3.0), abs=1e-10)
    assert f.stderr < 1e-12 and f.flag == "" and f.ok
    assert (f.n_points, f.x_min, f.x_max) == (12, pytest.approx(10), pytest.approx(1e5))
    assert f.decades == pytest.approx(4.0)


def test_loglog_slope_flags_short_windows():
    assert F.loglog_slope([1.0, 10.0], [1.0, 0.1]).flag == "short-window"  # two points
    narrow = F.loglog_slope([1.0, 1.5, 2.0], [1.0, 1.5**-2, 0.25])  # 0.3 decade
    assert narrow.flag == "short-window" and narrow.slope == pytest.approx(-2.0)


def test_loglog_slope_rejects_non_positive_points_with_a_flag():
    x = np.geomspace(1, 1e4, 8)
    y = x**-0.5
    y[2], y[5] = 0.0, -3.0
    f = F.loglog_slope(x, y)
    assert "non-positive" in f.flag and f.n_points == 6
    assert f.slope == pytest.approx(-0.5, abs=1e-12)


def test_inverse_variance_weights_and_floor():
    R = np.array([2.0, 1.0, 1.0])
    w = F.inverse_variance_weights([0.2, 0.01, 0.0], R)
    np.testing.assert_allclose(w, [100.0, 1e4, 1.0 / F.SEM_REL_FLOOR**2])
    with pytest.raises(ParameterError):
        F.inverse_variance_weights([np.nan, 0.1, 0.1], R)


def test_downweighted_noisy_point_barely_moves_the_slope():
    x = np.geomspace(10, 1e4, 10)
    y = x**-0.5
    sem = 0.01 * y
    y[-1] *= 3.0
    sem[-1] = 2.0 * y[-1]
    w = F.inverse_variance_weights(sem, y)
    assert abs(F.loglog_slope(x, y).slope + 0.5) > 0.05
    assert abs(F.loglog_slope(x, y, weights=w).slope + 0.5) < 1e-3


def test_downweighted_noisy_point_barely_moves_the_joint_fit():
    E, A, p, B, q = TRUTHS[0]
    R = additive(*TRUTHS[0])
    sem = 0.001 * R
    corner = np.argmax(MM * NN)
    R[corner] *= 1.5
    sem[corner] = R[corner]
    w = F.inverse_variance_weights(sem, R)
    kw = dict(E=E, loss="l2")  # squares: otherwise Huber alone would shrug the outlier off
    unweighted = F.fit_joint(MM, NN, R, **kw)
    weighted = F.fit_joint(MM, NN, R, weights=w, **kw)
    assert abs(unweighted.p - p) > 0.02
    assert abs(weighted.p - p) < 1e-4 and abs(weighted.q - q) < 1e-4


def test_huber_loss_resists_an_outlier_that_moves_least_squares():
    E, A, p, B, q = TRUTHS[0]
    R = additive(*TRUTHS[0])
    R[np.argmax(MM * NN)] *= 1.5
    assert abs(F.fit_joint(MM, NN, R, E=E, loss="l2").p - p) > 0.02
    assert abs(F.fit_joint(MM, NN, R, E=E, loss="huber").p - p) < 1e-3


# --------------------------------------------------------------------------------------------------------
# Window rules and diagnostics


def test_window_rules_select_the_documented_points():
    # gamma = 1, a = 2, margin 4: k* = sqrt(N_eff).
    M = np.array([8.0, 16.0, 40.0, 64.0])
    N_eff = np.array([100.0, 100.0, 100.0, 100.0])  # k* = 10, so the N-window needs M >= 40
    np.testing.assert_array_equal(F.n_slope_window(M, N_eff, 1.0, 2.0), [False, False, True, True])
    N_eff = np.array([256.0, 1000.0, 1024.0, 1e5])  # M = 8 needs N_eff >= 4·64 = 256
    np.testing.assert_array_equal(F.m_slope_window(8.0, N_eff, 1.0, 2.0), [True, True, True, True])
    np.testing.assert_array_equal(F.m_slope_window(16.0, N_eff, 1.0, 2.0), [False, False, True, True])
    np.testing.assert_array_equal(F.m_slope_window(16.0, N_eff, 0.5, 2.0), [False, False, False, True])
    assert F.WINDOW_MARGIN == 4.0
    assert F.n_slope_window(40.0, 100.0, 1.0, 2.0, margin=5.0) == np.False_


def test_local_slopes_of_exact_power_law_equal_the_exponent():
    x = np.array([3.0, 1.0, 50.0, 7.0, 1000.0])  # unsorted, non-uniform on the log scale
    xs, s = F.local_slopes(x, 2.0 * x**1.7)
    np.testing.assert_array_equal(xs, np.sort(x))
    np.testing.assert_allclose(s, 1.7, rtol=1e-12)
    with pytest.raises(ParameterError):
        F.local_slopes([1.0, 2.0, 3.0], [1.0, 0.0, 2.0])


def test_window_sensitivity_and_systematic_range_see_a_crossover():
    x = np.geomspace(1, 1e6, 25)
    y = x**-0.5 + 1e-2 * x**-1.0  # steeper at small x, -0.5 asymptotically
    ws = F.window_sensitivity(x, y, starts=[1, 1e2, 1e4])
    assert list(ws["flag"]) == ["", "", ""]
    assert ws["slope"].iloc[0] < ws["slope"].iloc[1] < ws["slope"].iloc[2] < -0.5
    assert ws["slope"].iloc[2] == pytest.approx(-0.5, abs=1e-4)
    lo, hi = F.systematic_range(x, y, [(1, 1e6), (1e2, 1e6), (1e4, 1e6), (1e5, 2e5)])  # last: too short
    assert (lo, hi) == (ws["slope"].iloc[0], ws["slope"].iloc[2])
    with pytest.raises(ParameterError):
        F.systematic_range(x, y, [(1e5, 2e5)])


# --------------------------------------------------------------------------------------------------------
# Theory tests


def test_theory_test_scalar():
    z, p_value, verdict = F.theory_test(0.52, 0.5, std=0.02)
    assert z == pytest.approx(1.0) and verdict == "consistent" and p_value == pytest.approx(0.3173, abs=1e-4)
    z, p_value, verdict = F.theory_test(0.52, 0.6, std=0.02)
    assert p_value < 0.05 and verdict == "theory outside 95% CI" and z == pytest.approx(-4.0)


def test_theory_test_vector_uses_the_covariance():
    cov = np.array([[0.02**2, 0.9 * 0.02 * 0.01], [0.9 * 0.02 * 0.01, 0.01**2]])
    ok = F.theory_test([0.51, 0.335], [0.5, 1 / 3], cov=cov)
    assert ok.verdict == "consistent" and ok.p_value > 0.05 and ok.z.shape == (2,)
    # Each marginal is within 1.5σ, but the pair moves against a strong positive correlation.
    bad = F.theory_test([0.529, 1 / 3 - 0.0145], [0.5, 1 / 3], cov=cov)
    assert np.all(np.abs(bad.z) <= 1.5)
    assert bad.p_value < 0.05 and bad.verdict == "theory outside 95% CI"


# --------------------------------------------------------------------------------------------------------
# Functional-form comparison


def test_compare_forms_picks_the_generating_form():
    E, A, p, B, q = TRUTHS[0]
    R_add = additive(*TRUTHS[0])
    R_max = E + np.maximum(A * MM**-p, B * NN**-q)
    cmp_add = F.compare_forms(MM, NN, R_add)
    cmp_max = F.compare_forms(MM, NN, R_max)
    assert cmp_add.best == "additive" and cmp_max.best == "max"
    held = cmp_add.holdout
    assert held.sum() == 3 * 4 and np.all(MM[held] >= M_GRID[-3]) and np.all(NN[held] >= N_GRID[-4])
    t = cmp_max.table.set_index("form")["rms_log_heldout"]
    assert t["max"] < 1e-8 < 1e-2 < t["additive"]


# --------------------------------------------------------------------------------------------------------
# Bootstrap


def _seeded_curve(rng, x, n_seeds, slope, sigma):
    """Columns (seed, x index i, x, y) with y = 3·x^slope·exp(σ·ε), ε ~ N(0, 1) iid per seed and point."""
    y = 3.0 * x[None, :] ** slope * np.exp(sigma * rng.standard_normal((n_seeds, x.size)))
    return {"seed": np.repeat(np.arange(n_seeds), x.size), "i": np.tile(np.arange(x.size), n_seeds),
            "x": np.tile(x, n_seeds), "y": y.ravel()}


def _slope_of_geometric_mean(d):
    # numpy on a dict of arrays rather than groupby: this runs 40 000 times in the coverage test.
    i = d["i"]
    counts = np.bincount(i)
    return F.loglog_slope(np.bincount(i, d["x"]) / counts, np.exp(np.bincount(i, np.log(d["y"])) / counts))


def test_bootstrap_resamples_whole_groups_reproducibly():
    df = pd.DataFrame(_seeded_curve(np.random.default_rng(0), np.geomspace(1, 1e3, 4), 6, -0.5, 0.1))

    def complete_groups(d):
        sizes = d.groupby("seed").size()
        assert set(sizes) <= {4, 8, 12, 16, 20, 24}  # each drawn seed brings all 4 of its rows
        return {"p": _slope_of_geometric_mean(d).slope, "q": float(d["seed"].nunique())}

    a = F.bootstrap(df, complete_groups, group_cols="seed", n_boot=50, seed=3)
    b = F.bootstrap(df, complete_groups, group_cols="seed", n_boot=50, seed=3)
    pd.testing.assert_frame_equal(a.samples, b.samples)
    assert a.n_failed == 0 and a.samples.shape == (50, 2) and np.isfinite(a.corr_pq)
    assert a.ci_low["p"] < a.estimate["p"] < a.ci_high["p"]
    assert list(a.summary().columns) == ["estimate", "std", "low", "high"]


def test_bootstrap_within_strata_keeps_each_stratum_size():
    # Cell 0 has 3 seeds of 2 rows each, cell 1 has 5 single-row seeds.
    df = pd.DataFrame({"cell": [0] * 6 + [1] * 5, "seed": [0, 0, 1, 1, 2, 2, 0, 1, 2, 3, 4],
                       "v": np.arange(11.0)})
    seen = []

    def record(d):
        sizes = d.groupby("cell").size()
        assert list(sizes) == [6, 5]
        assert d[d["cell"] == 0].groupby("seed").size().isin([2, 4, 6]).all()  # seeds come whole
        seen.append(set(d["v"]))
        return d["v"].mean()

    F.bootstrap(df, record, group_cols="seed", strata="cell", n_boot=30, seed=0)
    assert len({frozenset(v) for v in seen}) > 5  # resamples differ


def test_expanded_percentile_interval_widens_by_the_small_sample_factor():
    df = _seeded_curve(np.random.default_rng(5), np.geomspace(1, 1e3, 4), 20, -0.5, 0.1)
    pct = F.bootstrap(df, _slope_of_geometric_mean, group_cols="seed", n_boot=400, seed=1)
    exp = F.bootstrap(df, _slope_of_geometric_mean, group_cols="seed", n_boot=400, seed=1, interval="expanded")
    pd.testing.assert_frame_equal(pct.samples, exp.samples)
    tail = 100 * stats.norm.sf(np.sqrt(20 / 19) * stats.t.ppf(0.975, 19))  # 20 seeds: 1.6 %, not 2.5 %
    assert tail == pytest.approx(1.59, abs=0.01)
    assert exp.ci_low["slope"] == np.percentile(exp.samples["slope"], tail)
    assert exp.ci_low["slope"] < pct.ci_low["slope"] and exp.ci_high["slope"] > pct.ci_high["slope"]
    assert exp.interval == "expanded" and pct.interval == "percentile"


def test_bootstrap_counts_failed_refits():
    df = pd.DataFrame({"v": np.arange(10.0)})

    def fragile(d):
        if d["v"].nunique() < 7:
            raise ValueError("too few distinct rows")
        return d["v"].mean()

    res = F.bootstrap(df, fragile, n_boot=100, seed=0)
    assert 0 < res.n_failed < 100 and res.samples["value"].isna().sum() == res.n_failed


def test_bootstrap_interval_covers_the_true_slope():
    rng = np.random.default_rng(2024)
    x = np.geomspace(1e2, 1e5, 6)
    covered, estimates, boot_sds = 0, [], []
    for rep in range(200):
        df = _seeded_curve(rng, x, 40, -1 / 3, 0.2)
        res = F.bootstrap(df, _slope_of_geometric_mean, group_cols="seed", n_boot=200, seed=rep)
        covered += res.ci_low["slope"] <= -1 / 3 <= res.ci_high["slope"]
        estimates.append(res.estimate["slope"])
        boot_sds.append(res.samples["slope"].std())
    # Percentile intervals of a mean of 40 units should cover 94 % (1 200 offline replicates: 93 %).
    assert covered >= 180
    # Not merely wide: the bootstrap spread matches the true sampling spread of the estimate.
    assert 0.85 < np.mean(boot_sds) / np.std(estimates, ddof=1) < 1.15


def _joint_coverage(n_reps, n_boot, seed, n_seeds=10, sigma=0.05):
    """How often the bootstrap interval of (p, q) covers the truth on a noisy 5×7 surface, R − σ² known."""
    E, A, p, B, q = TRUTHS[1]
    M, N = surface(np.geomspace(16, 1024, 5), np.geomspace(1e2, 1e6, 7))
    R = additive(E, A, p, B, q, M, N)
    rng = np.random.default_rng(seed)
    cell = np.tile(np.arange(R.size), n_seeds)
    covered, estimates, boot_sds = {"p": 0, "q": 0}, [], []
    for rep in range(n_reps):
        noise = np.exp(sigma * rng.standard_normal((n_seeds, R.size)))
        table = {"seed": np.repeat(np.arange(n_seeds), R.size), "cell": cell, "R": (R * noise).ravel()}

        def fit_fn(d, starts=None):
            codes = d["cell"]
            log_mean = np.bincount(codes, np.log(d["R"]), R.size) / np.bincount(codes, None, R.size)
            return F.fit_joint(M, N, np.exp(log_mean), E=E, starts=starts)

        point = fit_fn(table)
        res = F.bootstrap(table, lambda d: fit_fn(d, starts=[(point.p, point.q)]), group_cols="seed",
                          n_boot=n_boot, seed=rep)
        assert res.n_failed == 0
        for name, truth in (("p", p), ("q", q)):
            covered[name] += res.ci_low[name] <= truth <= res.ci_high[name]
        estimates.append([res.estimate["p"], res.estimate["q"]])
        boot_sds.append(res.samples[["p", "q"]].std().to_numpy())
    # Ratio of the mean bootstrap std to the std of the estimates over replicates, for p and q.
    return covered, np.mean(boot_sds, axis=0) / np.std(estimates, axis=0, ddof=1)


def test_bootstrap_interval_of_the_joint_fit_covers_the_true_exponents():
    # Small by necessity (each refit is a full joint fit): 16 replicates × 25 resamples, p and q pooled.
    # Offline, 120 replicates × 100 resamples covered 231 of 240 (96 %); a broken resampler (no
    # replacement, wrong units) gives near-zero-width intervals and fails this by far.
    covered, spread_ratio = _joint_coverage(n_reps=16, n_boot=25, seed=0)
    assert covered["p"] + covered["q"] >= 26
    assert np.all((spread_ratio > 0.5) & (spread_ratio < 2.0))  # not covering by being too wide
