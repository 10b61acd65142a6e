"""The engine as a library call: exact expected-risk tables of sketched one-pass SGD in a few lines.

    >>> import sketchlaw
    >>> curve = sketchlaw.risk_curve(a=2.0, M=64, N=[1000, 10000], seeds=[0, 1])
    >>> list(curve.columns[:6])
    ['seed', 'M', 'd', 'B', 'N', 'N_eff']

Every function here calls the project's engine (``sketchlaw.engine``) and theory (``sketchlaw.theory``); nothing is
computed a second way. The defaults are the workflow's (config.yaml ``defaults``): σ² = 1, γ = 0.1, the paper's
geometric schedule, d = max(D_MIN, D_PER_M·M) coordinates with the mean-field tail beyond (docs/METHODS.md §9).
The command line (``sketchlaw risk``) and the explorer (notebooks/explore.ipynb) call exactly these functions.

Sketched problems and their phase maps are kept between calls (``clear_cache()`` drops them): a second call that
changes only σ², γ, the schedule or N reuses the sketches, and one that revisits a step size reuses its
decomposition, so an interactive front end recomputes only what changed; a change of σ² alone rescales kept runs.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sketchlaw.analysis.compute import locate_optimum
from sketchlaw.engine.exact import PHASE_CACHE_BYTES, ExactEngine, PhaseMapCache, RiskBreakdown
from sketchlaw.engine.limit import HEAD, LimitModes, total_step
from sketchlaw.engine.problem import Problem, build_problem
from sketchlaw.engine.schedules import Schedule, effective_sample_size
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.engine.stability import check_stable, critical_step_size
from sketchlaw.errors import ParameterError, check_int, check_real
from sketchlaw.workflow.followups import make_schedule
from sketchlaw.workflow.grid import truncation

D_PER_M, D_MIN = 8, 1024  # config.yaml's defaults d_per_M and d_min (tests/test_api.py keeps them equal)
PROBLEMS_KEPT = 64        # sketched problems kept between calls (least recently used dropped first)
ENGINES_KEPT = 64         # phase-map caches kept, one per (problem, batch)
RUNS_KEPT = 4096          # engine results kept, one per (problem, batch, schedule): a few hundred bytes each

RESULT_COLUMNS = ("risk", "sigma2", "approx", "bias", "variance", "excess", "reducible", "variance_from_noise",
                  "variance_from_approx")


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def fetch(self, key, build):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return self.put(key, build())

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


_PROBLEMS = _LRU(PROBLEMS_KEPT)
_MAPS = _LRU(ENGINES_KEPT)
_LIMITS = _LRU(8)
_LIMIT_RUNS = _LRU(64)
_RUNS = _LRU(RUNS_KEPT)


def clear_cache() -> None:
    """Forget every kept sketch, phase map and M = ∞ mode set (the next calls rebuild them)."""
    for cache in (_PROBLEMS, _MAPS, _LIMITS, _LIMIT_RUNS, _RUNS):
        cache.clear()


def dimension(M: int, d: int | None = None) -> int:
    """The truncation d for model size M: ``d`` when given, else the workflow's rule max(D_MIN, D_PER_M·M)."""
    return check_int("d", d, minimum=1) if d is not None else truncation({"d_min": D_MIN, "d_per_M": D_PER_M}, M)


def step_schedule(gamma: float, N: int, kind: str = "geometric", a: float = 2.0, **params) -> Schedule:
    """A step-size schedule for N updates, as the workflow builds it from a config spec {kind, **params}: the
    kinds and parameters of ``sketchlaw.engine.schedules.Schedule`` (the power decay's q defaults to 2a − 1)."""
    try:
        return make_schedule(gamma, N, {"kind": kind, **params}, a)
    except TypeError as err:  # an unknown keyword: say which parameters exist
        raise ParameterError("schedule", params, f"parameters of sketchlaw.engine.schedules.Schedule ({err})")


