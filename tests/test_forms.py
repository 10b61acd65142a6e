"""Tests of sketchlaw.analysis.forms: exact recovery of joint forms on synthetic surfaces, flags, weights, and the
held-out comparison of forms."""

from __future__ import annotations

import numpy as np
import pytest

from sketchlaw.analysis import forms as F
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


def test_downweighted_noisy_point_barely_moves_the_joint_fit():
    E, A, p, B, q = TRUTHS[0]
    R = additive(*TRUTHS[0])
    sem = 0.001 * R
    corner = np.argmax(MM * NN)
    R[corner] *= 1.5
    sem[corner] = R[corner]
    w = (R / sem) ** 2  # 1/Var(log R) by the delta method
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
