"""The theory module against the exact engine: the deterministic equivalent of the sketch's approximation error,
and the exponents the fits are checked against."""

import numpy as np
import pytest

from sketchlaw.problem import build_problem
from sketchlaw.spectra import Prior, Spectrum
from sketchlaw.theory import exponents, sketch_approx_de

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


def test_source_exponents_follow_the_saturation():
    assert exponents("source", 2.0, 1.5) == {"M": -0.5, "N_eff": -0.25}
    assert exponents("source", 2.0, 2.5) == {"M": -1.5}
    assert exponents("source", 2.0, 3.0) == {}     # M^-a log M: not a power
    assert exponents("source", 2.0, 3.5) == {"M": -2.0}


def test_joint_forms_on_a_too_small_grid_are_left_out_not_failed():
    """A valid but tiny grid (2 M × 2 N) cannot carry a 4-parameter joint fit: the comparison of forms is empty
    instead of the fit rule failing; on a proper grid every form is compared and exactly one is best."""
    import pandas as pd

    from sketchlaw import analysis

    def surface(Ms, Ns):
        M, N = np.meshgrid(Ms, Ns)
        df = pd.DataFrame({"M": M.ravel(), "N_eff": N.ravel(), "sketch_seed": 0})
        df["risk"] = 1.0 + df["M"] ** -1.0 + df["N_eff"] ** -0.5
        return df.assign(experiment="main", spectrum="power", a=2.0, b=2.0, sigma2=1.0)

    assert analysis.joint_forms(surface([32.0, 64.0], [1e3, 1e4])) == []
    forms = pd.DataFrame(analysis.joint_forms(surface(2.0 ** np.arange(3, 10), np.geomspace(1e2, 1e7, 8))))
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
    from sketchlaw.estimators import extrapolate
    from sketchlaw.theory import exponents, sketch_approx_de_far

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
    from sketchlaw.theory import _approx_de_quadrature

    M = np.array([64.0, 2048.0, 32768.0])
    exact = sketch_approx_de(kind, a, M, b, head=max(10**6, int(16 * M[-1])))
    assert _approx_de_quadrature(kind, a, M, b)[1] == pytest.approx(exact, rel=1e-6)