def problem(a: float, M: int, *, spectrum: str = "power", b: float | None = None, seed: int = 0,
            d: int | None = None, tail: str = "mean") -> Problem:
    """The sketched problem (μ, p(0), E Approx) of sketch ``seed``, built once and kept (σ² is set at run time)."""
    return _kept_problem(a, M, spectrum, b, seed, d, tail)[1]


def _kept_problem(a, M, spectrum, b, seed, d, tail) -> tuple[tuple, Problem]:
    M = check_int("M", M, minimum=1)
    sp, prior = Spectrum(spectrum, a, dimension(M, d)), Prior(b)
    seed = check_int("seed", seed, minimum=0)
    key = (sp, prior, M, seed, tail)
    return key, _PROBLEMS.fetch(key, lambda: build_problem(sp, M, 0.0, seed, prior, tail=tail))


def _engine(key: tuple, p: Problem, sigma2: float, batch: int) -> ExactEngine:
    """An engine for σ² on the kept problem, sharing the phase maps of every σ² (they depend on μ and B only)."""
    engine = ExactEngine(p.mu, p.p0, sigma2, p.approx, batch=batch)
    engine.cache = _MAPS.fetch((key, batch), lambda: PhaseMapCache(PHASE_CACHE_BYTES))
    return engine


def _runs(key: tuple, p: Problem, sigma2: float, batch: int, schedules) -> list[RiskBreakdown]:
    """The engine's results for the schedules on the kept problem. Each schedule's result is kept on its own, so a
    call runs only the schedules no earlier call ran (the explorer's panels share the N values they have in common).
    A result kept from another σ² is rescaled instead of rerun: the bias does not depend on σ², and the variance is
    linear in the noise σ_M² = σ² + E Approx (docs/METHODS.md §4), so it scales by the ratio of the noises (exact
    up to rounding, ~1e-16 relative)."""
    out, missing = [], []
    for sch in schedules:
        kept = _RUNS.get((key, batch, sch))
        if kept is not None and kept[0] > 0:
            _RUNS.move_to_end((key, batch, sch))
            noise, r = kept
            out.append(RiskBreakdown(sigma2, p.approx, r.bias, r.variance * ((sigma2 + p.approx) / noise)))
        else:
            out.append(None)
            missing.append(sch)
    if missing:
        engine = _engine(key, p, sigma2, batch)
        # geometric kinds share their phases over N in one product; the others have pieces of their own per N
        shared = missing[0].kind in ("geometric", "constant")
        fresh = iter(engine.run_many(missing) if shared else [engine.run(sch) for sch in missing])
        for i, sch in enumerate(schedules):
            if out[i] is None:
                out[i] = _RUNS.put((key, batch, sch), (engine.noise, next(fresh)))[1]
    return out


def stability_bound(a: float, M: int, *, spectrum: str = "power", b: float | None = None, seeds=(0,),
                    d: int | None = None, tail: str = "mean", batch: int = 1) -> float:
    """The largest stable γ for every one of the sketches: the minimum over ``seeds`` of each sketch's exact
    stability bound (``sketchlaw.engine.stability.critical_step_size``) at batch size B."""
    return min(critical_step_size(problem(a, M, spectrum=spectrum, b=b, seed=s, d=d, tail=tail).mu, batch=batch)
               for s in _seeds(seeds))


def _seeds(seeds) -> list[int]:
    out = [check_int("seed", s, minimum=0) for s in np.atleast_1d(seeds).tolist()]
    if not out:
        raise ParameterError("seeds", seeds, "at least one sketch seed")
    return out


def _grid(name: str, values, minimum: int) -> list[int]:
    return sorted({check_int(name, v, minimum=minimum) for v in np.atleast_1d(values).tolist()})


