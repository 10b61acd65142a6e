"""The estimators of the exponent table: known exponents recovered, intervals that cover, verdicts that mean what
they say (docs/METHODS.md §13, §14)."""

import math

import numpy as np
import pandas as pd
import pytest

from sketchlaw.analysis import estimators as E


def seed_curves(xs, slope, n_seeds, noise, rng, correction=0.0, omega=1.0):
    """Per-seed curves y = x^slope·(1 + correction·x^-omega)·exp(seed offset + point noise)."""
    rows = []
    for s in range(n_seeds):
        offset = rng.normal(0, 0.3)
        y = xs**slope * (1 + correction * xs**-omega) * np.exp(offset + rng.normal(0, noise, len(xs)))
        rows += [{"seed": s, "x": x, "y": v} for x, v in zip(xs, y)]
    return pd.DataFrame(rows)


def test_upper_half_is_the_geometric_upper_half_with_a_floor_of_three_points():
    assert list(E.upper_half([1, 10, 100, 1000, 10000])) == [100, 1000, 10000]
    assert list(E.upper_half([32, 64, 128, 256, 512, 1024, 2048])) == [256, 512, 1024, 2048]
    assert list(E.upper_half([1, 2, 1000])) == [1, 2, 1000]
    assert len(E.upper_half([5, 6])) == 2


@pytest.mark.parametrize("slope", [-0.25, -1 / 3, -1.7])
def test_curve_slope_recovers_a_known_exponent_exactly_without_noise(slope):
    xs = np.geomspace(10, 1e6, 9)
    est = E.curve_slope(seed_curves(xs, slope, 3, 0.0, np.random.default_rng(0)), "x", "y", seed="seed")
    assert est.fitted == pytest.approx(slope, abs=1e-12)
    assert est.n_seeds == 3 and est.n_points == 5 and est.x_lo == pytest.approx(math.sqrt(10 * 1e6))
    assert est.ci_high - est.ci_low == pytest.approx(0, abs=1e-10)


def test_t_interval_over_three_seeds_covers_at_its_nominal_rate():
    """400 synthetic experiments, 3 seeds each, known exponent: the 95 % t-interval must cover ≥ 90 % of the time
    (a percentile bootstrap over 3 seeds covers far less: with 3 seeds it can never exceed the seeds' range)."""
    rng = np.random.default_rng(11)
    xs = np.geomspace(16, 4096, 9)
    covered = 0
    for _ in range(400):
        est = E.curve_slope(seed_curves(xs, -0.5, 3, 0.05, rng), "x", "y", seed="seed")
        covered += est.ci_low <= -0.5 <= est.ci_high
    assert covered / 400 >= 0.90
    assert covered / 400 <= 0.99  # and it is not vacuous


def test_too_few_points_is_not_fitted_with_a_reason():
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 0.5]})
    est = E.curve_slope(df, "x", "y")
    assert not est.ok and "need 3" in est.reason
    v = E.verdict(est, -0.5, math.nan, {})
    assert v == "not fitted"


@pytest.mark.parametrize("s_inf,c,omega", [(-0.5, 0.3, 0.5), (-1 / 3, -0.2, 1.0), (-2.0, 0.5, 0.3)])
def test_extrapolation_recovers_the_limit_of_a_power_law_corrected_curve(s_inf, c, omega):
    """y = x^s∞·exp(c·x^-ω/(−ω)·…): local slopes s∞ + c·x^-ω exactly; model (i) recovers s∞."""
    x = np.geomspace(10, 1e5, 9)
    # d log y / d log x = s∞ + c x^-ω  ⇒  log y = s∞ log x − (c/ω) x^-ω
    y = np.exp(s_inf * np.log(x) - c / omega * x**-omega)
    ex = E.extrapolate(x, y)
    assert ex["extrapolated"] == pytest.approx(s_inf, abs=2e-3 * max(1, abs(c)))
    assert ex["extrapolated_low"] <= ex["extrapolated"] <= ex["extrapolated_high"]


