"""Step-size schedules: the paper's phases unchanged, the other kinds' pieces, and the discretization error of the
smooth schedules against stepping their exact per-step step sizes."""

import math

import numpy as np
import pytest

from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.schedules import SMOOTH_FLOOR, PhaseSchedule, Schedule

from .conftest import make_problem

SMOOTH_SPECS = [
    {"kind": "polynomial", "power": 0.5, "t0": 10.0},
    {"kind": "polynomial", "power": 1.0, "t0": 100.0},
    {"kind": "power", "power": 3.0},
    {"kind": "cosine"},
    {"kind": "cosine", "final": 0.01},
    {"kind": "wsd", "warmup": 0.05, "decay": 0.2},
]


@pytest.mark.parametrize("N", [2, 3, 100, 12345, 10**6])
@pytest.mark.parametrize("kind", ["geometric", "constant"])
def test_paper_schedules_keep_their_phases_and_agree_with_the_per_step_formula(N, kind):
    s = Schedule(0.3, N, kind)
    assert s.phases() == Schedule(0.3, N, kind, "e", phase_factor=1.0, n_phases=None).phases()
    assert sum(n for _, n in s.phases()) == N
    assert np.array_equal(s.step_sizes(), s.exact_step_sizes())
    if kind == "geometric":
        assert s.phase_length == N / math.log(N)


@pytest.mark.parametrize("N", [1000, 54321])
def test_geometric_with_other_phase_lengths(N):
    c = Schedule(0.2, N, phase_factor=3.0)
    assert c.phase_length == pytest.approx(N / math.log(N) / 3.0)
    assert len(c.phases()) == math.ceil(N / c.phase_length)
    assert np.array_equal(c.step_sizes(), c.exact_step_sizes())
    k = Schedule(0.2, N, n_phases=7)
    assert [g for g, _ in k.phases()] == [0.2 * 2.0**-ell for ell in range(7)]
    assert sum(n for _, n in k.phases()) == N
    assert np.array_equal(k.step_sizes(), k.exact_step_sizes())


@pytest.mark.parametrize("spec", SMOOTH_SPECS, ids=lambda s: s["kind"])
@pytest.mark.parametrize("N", [50, 30000])
def test_smooth_pieces_cover_the_steps_keep_the_intrinsic_time_and_stay_within_tolerance(spec, N):
    s = Schedule(0.4, N, **spec)
    exact = s.exact_step_sizes()
    assert exact.max() == pytest.approx(0.4) and exact.min() > 0
    phases = s.phases()
    counts = np.array([n for _, n in phases])
    assert counts.sum() == N and counts.min() >= 1
    stepped = s.step_sizes()
    assert stepped.max() <= s.gamma
    assert math.isclose(stepped.sum(), exact.sum(), rel_tol=1e-12)  # Σ γ_t is exact
    ends = np.cumsum(counts)
    for (g, n), end in zip(phases, ends):
        piece = exact[end - n:end]
        assert piece.min() <= g <= piece.max()
        scale = np.log(piece / s.gamma + SMOOTH_FLOOR)
        assert scale.max() - scale.min() <= math.log1p(s.rel_tol) + 1e-12


@pytest.mark.parametrize("spec", SMOOTH_SPECS, ids=lambda s: f"{s['kind']}")
@pytest.mark.parametrize("a,b", [(2.0, None), (1.5, None), (3.0, 2.0)])
def test_smooth_schedule_discretization_error_is_below_1e6_relative(spec, a, b):
    problem = make_problem(a=a, b=b, M=16, d=256, seed=2)
    engine = ExactEngine.from_problem(problem)
    N = 20000
    schedule = Schedule(0.3, N, **spec)
    truth = engine.run(PhaseSchedule.per_step(schedule.exact_step_sizes()), method="step")
    run = engine.run(schedule)  # as in the experiments: long pieces jumped, short ones stepped
    assert abs(run.excess - truth.excess) < 1e-6 * truth.excess
    # The test can see discretization error: a coarse tolerance misses it by far.
    coarse = engine.run(Schedule(0.3, N, **spec, rel_tol=0.2, end_tol=0.5))
    assert abs(coarse.excess - truth.excess) > 1e-6 * truth.excess


