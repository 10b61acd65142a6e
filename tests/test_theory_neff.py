"""The finite-size theory of the N_eff direction (theory.sketched_excess_de) against the exact engine on drawn
sketches: deterministic-equivalent modes of the sketched problem run through the per-mode recursion."""

import numpy as np
import pytest

from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.theory.equivalents import sketch_approx_de, sketched_excess_de, sketched_modes_de

N_GRID = [100, 1000, 10000, 100000]
SEEDS = range(4)


@pytest.mark.parametrize("a,b", [(1.5, None), (2.0, 1.5)])
def test_modes_carry_the_whole_sketched_problem(a, b):
    """M eigenvalues; initial energy + E Approx = tr(H Λ_w); the same E Approx as sketch_approx_de."""
    mu, p0, n, approx = sketched_modes_de("power", a, 256, b)
    assert n.sum() == pytest.approx(256, rel=1e-3)
    from scipy.special import zeta
    assert np.sum(n * mu * p0) + approx == pytest.approx(zeta(a if b is None else b), rel=5e-3)
    assert approx == pytest.approx(float(sketch_approx_de("power", a, 256, b)[0]), rel=1e-6)
    assert np.all(mu > 0) and np.all(p0 > 0)


@pytest.mark.parametrize("a,b,M", [(1.5, None, 256), (2.0, 1.5, 256), (2.0, None, 1024), (1.5, 1.25, 64)])
def test_deterministic_equivalent_matches_exact_engine_within_2_percent(a, b, M):
    """Within 2 % plus 4 standard errors of the 4-sketch mean. Measured: |bias dev| ≤ 1.0 % at M ≥ 256 and
    |variance dev| ≤ 0.6 % for N ≥ 1000, but the variance at N = 100 (the first ~20 steps, top eigenvalues only) is
    2.7–3.5 % low at M = 256 (se 0.6 %: beyond 2 % by its point estimate) and 0.9–1.1 % low at M = 1024."""
    de = sketched_excess_de("power", a, b, M, 1.0, 0.1, N_GRID)
    exact = np.array([[(r.bias, r.variance) for r in ExactEngine.from_problem(
        build_problem(Spectrum("power", a, 8 * M), M, 1.0, s, Prior(b), tail="mean")).run_many(
        [Schedule(0.1, N) for N in N_GRID])] for s in SEEDS])
    mean, se = exact.mean(0), exact.std(0, ddof=1) / np.sqrt(len(SEEDS))
    for col, name in [(0, "bias"), (1, "variance")]:
        dev = np.abs(de[name].to_numpy() - mean[:, col])
        assert np.all(dev <= 0.02 * mean[:, col] + 4 * se[:, col]), (name, (dev / mean[:, col]).tolist())

