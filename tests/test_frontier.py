"""The compute-optimal frontier (docs/METHODS.md §12–§14): the nested sketch family is the sketches it claims to be,
a located optimum finds a known minimum within its error bound, the frontier exponents follow from the rates'
balance for every (a, b, σ²), the deterministic equivalent's continuous frontier is resolved by its grid and agrees
with the exact one, and the rows recover known exponents."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from sketchlaw import theory
from sketchlaw.analysis import compute as analysis
from sketchlaw.analysis.rows import Diagnostics, frame
from sketchlaw.engine.problem import NestedSketches, build_problem, full_sketch
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.errors import ParameterError


# ------------------------------------------------------------------------------------------------ nested sketches

@pytest.mark.parametrize("a, b, tail", [(2.0, None, "mean"), (3.5, None, "none"), (1.5, 2.5, "mean")])
def test_nested_family_is_the_first_rows_of_its_largest_sketch(a, b, tail):
    """problem(M_max) is build_problem's problem for the same seed; problem(M) is the reduction of the first M rows of
    that sketch rescaled to N(0, 1/M) entries, computed here directly in full dimension (a = 3.5: eigenvalues down to
    1e-8, where forming C Cᵀ would lose p(0))."""
    spectrum, prior, M_max, seed = Spectrum("power", a, 1024), Prior(b), 96, 7
    family = NestedSketches(spectrum, M_max, seed, prior, tail)
    top, ref = family.problem(M_max), build_problem(spectrum, M_max, 0.0, seed, prior, tail=tail)
    np.testing.assert_allclose(top.mu, ref.mu, rtol=1e-8)
    np.testing.assert_allclose(top.p0, ref.p0, rtol=1e-6)
    assert top.approx == pytest.approx(ref.approx, rel=1e-9)
    S = full_sketch(seed, M_max, spectrum.d) * math.sqrt(M_max)
    lam, s, taus = spectrum.eigenvalues(), prior.variances(spectrum), family.taus
    for M in (1, 10, 57):
        SM = S[:M] / math.sqrt(M)
        Sigma = (SM * lam) @ SM.T + np.eye(M) * taus["tau_H"] / M
        mu, U = np.linalg.eigh(Sigma)
        mu, U = mu[::-1], U[:, ::-1]
        t = np.sum((U.T @ (SM * (lam * np.sqrt(s)))) ** 2, axis=1) + taus["tau_H2L"] / M
        p = family.problem(M)
        np.testing.assert_allclose(p.mu, mu, rtol=1e-8)
        np.testing.assert_allclose(p.p0, t / mu**2, rtol=1e-6)
        assert p.approx == pytest.approx(lam @ s + taus["tau_HL"] - np.sum(t / mu), rel=1e-9)


def test_nested_family_refuses_sizes_it_does_not_hold():
    family = NestedSketches(Spectrum("power", 2.0, 64), 8, 0)
    with pytest.raises(ParameterError, match="M"):
        family.problem(9)
    with pytest.raises(ParameterError, match="M"):
        NestedSketches(Spectrum("power", 2.0, 64), 65, 0)


# ------------------------------------------------------------------------------------------------ locating optima

def _curve(u, centre, jitter, rng):
    """An asymmetric minimum at log M = centre: log(R − σ²) = (u − c)² /4 + (u − c)³/20 + noise."""
    x = u - centre
    return np.exp(x**2 / 4 + x**3 / 20 + jitter * rng.standard_normal(len(u)))


def test_located_optimum_of_an_exact_parabola_is_its_vertex():
    grid = np.log(2.0 ** np.arange(3, 12, 0.5))
    refined = np.log(2 ** 6.1) + np.arange(-3, 4) / 8 * math.log(2)
    u = np.concatenate([grid, refined])
    y = np.exp((u - math.log(2 ** 6.1)) ** 2)
    out = analysis.locate_optimum(np.exp(u), y, np.arange(len(u)) < len(grid))
    assert out["interior"] and out["M_star"] == pytest.approx(2 ** 6.1, rel=1e-9)
    assert out["log_M_error"] < 1e-6


def test_located_optimum_error_bound_covers_the_true_minimum_under_jitter():
    """The parabola's vertex, with the cubic's minimum beside it, brackets the minimum of a jittered asymmetric curve
    (jitter 0.1 %, as a nested family shows): |vertex − true| ≤ log_M_error + |vertex − cubic| in at least 90 % of 200
    draws, and the bound is informative (median < 0.1, a quarter of the grid spacing)."""
    rng = np.random.default_rng(4)
    grid = np.log(2.0 ** np.arange(3, 12, 0.5))
    hits, widths = 0, []
    for _ in range(200):
        centre = rng.uniform(4.0, 7.0)
        best = grid[np.argmin(np.abs(grid - centre))]
        refined = best + np.arange(-3, 4) / 8 * math.log(2)
        u = np.concatenate([grid, refined])
        out = analysis.locate_optimum(np.exp(u), _curve(u, centre, 1e-3, rng), np.arange(len(u)) < len(grid))
        bound = out["log_M_error"] + abs(math.log(out["M_star"] / out["M_star_cubic"]))
        hits += abs(math.log(out["M_star"]) - centre) <= bound
        widths.append(bound)
    assert hits >= 180, hits
    assert np.median(widths) < 0.1, np.median(widths)


def test_optimum_at_the_grid_edge_is_not_interior():
    M = 2.0 ** np.arange(3, 6)
    out = analysis.locate_optimum(M, 1 / M, np.ones(3, bool))
    assert not out["interior"] and out["M_star"] == 32


# ------------------------------------------------------------------------------------------------ theory exponents

def _rates_frontier(a, b, sigma2, C):
    """argmin over log M of Approx + Bias + Var at N = C/M with the rates' constants set to 1 (Approx ≂ M^−α,
    α = min(b − 1, a); Bias ≂ N^−(b−1)/a; Var ≂ σ²·min(M, N^(1/a))/N), found numerically; logs left out."""
    alpha = min(b - 1, a)

    def risk(u):
        M, N = math.exp(u), C / math.exp(u)
        return M**-alpha + N ** (-(b - 1) / a) + sigma2 * min(M, N ** (1 / a)) / N

    u = optimize.minimize_scalar(risk, bounds=(0, math.log(C)), method="bounded", options={"xatol": 1e-12}).x
    return math.exp(u), risk(u)


@pytest.mark.parametrize("a, b, sigma2", [(1.5, 1.5, 1.0), (2.3, 1.6, 1.0), (1.7, 2.4, 1.0), (1.4, 3.1, 1.0),
                                          (2.0, 1.5, 0.0), (1.6, 2.0, 0.0), (1.3, 2.9, 0.0)])
def test_frontier_exponents_are_the_balance_of_the_rates(a, b, sigma2):
    """The exponents of ``theory.compute_exponents`` are the slopes of the rates' own numerical frontier between
    C = 1e60 and 1e80 (where constants no longer matter), on every side of b = a, a + 1 and without noise."""
    (M1, R1), (M2, R2) = _rates_frontier(a, b, sigma2, 1e60), _rates_frontier(a, b, sigma2, 1e80)
    e = theory.compute_exponents(a, b, sigma2)
    assert math.log(M2 / M1) / math.log(1e20) == pytest.approx(e["M_star"], abs=2e-3)
    assert math.log(R2 / R1) / math.log(1e20) == pytest.approx(e["reducible_star"], abs=2e-3)
    assert e["N_star"] == pytest.approx(1 - e["M_star"])


def test_frontier_exponents_at_b_equal_a_are_the_papers_and_absent_at_b_equal_a_plus_one():
    assert theory.compute_exponents(2.0) == pytest.approx({"M_star": 1 / 3, "N_star": 2 / 3, "reducible_star": -1 / 3})
    assert theory.compute_exponents(2.0, 3.0) == {}


# ------------------------------------------------------------------------------------------------ the equivalent

@pytest.mark.slow
@pytest.mark.parametrize("a, M", [(1.5, 64), (2.5, 200)])
def test_frontier_modes_give_the_default_equivalent_risk(a, M):
    """The frontier's coarser spectral grid (FRONTIER_MODES) moves the equivalent's risk by < 5e-4 relative."""
    from sketchlaw.theory.equivalents import FRONTIER_MODES, sketched_excess_de

    N = [1000, 10**5, 10**7]
    default = sketched_excess_de("power", a, None, M, 1.0, 0.1, N)
    coarse = sketched_excess_de("power", a, None, M, 1.0, 0.1, N, **FRONTIER_MODES)
    np.testing.assert_allclose(coarse["approx"] + coarse["excess"], default["approx"] + default["excess"], rtol=5e-4)


@pytest.mark.slow
def test_equivalent_frontier_is_resolved_by_its_grid_and_matches_the_exact_frontier():
    """Halving the equivalent's log-M spacing moves M* by < 1e-3 relative where N* ≳ 10⁴, by a few per cent at
    N* ~ 10³ (the ripple that whole steps put on R there); the exact frontier of four nested families, located from refined sizes, lies on the
    equivalent's (a = 1.8, budgets where the optimum is 30–80): the seeds' mean log M* within two standard errors and
    0.03 of it, log R* within 0.01."""
    from sketchlaw.theory.equivalents import frontier_de
    from sketchlaw.workflow.training import compute_family_rows

    a, budgets = 1.8, [3e4, 1e5, 3e5]
    coarse = frontier_de("power", a, None, 1.0, 0.1, budgets, 8, 512)
    fine = frontier_de("power", a, None, 1.0, 0.1, budgets, 8, 512, per_octave=12)
    assert coarse["interior"].all()
    np.testing.assert_allclose(coarse["M_star"], fine["M_star"], rtol=0.03)  # N* ~ 10³: the ripple
    np.testing.assert_allclose(coarse["reducible_star"], fine["reducible_star"], rtol=1e-3)
    far = [1e7, 1e8]  # N* ≳ 3·10⁴
    coarse_far = frontier_de("power", a, None, 1.0, 0.1, far, 64, 2048)
    fine_far = frontier_de("power", a, None, 1.0, 0.1, far, 64, 2048, per_octave=12)
    np.testing.assert_allclose(coarse_far["M_star"], fine_far["M_star"], rtol=1e-3)
    sizes = [8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256]

    def family(seed):
        jobs = [{"problem": {"spectrum": "power", "a": a, "b": None, "d": 2048, "M": M, "seed": seed, "tail": "mean"},
                 "points": [[int(round(C / M)), 0.1] for C in budgets], "sigma2": 1.0, "schedule": "geometric",
                 "log_base": "e", "drop_unstable": False, "nested": True,
                 "columns": {"experiment": "compute", "spectrum": "power", "a": a, "b": a, "M": M, "d": 2048,
                             "sigma2": 1.0, "sketch_seed": seed},
                 "compute_of_N": {str(int(round(C / M))): int(C) for C in budgets}} for M in sizes]
        return compute_family_rows(jobs, log=lambda _: None)

    table = pd.concat([family(seed) for seed in range(4)], ignore_index=True)
    assert table["refined"].any()
    measured = analysis.measured_frontier(table)
    assert measured["interior"].all() and len(measured) == 12
    log_ratio = np.log(measured["M_star"].to_numpy()) - np.log(np.tile(coarse["M_star"].to_numpy(), 4))
    per_budget = log_ratio.reshape(4, 3)  # seeds × budgets
    # the four sketches' mean optimum within 2 standard errors of the seeds, + 0.03, of the equivalent's
    se = per_budget.std(axis=0, ddof=1) / 2
    assert np.all(np.abs(per_budget.mean(axis=0)) <= 2 * se + 0.03), (per_budget, se)
    R = np.log(measured["reducible_star"].to_numpy()).reshape(4, 3).mean(axis=0)
    np.testing.assert_allclose(R, np.log(coarse["reducible_star"].to_numpy()), atol=0.01)


# ------------------------------------------------------------------------------------------------ the rows

def _frontier_table(a, b, budgets, e_M, e_R, jitter=0.0, seed=0):
    """A compute table whose R − σ² = (u − u*)²/4 + r(C) in log M, with the optimum on the exact law
    M* = (C/log C)^e_M and R* = (C/log C)^e_R; grid √2 apart plus refined sizes at 1/8 octave."""
    rng = np.random.default_rng(seed)
    grid = 2.0 ** np.arange(2, 16, 0.5)
    rows = []
    for C in budgets:
        x = C / math.log(C)
        centre, level = e_M * math.log(x) + 0.3, e_R * math.log(x)
        best = grid[np.argmin(np.abs(np.log(grid) - centre))]
        refined = [M for M in np.round(best * 2.0 ** (np.arange(-3, 4) / 8)) if M not in grid]
        for M, is_refined in [(M, False) for M in grid] + [(M, True) for M in refined]:
            y = math.exp((math.log(M) - centre) ** 2 / 4 + level + jitter * rng.standard_normal())
            rows.append({"experiment": "compute", "spectrum": "power", "a": a, "b": b, "sketch_seed": 0,
                         "compute": C, "M": M, "N": C / M, "sigma2": 1.0, "risk": 1 + y, "reducible": y,
                         "refined": is_refined})
    return pd.DataFrame(rows)


def _theory_table(a, b, budgets, e_M, e_R, M_over_k=0.1):
    x = np.array(budgets) / np.log(budgets)
    M = np.exp(e_M * np.log(x) + 0.3)
    return pd.DataFrame({"experiment": "compute", "spectrum": "power", "a": a, "b": b, "compute": budgets,
                         "M_star": M, "N_star": np.array(budgets) / M, "reducible_star": x**e_R, "interior": True,
                         "k_star": M / M_over_k, "evaluations": 1})


@pytest.mark.parametrize("a, b", [(1.5, 1.5), (2.2, 1.7), (1.6, 2.2)])
def test_rows_recover_the_exponents_of_a_known_frontier(a, b):
    """A frontier on the exact law (theory's exponents for this (a, b)) with 0.1 % jitter: every primary within 0.01
    of theory, consistent, its extrapolation within 0.005 and its interval at most ±0.02 wide and holding theory."""
    e = theory.compute_exponents(a, b)
    budgets = list(np.geomspace(1e5, 1e11, 13))
    table = _frontier_table(a, b, budgets, e["M_star"], e["reducible_star"], jitter=1e-3)
    far = list(np.geomspace(1e5, 1e15, 21))
    tables = {"compute_theory": _theory_table(a, b, far, e["M_star"], e["reducible_star"])}
    rows = frame(analysis.compute_rows(table, tables, Diagnostics(), "compute"))
    assert set(rows["variable"]) == set(analysis.VARIABLES)
    for r in rows.itertuples():
        assert abs(r.fitted - r.theory) < 0.01, r
        assert r.verdict == "consistent", r
        assert abs(r.extrapolated - r.theory) < 0.005, r
        assert r.extrapolated_low <= r.theory <= r.extrapolated_high, r
        assert r.extrapolated_high - r.extrapolated_low <= 0.04, r
    fr = tables["compute_frontier"]
    assert set(fr["model"]) == {analysis.MEASURED, analysis.EQUIVALENT}


def test_rows_flag_a_frontier_off_the_law():
    """A measured frontier whose M* grows like C^0.45 where theory says 1/3 is not called consistent."""
    a = 2.0
    budgets = list(np.geomspace(1e5, 1e11, 13))
    table = _frontier_table(a, a, budgets, 0.45, -1 / 3)
    tables = {"compute_theory": _theory_table(a, a, list(np.geomspace(1e5, 1e15, 21)), 0.45, -1 / 3)}
    rows = frame(analysis.compute_rows(table, tables, Diagnostics(), "compute"))
    m = rows[rows["variable"] == "M_star"].iloc[0]
    assert m.verdict == "disagrees" and abs(m.fitted - 0.45) < 0.01


@pytest.mark.parametrize("a, b, extrapolated", [(1.6, 2.2, False), (2.2, 1.7, True), (1.5, 1.5, True)])
def test_no_extrapolation_where_the_equivalent_is_still_crossing_over(a, b, extrapolated):
    """An equivalent frontier whose last M* equals k*: at b > a the theorem's balance (M* ≪ k*) is not reached, so
    its slopes are not extrapolated (the primary and its finite-size theory stay); at b ≤ a M*/k* is no criterion."""
    e = theory.compute_exponents(a, b)
    budgets = list(np.geomspace(1e5, 1e11, 13))
    table = _frontier_table(a, b, budgets, e["M_star"], e["reducible_star"], jitter=1e-3)
    tables = {"compute_theory": _theory_table(a, b, list(np.geomspace(1e5, 1e15, 21)), e["M_star"],
                                              e["reducible_star"], M_over_k=1.0)}
    rows = frame(analysis.compute_rows(table, tables, Diagnostics(), "compute"))
    assert rows["extrapolated"].notna().all() == extrapolated and rows["extrapolated"].isna().all() != extrapolated
    assert rows["theory_finite"].notna().all() and (abs(rows["fitted"] - rows["theory"]) < 0.01).all()
    assert analysis.equivalent_reaches_regime(tables["compute_theory"], a, b, 1.0) == extrapolated
    assert analysis.equivalent_reaches_regime(tables["compute_theory"], a, b, 0.0)  # no noise: no criterion