def test_phase_schedule_reports_its_largest_step_and_length():
    s = PhaseSchedule(((0.1, 3), (0.3, 2), (0.05, 10)))
    assert s.gamma == 0.3 and s.N == 15 and list(s.step_sizes()[:4]) == [0.1, 0.1, 0.1, 0.3]


@pytest.mark.parametrize("bad", [{"kind": "nope"}, {"kind": "wsd", "warmup": 0.6, "decay": 0.5},
                                 {"kind": "polynomial", "t0": 0.0}, {"kind": "geometric", "n_phases": 0},
                                 {"kind": "cosine", "final": 1.0}])
def test_bad_schedule_parameters_are_named(bad):
    with pytest.raises(ValueError):
        Schedule(0.1, 100, **bad)


@pytest.mark.parametrize("a,b", [(2.0, None), (1.5, 1.25)])
def test_schedule_claim_is_the_m_infinity_limit(a, b):
    """The unsketched schedule comparison runs the M = ∞ limit's modes (one discretisation of that problem): its
    geometric decay is the limit curve of the scaling experiments, up to the far tail's frozen tolerance."""
    from sketchlaw.engine.limit import limit_curve
    from sketchlaw.workflow.followups import schedule_claim

    N = [1000, 31623, 10**6]
    claim = schedule_claim(a, b, 0.2, 1.0, N)
    geometric = claim[claim["kind"] == "geometric"].sort_values("N")
    np.testing.assert_allclose(geometric["reducible"], limit_curve("power", a, b, 1.0, 0.2, N)["excess"], rtol=1e-5)
    assert set(claim["kind"]) == {"geometric", "power"} and claim["paper"].sum() == len(N)



# ------------------------------------------------------------------------------ pieces found without every step

def _pieces_step_by_step(s: Schedule, chunk: int = 2**20) -> list:
    """The reference: every step's (level, band) key, pieces where it changes, Σ γ_t by np.add.reduceat in chunks
    (the algorithm Schedule._pieces replaced; its output must not change)."""
    width, end_width = math.log1p(s.rel_tol), math.log1p(s.end_tol)
    sums, counts, bins, lows, highs = [], [], [], [], []
    for start in range(0, s.N, chunk):
        t = np.arange(start + 1, min(s.N, start + chunk) + 1)
        g = s.exact_step_sizes(t)
        level = np.floor(np.log(g / s.gamma + SMOOTH_FLOOR) / width).astype(np.int64)
        band = np.floor(np.log1p(s.N - t) / end_width).astype(np.int64)
        k = level * (1 + int(math.log1p(s.N) / end_width) + 1) + band
        first = np.concatenate([[0], np.flatnonzero(np.diff(k)) + 1])
        sm, c, b = np.add.reduceat(g, first), np.diff(np.append(first, len(g))), k[first]
        lo, hi = np.minimum.reduceat(g, first), np.maximum.reduceat(g, first)
        if bins and bins[-1] == b[0]:
            sums[-1] += sm[0]; counts[-1] += int(c[0])
            lows[-1], highs[-1] = min(lows[-1], lo[0]), max(highs[-1], hi[0])
            sm, c, b, lo, hi = sm[1:], c[1:], b[1:], lo[1:], hi[1:]
        sums.extend(sm.tolist()); counts.extend(int(x) for x in c); bins.extend(b.tolist())
        lows.extend(lo.tolist()); highs.extend(hi.tolist())
    return [(min(max(x / c, lo), hi), c) for x, c, lo, hi in zip(sums, counts, lows, highs)]


