"""The theory module against the exact engine: the deterministic equivalent of the sketch's approximation error,
and the exponents the fits are checked against."""

import numpy as np
import pytest

from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.theory import exponents
from sketchlaw.theory.equivalents import sketch_approx_de

SEEDS = range(4)


@pytest.mark.parametrize("kind,a,b,rel", [
    ("power", 1.5, None, 0.01),
    ("power", 2.0, 1.5, 0.01),   # source condition, b < a
    ("power", 2.0, 2.5, 0.01),   # b > a, below the saturation at b = a + 1
    ("power", 2.0, 3.5, 0.05),   # saturated (M^-a): the first-order equivalent is ~3 % low here
    ("logpower", 3.0, None, 0.01),
])
@pytest.mark.parametrize("M", [64, 256])
def test_deterministic_equivalent_matches_exact_expected_approx(kind, a, b, rel, M):
    exact = np.array([build_problem(Spectrum(kind, a, 8 * M), M, 1.0, s, Prior(b), tail="mean").approx
                      for s in SEEDS])
    de = float(sketch_approx_de(kind, a, M, b)[0])
    se = exact.std(ddof=1) / np.sqrt(len(exact))
    assert abs(exact.mean() - de) <= rel * de + 4 * se, (exact.mean(), de, se)


def test_deterministic_equivalent_is_monotone_and_explains_the_log_power_slope():
    M = np.array([256.0, 2048.0, 10.0**6])
    de = sketch_approx_de("logpower", 2.0, M)
    assert np.all(np.diff(de) < 0)
    slopes = np.diff(np.log(de)) / np.diff(np.log(np.log(M)))
    # the asymptotic slope is -(a - 1) = -1; the sketch's cutoff M/log M keeps it steeper at any feasible M
    assert np.all(slopes < -1.1) and slopes[1] > slopes[0]


def test_source_exponents_follow_the_saturation_and_the_slower_term():
    assert exponents("source", 2.0, 1.5) == {"M": -0.5, "N_eff": -0.25}
    # b > a: the bias decays as N_eff^-(b-1)/a, faster than the variance's N_eff^-(a-1)/a, which is left
    assert exponents("source", 2.0, 2.5) == {"M": -1.5, "N_eff": -0.5}
    assert exponents("source", 2.0, 2.5, sigma2=0.0) == {"M": -1.5, "N_eff": -0.75}  # no noise: the bias alone
    assert exponents("source", 2.0, 3.0) == {"N_eff": -0.5}     # M: M^-a log M, not a power
    assert exponents("source", 2.0, 3.5) == {"M": -2.0, "N_eff": -0.5}


@pytest.mark.parametrize("a,b", [(1.7, 2.9), (2.6, 3.4), (3.0, 3.5)])
def test_b_above_a_limit_excess_heads_to_the_variance_rate(a, b):
    """For b > a the M = ∞ limit's bias and variance have the rates the theorem's form gives: the bias's local slope
    against N_eff tends to −(b − 1)/a, the variance's to −(a − 1)/a, and their sum, once the variance dominates, to
    the variance's (the N_eff theory of ``exponents``); a and b in no shipped config."""
    from sketchlaw.analysis.estimators import local_slopes
    from sketchlaw.engine.limit import limit_curve

    N = np.array([1e12, 1e14, 1e20, 1e22])
    c = limit_curve("power", a, b, 1.0, 0.1, N)
    _, bias = local_slopes(c["N_eff"], c["bias"])
    _, var = local_slopes(c["N_eff"], c["variance"])
    _, total = local_slopes(c["N_eff"], c["excess"])
    assert abs(bias[-1] + (b - 1) / a) < 0.02 and abs(var[-1] + (a - 1) / a) < 0.02, (bias, var)
    assert abs(total[-1] - exponents("source", a, b)["N_eff"]) < 0.02, total
    assert abs(total[0] - total[-1]) > abs(total[-1] - exponents("source", a, b)["N_eff"])  # it approaches


