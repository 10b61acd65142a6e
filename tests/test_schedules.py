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