def test_extrapolation_interval_of_a_jagged_curve_covers_its_limit():
    """A curve whose local slopes scatter about s∞ + c·x^-ω (as the compute frontier's do, its optimum located
    between grid points): the extrapolation interval, which carries the residual scatter, covers s∞ at ≥ 90 % over
    300 synthetic curves; without the scatter term (an exact curve) it stays narrow."""
    rng = np.random.default_rng(5)
    x = np.geomspace(1e4, 1e10, 13)
    s_inf, c, omega = 0.4, -0.3, 0.25
    exact = s_inf * np.log(x) - c / omega * x**-omega
    covered = 0
    for _ in range(300):
        ex = E.extrapolate(x, np.exp(exact + rng.normal(0, 0.02, len(x))))
        covered += ex["extrapolated_low"] <= s_inf <= ex["extrapolated_high"]
    assert covered / 300 >= 0.90
    smooth = E.extrapolate(x, np.exp(exact))
    assert smooth["extrapolated_low"] <= s_inf <= smooth["extrapolated_high"]
    assert smooth["extrapolated_high"] - smooth["extrapolated_low"] < 0.02


def test_verdicts_follow_the_fixed_vocabulary():
    ok = E.Estimate(fitted=-0.495, ci_low=-0.497, ci_high=-0.493, sys_low=-0.496, sys_high=-0.494, n_points=4)
    assert E.verdict(ok, math.nan, math.nan, {}) == "no theory"
    assert E.verdict(ok, -0.495, math.nan, {}) == "consistent"
    holds = {"extrapolated": -0.5, "extrapolated_low": -0.503, "extrapolated_high": -0.498}
    assert E.verdict(ok, -0.5, -0.4951, holds) == "pre-asymptotic"
    assert E.verdict(ok, -0.5, -0.46, holds) == "disagrees"  # finite-size theory says otherwise
    misses = {"extrapolated": -0.49, "extrapolated_low": -0.492, "extrapolated_high": -0.488}
    assert E.verdict(ok, -0.5, -0.4951, misses) == "disagrees"


@pytest.mark.parametrize("c1,c2,w1,w2", [(0.1, 0.1, 0.2, 0.4), (0.1, 0.5, 0.15, 0.45), (0.2, 0.5, 0.25, 0.5),
                                         (0.05, 0.2, 0.15, 0.45)])
def test_extrapolation_holds_the_limit_of_a_curve_crossing_between_two_corrections(c1, c2, w1, w2):
    """log y = −0.5·log x + c₁x^−ω₁ − c₂x^−ω₂ on 10³ … 10⁸: the local slopes' steps grow before they shrink, so one
    correction fitted on the last four slopes misses −0.5 by more than the resolution; the neighbouring windows and
    the reach to the last slope (the unsettled-steps rule) make the interval hold it."""
    x = 10.0 ** np.arange(3, 9)
    y = np.exp(-0.5 * np.log(x) + c1 * x**-w1 - c2 * x**-w2)
    steps = np.abs(np.diff(E.local_slopes(x, y)[1]))
    assert np.any(steps[1:] > steps[:-1])
    r = E.extrapolate(x, y)
    assert abs(r["extrapolated"] + 0.5) > 3 * E.SLOPE_RESOLUTION
    assert r["extrapolated_low"] <= -0.5 <= r["extrapolated_high"]


def test_extrapolation_of_a_settled_curve_keeps_its_headline_and_edge():
    """One power correction (steps shrinking throughout): the headline is the limit and the interval's edge beyond
    it stays at the resolution (the window systematic only adds the 1/log x model's values, on the other side)."""
    x = 10.0 ** np.arange(3, 9)
    y = np.exp(-0.5 * np.log(x) + 0.3 * x**-0.3)
    r = E.extrapolate(x, y)
    assert r["extrapolated"] == pytest.approx(-0.5, abs=1e-6)
    assert r["extrapolated_low"] == pytest.approx(-0.5 - E.SLOPE_RESOLUTION, abs=1e-6)