def test_regime_rules_select_the_documented_points():
    """theory's window rules at margin 4 (γ = 1, a = 2: k* = √t)."""
    from sketchlaw import theory

    M = np.array([8.0, 16.0, 40.0, 64.0])
    t = np.full(4, 100.0)  # k* = 10: the sketch limits nothing from M = 40 on
    np.testing.assert_array_equal(theory.sketch_limits_nothing(M, t, 2.0), [False, False, True, True])
    t = np.array([256.0, 1000.0, 1024.0, 1e5])  # M = 8 needs t >= 4·64 = 256, M = 16 needs 1024
    np.testing.assert_array_equal(theory.data_limits_nothing(8.0, t, 2.0), [True, True, True, True])
    np.testing.assert_array_equal(theory.data_limits_nothing(16.0, t, 2.0), [False, False, True, True])
    # N ≥ 4·L^(b/a): with a = 2, b = 1.5 and N = 1000, L ≤ 250^(4/3) ≈ 1574.8
    np.testing.assert_array_equal(theory.dataset_limits_nothing(1000, [1500, 1574, 1575], 2.0, 1.5),
                                  [True, True, False])
    assert theory.WINDOW_MARGIN == 4.0 and not theory.sketch_limits_nothing(40.0, 100.0, 2.0, margin=5.0)


def test_joint_forms_on_a_too_small_grid_are_left_out_not_failed():
    """A valid but tiny grid (2 M × 2 N) cannot carry a 4-parameter joint fit: the comparison of forms is empty
    instead of the fit rule failing; on a proper grid every form is compared and exactly one is best."""
    import pandas as pd

    from sketchlaw.analysis.forms import joint_forms

    def surface(Ms, Ns):
        M, N = np.meshgrid(Ms, Ns)
        df = pd.DataFrame({"M": M.ravel(), "N_eff": N.ravel(), "sketch_seed": 0})
        df["risk"] = 1.0 + df["M"] ** -1.0 + df["N_eff"] ** -0.5
        return df.assign(experiment="main", spectrum="power", a=2.0, b=2.0, sigma2=1.0)

    assert joint_forms(surface([32.0, 64.0], [1e3, 1e4])) == []
    forms = pd.DataFrame(joint_forms(surface(2.0 ** np.arange(3, 10), np.geomspace(1e2, 1e7, 8))))
    assert len(forms) >= 2 and forms["best"].sum() == 1
    additive = forms[forms["form"] == "additive"].iloc[0]
    assert additive["p"] == pytest.approx(1.0, abs=0.02) and additive["q"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("kind,a,b", [("power", 1.7, None), ("power", 1.8, 2.3), ("power", 2.6, 1.9), ("power", 6.0, None),
                                      ("logpower", 1.6, None), ("logpower", 2.5, None)])
def test_far_equivalent_of_approx_extrapolates_to_the_theorem(kind, a, b):
    """The M rows' extrapolation reads where the deterministic equivalent of E Approx is heading, run far beyond the
    grid (theory.sketch_approx_de_far: to M = 10^56, or κ ≈ 1e-200 for the power law); at exponents not in any
    config that limit is the theorem's M exponent (for the log power law, against log M, whose slopes still move
    by ~0.03 per four decades at M = 10^50)."""
    from sketchlaw.analysis.estimators import extrapolate
    from sketchlaw.theory import exponents
    from sketchlaw.theory.equivalents import sketch_approx_de_far

    M, approx = sketch_approx_de_far(kind, a, 256, b)
    assert M[0] == pytest.approx(256) and len(M) >= 5 and np.all(np.diff(approx) < 0)
    assert M[-1] > (1e50 if kind == "logpower" else min(1e50, 1e200 ** (1 / a)) / 1e4)
    logpower = kind == "logpower"
    out = extrapolate(M, approx, logpower, log_corrections=logpower)
    theorem = exponents("logpower" if logpower else ("source" if b is not None else "main"), a, b)
    theorem = theorem["log_M" if logpower else "M"]
    assert abs(out["extrapolated"] - theorem) < 0.005, (out, theorem)
    assert out["extrapolated_low"] <= theorem <= out["extrapolated_high"]


@pytest.mark.parametrize("kind,a,b", [("power", 1.5, None), ("power", 2.0, 1.5), ("power", 2.0, 2.5),
                                      ("logpower", 3.0, None)])
def test_far_equivalent_agrees_with_the_exact_sum_where_both_run(kind, a, b):
    """The far equivalent (quadrature in log i) against the exact sum over the first 10⁶+ coordinates."""
    from sketchlaw.theory.equivalents import _approx_de_quadrature

    M = np.array([64.0, 2048.0, 32768.0])
    exact = sketch_approx_de(kind, a, M, b, head=max(10**6, int(16 * M[-1])))
    assert _approx_de_quadrature(kind, a, M, b)[1] == pytest.approx(exact, rel=1e-6)