def risk_curve(a: float, M, N, *, spectrum: str = "power", b: float | None = None, sigma2: float = 1.0,
               gamma: float = 0.1, schedule: str = "geometric", schedule_params: dict | None = None, batch: int = 1,
               seeds=(0,), d: int | None = None, tail: str = "mean") -> pd.DataFrame:
    """Exact expected risk of one-pass SGD on the sketched model, one row per (sketch seed, M, N).

    a, spectrum ("power" λ_i = i^-a or "logpower"), b (None: isotropic prior; else the source exponent); M and N one
    value or a list each; σ², the peak step size γ, the schedule kind and its parameters (``schedule``), the batch
    size B (N samples in ⌊N/B⌋ updates of B each, the schedule counting updates); sketch seeds; d (default: the
    workflow's rule) and the tail beyond it. Columns: seed, M, d, B, N, N_eff (= N / log N), updates, gamma,
    gamma_max (this sketch's stability bound at B), risk = σ² + approx + bias + variance, and the split of
    ``sketchlaw.engine.exact.RiskBreakdown.as_dict``. N_eff uses the schedule's ``log_base`` (default e). Averages over data and prior, conditional on each sketch.
    A γ at or above a sketch's bound raises ParameterError naming the bound.
    """
    sigma2 = check_real("sigma2", sigma2, ge=0.0)
    batch = check_int("batch", batch, minimum=1)
    Ms, Ns, params = _grid("M", M, 1), _grid("N", N, 2), dict(schedule_params or {})
    if Ns[0] // batch < 2:
        raise ParameterError("N", Ns[0], f"an integer with at least 2 updates of B = {batch} samples")
    schedules = [step_schedule(gamma, n // batch, schedule, a, **params) for n in Ns]
    rows = []
    for m in Ms:
        for s in _seeds(seeds):
            key, p = _kept_problem(a, m, spectrum, b, s, d, tail)
            bound = check_stable(schedules[0].gamma, p.mu, batch=batch)
            for n, sch, r in zip(Ns, schedules, _runs(key, p, sigma2, batch, schedules)):
                rows.append({"seed": s, "M": m, "d": p.spectrum.d, "B": batch, "N": n,
                             "N_eff": effective_sample_size(n, params.get("log_base", "e")), "updates": sch.N,
                             "gamma": sch.gamma, "gamma_max": bound, **r.as_dict(), "sigma2": sigma2})
    return pd.DataFrame(rows)


def limit_risk_curve(a: float, N, *, spectrum: str = "power", b: float | None = None, sigma2: float = 1.0,
                     gamma: float = 0.1, schedule: str = "geometric", schedule_params: dict | None = None,
                     head: int = HEAD) -> pd.DataFrame:
    """The M = ∞ limit (no sketch, d = ∞; ``sketchlaw.engine.limit``) of ``risk_curve`` at batch size 1: columns
    N, N_eff, bias, variance, excess, risk (= σ² + excess; Approx = 0); ``head`` exact modes before the quadrature
    (``LimitModes``). The modes and their unit-noise runs are kept between calls, so a change of σ² alone reruns
    nothing (σ² enters only ``LimitModes.with_tail``)."""
    sigma2 = check_real("sigma2", sigma2, ge=0.0)
    Ns = _grid("N", N, 2)
    schedules = [step_schedule(gamma, n, schedule, a, **dict(schedule_params or {})) for n in Ns]
    horizon = max(total_step(s) for s in schedules)
    key = (spectrum, float(a), b, horizon, head)
    modes = _LIMITS.fetch(key, lambda: LimitModes(spectrum, a, b, horizon, head))
    check_stable(schedules[0].gamma, modes.mu, modes.multiplicity)
    unit = _LIMIT_RUNS.fetch((key, tuple(schedules)), lambda: modes.engine().run_many(schedules))
    parts = [modes.with_tail(s, r, sigma2) for s, r in zip(schedules, unit)]
    df = pd.DataFrame({"N": Ns, "N_eff": [effective_sample_size(n, s.log_base) for n, s in zip(Ns, schedules)],
                       "bias": [r["bias"] for r in parts], "variance": [r["variance"] for r in parts]})
    df["excess"] = df["bias"] + df["variance"]
    df["risk"] = sigma2 + df["excess"]
    return df


@dataclass
class ComputeOptimum:
    """The compute-optimal allocation of a budget C = M·N. ``curve`` holds the seed-mean risk at each M of the grid
    with N = round(C/M) (the workflow's rule, ``budget_points``). M*, R* are located from it by the compute
    experiment's own method (``sketchlaw.analysis.compute.locate_optimum``, docs/METHODS.md §13): the vertex of the
    least-squares parabola of log(R − σ²) in log M through the grid minimum and its two grid neighbours, N* = C/M*.
    ``log_M_error`` bounds the error on log M* (with three points: half a grid spacing) and ``log_R_error`` the one
    on log(R* − σ²) (0 with three points, which the parabola passes through). A minimum at the grid's first or last
    M is not located (``interior`` false): M* is then that grid point and both errors are NaN."""

    C: float
    M_star: float
    N_star: float
    risk_star: float
    log_M_error: float
    log_R_error: float
    interior: bool
    M_grid_best: int
    curve: pd.DataFrame


def budget_points(C: float, M_grid) -> list[tuple[int, int]]:
    """(M, N) at compute C = M·N for each M of the grid: N = round(C/M), the sizes where N >= 2."""
    C = check_real("C", C, gt=0.0)
    return [(m, int(round(C / m))) for m in _grid("M", M_grid, 1) if round(C / m) >= 2]


def compute_optimal(a: float, C: float, M_grid, **setting) -> ComputeOptimum:
    """The compute-optimal M*, N*, R* at compute C = M·N from the exact expected risk (mean over the sketch seeds)
    on the M grid, located between grid points (``ComputeOptimum``); ``setting`` takes the keywords of
    ``risk_curve`` (spectrum, b, σ², γ, schedule, seeds, ...). A denser grid narrows the error bound.

        >>> best = compute_optimal(2.0, 1e5, [8, 16, 32, 64, 128], seeds=[0, 1])
        >>> best.interior, 16 < best.M_star < 64, round(best.N_star * best.M_star)
        (True, True, 100000)
    """
    points = budget_points(C, M_grid)
    if not points:
        raise ParameterError("C", C, f"a budget with N = C/M >= 2 at some M of the grid (smallest {min(M_grid)})")
    tables = [risk_curve(a, m, n, **setting) for m, n in points]
    curve = pd.concat(tables, ignore_index=True).groupby(["M", "N"], as_index=False)[list(RESULT_COLUMNS)].mean()
    best = locate_optimum(curve["M"], curve["reducible"], np.ones(len(curve), bool))
    sigma2 = float(curve["sigma2"].iloc[0])
    return ComputeOptimum(float(C), float(best["M_star"]), float(C) / float(best["M_star"]),
                          sigma2 + float(best["reducible_star"]), float(best["log_M_error"]),
                          float(best["log_R_error"]), bool(best["interior"]), int(best["M_grid_best"]), curve)


def seed_band(table: pd.DataFrame, by: str, column: str = "risk") -> pd.DataFrame:
    """Mean, lowest and highest ``column`` over the sketch seeds at each value of ``by`` (what the explorer draws)."""
    g = table.groupby(by)[column]
    return pd.DataFrame({"mean": g.mean(), "low": g.min(), "high": g.max()}).reset_index()


def log_grid(lo: float, hi: float, per_decade: int = 4) -> list[int]:
    """Integers log-spaced from lo to hi, ``per_decade`` per decade (both ends included, duplicates dropped)."""
    lo, hi = check_real("lo", lo, gt=0.0), check_real("hi", hi, gt=0.0)
    n = max(2, int(math.ceil(per_decade * math.log10(max(hi / lo, 1.0)))) + 1)
    return sorted({int(round(x)) for x in np.logspace(math.log10(lo), math.log10(hi), n)})