def _random_schedule(rng, N: int, extreme: bool = False) -> Schedule:
    """A smooth schedule with random parameters within the schema's ranges (extreme: far out in them)."""
    kind = str(rng.choice(["polynomial", "power", "cosine", "wsd"]))
    kw = {} if rng.random() < 0.3 else {"rel_tol": float(10 ** rng.uniform(-4.5 if extreme else -3.5, -0.01)),
                                          "end_tol": float(10 ** rng.uniform(-4 if extreme else -2, -0.01))}
    if kind == "polynomial":
        kw.update(power=float(10 ** rng.uniform(-9 if extreme else -2, 2.5 if extreme else 1)),
                  t0=float(10 ** rng.uniform(-6 if extreme else -1, 7 if extreme else 4)))
    elif kind == "power":
        kw.update(power=float(10 ** rng.uniform(-9 if extreme else -1, 2.5 if extreme else 1)))
    elif kind == "cosine":
        kw.update(final=float(rng.choice([0.0, 1e-12, 0.999999, rng.uniform(0, 0.5)])))
    else:
        w = float(rng.choice([0.0, 1e-9, rng.uniform(0, 0.9)]))
        kw.update(warmup=w, decay=float(rng.uniform(1e-9 if extreme else 1e-3, 1 - w)))
    return Schedule(float(10 ** rng.uniform(-8 if extreme else -3, 1)), N, kind, **kw)


@pytest.mark.parametrize("extreme", [False, True])
def test_pieces_are_those_of_grouping_every_step_bit_for_bit(extreme):
    """Random smooth schedules, N from 2 to 10^6: the same pieces (boundaries and step sizes, bit for bit) found by
    search, by scan and by the automatic choice as by the step-by-step reference."""
    rng = np.random.default_rng(11 if extreme else 7)
    for _ in range(80):
        s = _random_schedule(rng, max(2, int(10 ** rng.uniform(0.31, 6))), extreme)
        ref = _pieces_step_by_step(s)
        assert s._pieces(search=True) == ref, s
        assert s._pieces(search=False) == ref, s
        assert s.phases() == ref, s


@pytest.mark.parametrize("spec", SMOOTH_SPECS, ids=lambda s: s["kind"])
def test_pieces_across_chunks_are_those_of_grouping_every_step(spec):
    s = Schedule(0.3, 2**20 + 12345, **spec)
    assert s._pieces(search=True) == _pieces_step_by_step(s)


def test_piece_sums_without_visiting_the_steps_agree_to_rounding(monkeypatch):
    """Beyond EXACT_SUMS_MAX a piece's Σ γ_t comes from a few evaluations (Gregory's rule): forced here at small N,
    the same boundaries and step sizes within 1e-13 relative (plus 1e-15·γ where γ_t itself is rounding noise,
    1 + cos near π)."""
    from sketchlaw.engine import schedules

    rng = np.random.default_rng(5)
    cases = [(_random_schedule(rng, max(2, int(10 ** rng.uniform(0.31, 6))), extreme=i % 2 == 1)) for i in range(80)]
    refs = [_pieces_step_by_step(s) for s in cases]
    monkeypatch.setattr(schedules, "EXACT_SUMS_MAX", 0)
    for s, ref in zip(cases, refs):
        got = s._pieces(search=True)
        assert [n for _, n in got] == [n for _, n in ref], s
        g, g0 = np.array([g for g, _ in got]), np.array([g for g, _ in ref])
        assert np.all(np.abs(g - g0) <= 1e-13 * g0 + 1e-15 * s.gamma), (s, np.max(np.abs(g / g0 - 1)))
        assert g.max() <= s.gamma


def test_cosine_at_ten_billion_steps_takes_few_evaluations(monkeypatch):
    """N = 10^10: the pieces from about a million evaluations of γ_t (not 10^10), and the intrinsic time Σ γ_t
    exact: Σ_t γ(1 + cos(π(t − 1)/N))/2 = γ(N + 1)/2."""
    import time

    evaluated = []
    plain = Schedule.exact_step_sizes

    def counting(self, t=None):
        out = plain(self, t)
        evaluated.append(out.size)
        return out

    monkeypatch.setattr(Schedule, "exact_step_sizes", counting)
    N, gamma = 10**10, 0.1
    start = time.perf_counter()
    phases = Schedule(gamma, N, "cosine").phases()
    elapsed = time.perf_counter() - start
    assert sum(evaluated) < 2 * 10**6, sum(evaluated)
    assert elapsed < 5.0  # about 0.3 s (under load)
    counts = np.array([n for _, n in phases])
    steps = np.array([g for g, _ in phases])
    assert counts.sum() == N and counts.min() >= 1 and steps.max() <= gamma
    assert 5000 < len(phases) < 12000
    assert math.isclose(float(np.dot(steps, counts)), gamma * (N + 1) / 2, rel_tol=1e-12)
