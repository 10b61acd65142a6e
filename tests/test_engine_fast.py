"""The compiled exact engine: phase maps against dense linear algebra, jumps against steps, the phase-map cache."""

import numpy as np
import pytest

from sketchlaw.engine.exact import ExactEngine, PhaseMapCache, decay_rates, phase_map
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.engine.schedules import Schedule


def _power_modes(a, M, seed, multiplicity=False):
    rng = np.random.default_rng(seed)
    mu = np.sort(np.arange(1, M + 1, dtype=float) ** -a * rng.uniform(0.7, 1.3, M))[::-1]
    n = rng.integers(1, 6, M).astype(float) if multiplicity else None
    return mu, rng.uniform(0.2, 2.0, M), n


def _dense_K(mu, g, w, batch):
    return np.diag(1 - decay_rates(mu, g, batch)) + g * g / batch * np.outer(w, w)


@pytest.mark.parametrize("a", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("multiplicity,batch", [(False, 1), (True, 1), (True, 4)])
def test_jump_equals_stepping(a, multiplicity, batch):
    mu, p0, n = _power_modes(a, 200, seed=int(10 * a), multiplicity=multiplicity)
    engine = ExactEngine(mu, p0, 1.0, 0.3, multiplicity=n, batch=batch)
    gamma = 0.7 * critical_step_size(mu, n, batch)
    schedule = Schedule(gamma, 30000)
    cps = [1, 50, 999, 8000, 30000]
    stepped = engine.run(schedule, checkpoints=cps, method="step")
    jumped = engine.run(schedule, checkpoints=cps, method="jump")
    for s, j in zip(stepped, jumped):
        assert abs(j.bias - s.bias) <= 1e-10 * s.bias
        assert abs(j.variance - s.variance) <= 1e-10 * s.variance


@pytest.mark.parametrize("a,M,batch", [(1.5, 150, 1), (2.0, 300, 1), (3.0, 200, 3)])
def test_phase_map_equals_dense_eigendecomposition(a, M, batch):
    mu, _, n = _power_modes(a, M, seed=M, multiplicity=True)
    w = mu * np.sqrt(n)
    g = 0.8 * critical_step_size(mu, n, batch)
    pm = phase_map(mu, g, w, batch)
    K = _dense_K(mu, g, w, batch)
    theta = np.sort(np.concatenate([pm.theta_kept, pm.e_deflated]))
    assert np.abs(theta - np.sort(1 - np.linalg.eigvalsh(K))).max() <= 1e-12 * theta.max()
    X = np.random.default_rng(1).standard_normal((M, 4))
    Qk, Qd = pm.to_eigen(X)
    assert np.abs(pm.from_eigen(Qk, Qd) - X).max() < 1e-12
    KX = pm.from_eigen((1 - pm.theta_kept)[:, None] * Qk, (1 - pm.e_deflated)[:, None] * Qd)
    assert np.abs(KX - K @ X).max() < 1e-12
    assert np.abs(pm.V.T @ pm.V - np.eye(len(pm.kept))).max() < 1e-11


def test_long_jump_equals_dense_matrix_power():
    mu, p0, _ = _power_modes(2.0, 120, seed=3)
    g, N, noise = 0.5 * critical_step_size(mu), 10**6, 1.3
    engine = ExactEngine(mu, p0, 1.0, noise - 1.0)
    lam, U = np.linalg.eigh(_dense_K(mu, g, mu, 1))
    Kn = (U * lam ** N) @ U.T
    geo = (U * ((1 - lam ** N) / (1 - lam))) @ U.T
    bias = mu @ (Kn @ p0)
    var = mu @ (geo @ (g * g * noise * mu))
    r = engine.run(Schedule(g, N, kind="constant"), method="jump")
    assert r.bias == pytest.approx(bias, rel=1e-9) and r.variance == pytest.approx(var, rel=1e-9)


def test_deflation_is_robust_for_modes_down_to_1e_30():
    """A few hundred weighted modes whose μ span 1 … 1e-30 (as a quadrature of the infinite spectrum would):
    every value twice, so half of them deflate by rotation; the map is still an exact orthogonal decomposition and
    jumps equal steps (the global deflation rule, on the scale of the largest decay rate, missed by 7e-10)."""
    M = 400
    mu = np.repeat(np.logspace(0, -30, M // 2), 2)
    n = np.repeat(np.logspace(0, 12, M // 2), 2)  # weights growing as μ shrinks: the rank-one part stays significant
    w = mu * np.sqrt(n)
    g = 0.9 * critical_step_size(mu, n)
    pm = phase_map(mu, g, w)
    assert len(pm.deflated) == len(pm.rot_idx) == M // 2
    X = np.random.default_rng(2).standard_normal((M, 2))
    Qk, Qd = pm.to_eigen(X)
    K = _dense_K(mu, g, w, 1)
    KX = pm.from_eigen((1 - pm.theta_kept)[:, None] * Qk, (1 - pm.e_deflated)[:, None] * Qd)
    assert np.abs(KX - K @ X).max() < 1e-12
    engine = ExactEngine(mu, np.ones(M), 1.0, 0.0, multiplicity=n)
    sch = Schedule(g, 20000)
    s, j = engine.run(sch, method="step"), engine.run(sch, method="jump")
    assert abs(j.bias - s.bias) <= 1e-10 * s.bias and abs(j.variance - s.variance) <= 1e-10 * s.variance


def _truncated(phases, n):
    out = []
    for g, k in phases:
        out.append((g, min(k, n)))
        n -= out[-1][1]
    return out


def test_checkpoints_never_split_the_work_and_match_run_many():
    mu, p0, _ = _power_modes(2.0, 256, seed=5)
    engine = ExactEngine(mu, p0, 1.0, 0.2)
    N, gamma = 10**6, 0.5 * critical_step_size(mu)
    cps = np.unique(np.logspace(2, 6, 20).astype(int))
    curve = engine.run(Schedule(gamma, N), checkpoints=cps, method="jump")
    distinct = len({g for g, _ in Schedule(gamma, N).phases()})
    assert engine.cache.builds == distinct
    many = engine.run_many([_truncated(Schedule(gamma, N).phases(), int(n)) for n in cps])
    assert engine.cache.builds == distinct  # the same step sizes: nothing decomposed again
    for c, m in zip(curve, many):
        assert c.bias == pytest.approx(m.bias, rel=1e-10) and c.variance == pytest.approx(m.variance, rel=1e-10)


def test_explicit_phase_lists_equal_stepping_and_schedules():
    mu, p0, _ = _power_modes(1.5, 100, seed=6)
    engine = ExactEngine(mu, p0, 1.0, 0.1)
    gc = critical_step_size(mu)
    phases = [(0.2 * gc, 500), (0.6 * gc, 3000), (0.3 * gc, 0), (0.1 * gc, 4000)]  # warm-up, then decay
    cps = [0, 400, 500, 3501, 7500]
    stepped = engine.run_phases(phases, checkpoints=cps, method="step")
    jumped = engine.run_phases(phases, checkpoints=cps, method="jump")
    for s, j in zip(stepped, jumped):
        assert abs(j.risk - s.risk) <= 1e-10 * s.risk
    sch = Schedule(0.5 * gc, 5000)
    assert engine.run_phases(sch.phases()).risk == engine.run(sch).risk
    assert engine.run_many([phases])[0].risk == pytest.approx(jumped[-1].risk, rel=1e-12)
    with pytest.raises(Exception, match="gamma"):
        engine.run_phases([(0.1 * gc, 10), (1.1 * gc, 10)])  # the largest step decides stability


def test_cache_evicts_beyond_its_byte_budget():
    mu, p0, _ = _power_modes(2.0, 128, seed=7)
    engine = ExactEngine(mu, p0, 1.0, 0.0)
    one = phase_map(mu, 0.1).nbytes
    engine.cache = PhaseMapCache(int(2.5 * one))
    gc = critical_step_size(mu)
    steps = [0.1 * gc, 0.2 * gc, 0.3 * gc, 0.4 * gc]
    for g in steps:
        engine.run(Schedule(g, 10**5, kind="constant"), method="jump")
    assert len(engine.cache) == 2 and engine.cache.nbytes <= engine.cache.max_bytes
    assert (steps[-1], 1) in engine.cache and (steps[0], 1) not in engine.cache
    builds = engine.cache.builds
    engine.run(Schedule(steps[-1], 10**4, kind="constant"), method="jump")
    assert engine.cache.builds == builds  # a hit
    engine.run(Schedule(steps[0], 10**4, kind="constant"), method="jump")
    assert engine.cache.builds == builds + 1  # evicted, decomposed again
    tiny = PhaseMapCache(1)
    tiny.get("a", lambda: (phase_map(mu, 0.1),))
    tiny.get("b", lambda: (phase_map(mu, 0.2),))
    assert len(tiny) == 1 and "b" in tiny  # the most recent map is kept even over budget


def test_build_blocks_carry_the_same_sketch_values(monkeypatch):
    """The build multiplies blocks of chunks drawn in a thread: the numbers are those of the per-chunk streams,
    byte for byte, whatever the block width (d not a multiple of the chunk size)."""
    from sketchlaw.engine import problem as pr

    M, d = 8, 5 * pr.CHUNK + 37
    reference = pr.full_sketch(4, M, d).T
    for block_bytes in (1, 3 * pr.CHUNK * M * 8, 2**30):
        monkeypatch.setattr(pr, "_BLOCK_BYTES", block_bytes)
        blocks = list(pr._sketch_blocks(4, M, d))
        assert [b[0] for b in blocks][0] == 0 and blocks[-1][1] == d
        assert np.array_equal(np.concatenate([b[2] for b in blocks]), reference)


def test_build_is_independent_of_the_block_width(monkeypatch):
    from sketchlaw.engine import problem as pr
    from sketchlaw.engine.spectra import Spectrum

    wide = pr.build_problem(Spectrum("power", 2.0, 3000), 24, 1.0, seed=5)
    monkeypatch.setattr(pr, "_BLOCK_BYTES", 1)
    narrow = pr.build_problem(Spectrum("power", 2.0, 3000), 24, 1.0, seed=5)
    assert np.allclose(wide.mu, narrow.mu, rtol=1e-12, atol=0)
    assert wide.approx == pytest.approx(narrow.approx, rel=1e-10)
    assert np.allclose(wide.p0, narrow.p0, rtol=1e-9, atol=0)


@pytest.mark.parametrize("sketch", ["gaussian", "rademacher", "srht"])
def test_kept_sketch_gives_the_problem_of_a_redrawn_one(monkeypatch, sketch):
    """A sketch kept between the build's two passes (``_KEEP_BYTES``) gives the problem bit for bit as drawing it
    twice does: the first pass must not scale the kept blocks."""
    from sketchlaw.engine import problem as pr
    from sketchlaw.engine.spectra import Prior, Spectrum

    def build():
        return pr.build_problem(Spectrum("power", 2.0, 3 * pr.CHUNK + 37), 24, 1.0, 5, Prior(1.5), tail="mean",
                                sketch=sketch)

    monkeypatch.setattr(pr, "_BLOCK_BYTES", pr.CHUNK * 24 * 8)  # several blocks, the last one short
    kept = build()
    monkeypatch.setattr(pr, "_KEEP_BYTES", 0)
    drawn = build()
    for name in ("mu", "U", "p0"):
        assert np.array_equal(getattr(kept, name), getattr(drawn, name)), name
    assert kept.approx == drawn.approx


@pytest.mark.parametrize("a,gamma,N", [(1.5, 0.2, 2000), (2.0, 0.3, 3000)])
def test_float32_draws_agree_with_the_exact_engine(a, gamma, N):
    from sketchlaw.engine.sgd import monte_carlo

    from .conftest import make_problem

    problem = make_problem(a=a, M=16, d=2048, seed=11)
    schedule = Schedule(gamma, N)
    exact = ExactEngine.from_problem(problem).run(schedule)
    mc = monte_carlo(problem, schedule, trials=2000, seed=7, dtype=np.float32)
    z = (mc.mean - exact.risk) / mc.sem
    assert abs(z) < 3, f"float32 MC mean {mc.mean:.6g} ± {mc.sem:.2g} vs exact {exact.risk:.6g} (z = {z:.2f})"
    double = monte_carlo(problem, schedule, trials=50, seed=7)
    assert not np.array_equal(double.risks, monte_carlo(problem, schedule, trials=50, seed=7, dtype=np.float32).risks)


def test_readme_performance_section_is_the_rendering_of_the_results_file():
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import readme
    finally:
        sys.path.pop(0)
    results = json.loads((root / "benchmarks" / "results.json").read_text())
    text = (root / "README.md").read_text()
    assert readme.splice(text, readme.render(results)) == text, "run `.venv/bin/python benchmarks/readme.py`"
    assert all(line in text for line in results["lines"])


_HASH_PHASE_MAP = """
import hashlib, sys
import numpy as np
from sketchlaw.engine.exact import ExactEngine, phase_map
from sketchlaw.engine.stability import critical_step_size
M = 1024
mu = np.sort(np.arange(1, M + 1, dtype=float) ** -2.0 * np.random.default_rng(3).uniform(0.7, 1.3, M))[::-1]
g = 0.37 * critical_step_size(mu)
pm = phase_map(mu, g)
h = hashlib.sha256()
for a in (pm.theta_kept, pm.eo, pm.x, pm.zhat, pm.s, pm.w_eigen[0], pm.VT):
    h.update(np.ascontiguousarray(a).tobytes())
engine = ExactEngine(mu, np.ones(M), 1.0, 0.1)
r = engine.run_phases([(0.5 * g, 3000), (g, 200000), (0.9 * g, 50)], checkpoints=[100, 5000, 203050])
h.update(np.array([[b.bias, b.variance] for b in r]).tobytes())
from sketchlaw.theory.equivalents import sketched_modes_de  # its sums run in SIMD lanes (reassociated)
for a in sketched_modes_de("power", 2.0, 64, None, grid_step=0.02, cell=1)[:3]:
    h.update(np.ascontiguousarray(a).tobytes())
print(h.hexdigest())
"""


@pytest.mark.slow
def test_phase_maps_are_bit_identical_compiled_or_cached_on_any_thread_count(tmp_path):
    """The kernels compiled in this process and the same kernels loaded from numba's on-disk cache give the same bytes,
    on one thread or two (docs/METHODS.md §17), the deterministic equivalent's reassociated sums included: the
    workflow's tables must not depend on which job compiled first."""
    import os
    import subprocess
    import sys

    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / f"cache{threads}"), NUMBA_NUM_THREADS=threads)
        for _ in ("compile", "load"):
            out = subprocess.run([sys.executable, "-c", _HASH_PHASE_MAP], env=env, capture_output=True, text=True,
                                 check=True)
            digests.append(out.stdout.strip())
    assert len(set(digests)) == 1, digests


def test_roots_and_products_do_not_depend_on_how_roots_are_batched():
    """Each root, Vᵀ row and V entry is its own fixed-order sum: solving the roots one at a time or in batches of any
    size, and transforming one column or several, gives the same bits (so thread count and vectorization cannot
    change them)."""
    from sketchlaw.engine import exact

    mu, _, _ = _power_modes(2.0, 300, seed=4)
    g = 0.6 * critical_step_size(mu)
    pm = phase_map(mu, g)
    e, w_all = pm.e_kept, mu[pm.order][pm.kept]
    z = w_all / np.linalg.norm(w_all)
    rho = g * g * float(w_all @ w_all)
    ref = exact._secular_roots(e, rho * z * z, rho)
    m = len(e)
    for size in (1, 5, 16):
        o, x = np.empty(m, np.int64), np.empty(m)
        for I0 in range(0, m, size):
            exact._root_batch(e, rho * z * z, rho, I0, min(size, m - I0), o, x)
        assert np.array_equal(o, ref[0]) and np.array_equal(x, ref[1])
    X = np.random.default_rng(0).standard_normal((4, m))
    Y4, s4 = exact._forward(e, pm.eo, pm.x, pm.zhat, X)
    Y1, s1 = exact._forward(e, pm.eo, pm.x, pm.zhat, X[2:3].copy())
    assert np.array_equal(Y4[:, 2], Y1[:, 0]) and np.array_equal(s4, s1)
    B4 = exact._backward(e, pm.eo, pm.x, pm.zhat, X)
    B1 = exact._backward(e, pm.eo, pm.x, pm.zhat, X[1:2].copy())
    assert np.array_equal(B4[:, 1], B1[:, 0])
