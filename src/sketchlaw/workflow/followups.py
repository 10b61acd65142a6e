"""The follow-up experiments' jobs: step-size schedules, mini-batch SGD and multi-pass SGD with data reuse
(docs/METHODS.md §18). Each takes a built problem (or, for the unsketched comparisons, the M = ∞ limit's modes) and
plain parameters and returns a tidy table, one row per grid point; the workflow's scripts only read parameters, call
one of these and write the table. Every number on a sketched problem is conditional on its sketch seed.
"""

from __future__ import annotations

import math

import pandas as pd

from sketchlaw import theory
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.engine.limit import LimitModes, total_step
from sketchlaw.engine.reuse import expected_repeats, multipass_monte_carlo
from sketchlaw.engine.schedules import Schedule
from sketchlaw.errors import ParameterError, check_int


def _breakdown_columns(r) -> dict:
    keys = ("risk", "reducible", "bias", "variance", "approx")
    return {k: v for k, v in r.as_dict().items() if k in keys}


# ------------------------------------------------------------------------------------------------- schedules

def make_schedule(gamma: float, N: int, spec: dict, a: float) -> Schedule:
    spec = dict(spec)
    if spec.get("kind") == "power" and "power" not in spec:
        spec["power"] = theory.power_decay_exponent(a)
    return Schedule(gamma, N, **spec)


def schedule_spec_error(spec: dict, gamma: float, N: int, a: float) -> ParameterError | None:
    """The ParameterError a schedule spec would raise at (γ, N), or None (for the config checks)."""
    try:
        make_schedule(gamma, N, spec, a)
    except ParameterError as err:
        return err
    except TypeError as err:  # an unknown keyword (the schema refuses these first)
        return ParameterError("kind", spec, f"a schedule spec with keys of sketchlaw.engine.schedules.Schedule ({err})")
    return None


def schedule_label(spec: dict, a: float) -> str:
    """The label of a schedule spec (its identity in tables and legends)."""
    return make_schedule(1.0, 1000, spec, a).label


def paper_schedule(schedule: Schedule) -> bool:
    """Whether a schedule is the paper's: geometric decay with its own phase length N_eff."""
    return schedule.kind == "geometric" and schedule.phase_factor == 1.0 and schedule.n_phases is None


SCHEDULE_COLUMNS = ("schedule", "kind", "paper", "N", "N_eff", "pieces", "intrinsic_time")


def _schedule_columns(s: Schedule) -> dict:
    return {"schedule": s.label, "kind": s.kind, "paper": paper_schedule(s), "N": s.N, "N_eff": s.N_eff,
            "pieces": len(s.phases()), "intrinsic_time": total_step(s)}


def run_schedule_family(engine: ExactEngine, schedules) -> list:
    """The engine's results for one spec's schedules over several N: geometric kinds share their phase maps
    (``run_many``, correct for them: phase ℓ has step γ·2^-ℓ for every N), other kinds run one by one."""
    if schedules[0].kind in ("geometric", "constant"):
        return engine.run_many(schedules)
    return [engine.run(s) for s in schedules]


def run_schedules(engine: ExactEngine, gamma: float, N_values, specs, a: float) -> pd.DataFrame:
    """Expected risk of each schedule at each N on one engine (geometric kinds share their phase maps over N)."""
    rows = []
    for spec in specs:
        schedules = [make_schedule(gamma, int(N), spec, a) for N in N_values]
        for s, r in zip(schedules, run_schedule_family(engine, schedules)):
            rows.append({**_schedule_columns(s), **_breakdown_columns(r)})
    return pd.DataFrame(rows)


def schedule_rows(problem, gamma: float, N_values, specs, a: float, log_base: str = "e") -> pd.DataFrame:
    """``run_schedules`` on a built problem (the workflow's job: one sketch, every schedule at every N); the
    geometric kinds use ``log_base`` for N_eff."""
    return run_schedules(ExactEngine.from_problem(problem), gamma, N_values, schedule_specs(specs, log_base), a)


CLAIM_SPECS = ({"kind": "geometric"}, {"kind": "power"})  # the paper's decay, the power decay to zero (q = 2a − 1)


def claim_modes(a: float, b: float | None, gamma: float, N_max: int) -> LimitModes:
    """The unsketched power-law problem of the schedule comparison: the M = ∞ limit's modes for up to N_max steps
    of size at most γ (its horizon γ·N_max bounds every schedule's total step)."""
    return LimitModes("power", a, b, gamma * N_max)


def claim_stability_bound(a: float, b: float | None, gamma: float, N_max: int) -> float:
    """The stability bound of the unsketched problem that ``schedule_claim`` runs."""
    modes = claim_modes(a, b, gamma, N_max)
    return critical_step_size(modes.mu, modes.multiplicity)


def schedule_claim(a: float, b: float | None, gamma: float, sigma2: float, N_values) -> pd.DataFrame:
    """R − σ² against N on the unsketched power-law problem (the M = ∞ limit, ``sketchlaw.engine.limit``) for the
    paper's geometric decay and the power decay to zero with q = 2a − 1 (``CLAIM_SPECS``).

    Columns: schedule, kind, paper, N, N_eff, pieces, intrinsic_time, bias, variance, reducible (= R − σ²), and a,
    b, gamma, sigma2, modes."""
    N_values = sorted(int(N) for N in N_values)
    modes = claim_modes(a, b, gamma, N_values[-1])
    bound = critical_step_size(modes.mu, modes.multiplicity)
    if not gamma < bound:
        raise ParameterError("gamma", gamma, f"below the stability bound {bound:.4g} of the unsketched problem")
    engine, rows = modes.engine(), []
    for spec in CLAIM_SPECS:
        schedules = [make_schedule(gamma, N, spec, a) for N in N_values]
        for s, r in zip(schedules, run_schedule_family(engine, schedules)):
            parts = modes.with_tail(s, r, sigma2)
            excess = parts["bias"] + parts["variance"]
            rows.append({**_schedule_columns(s), "risk": sigma2 + excess, "reducible": excess, **parts, "approx": 0.0})
    return pd.DataFrame(rows).assign(a=a, b=a if b is None else b, gamma=gamma, sigma2=sigma2, modes=len(modes))


def schedule_specs(specs, log_base: str) -> list[dict]:
    """A block's schedule specs with its log base given to the geometric kinds (their N_eff)."""
    return [{"log_base": log_base, **spec} if spec.get("kind", "geometric") == "geometric" else spec for spec in specs]


def schedule_finite(spectrum: str, a: float, b: float | None, M: int, sigma2: float, gamma: float, N_values, specs,
                    log_base: str = "e") -> pd.DataFrame:
    """The finite-size theory of the schedules' window slopes: the deterministic equivalent of a Gaussian sketch of
    M rows (``theory.equivalents.sketched_modes_de``: its spectrum and initial profile, no sketch drawn) run through
    each schedule with a stated exponent (``theory.schedule_exponent``), Approx + bias + variance as ``reducible``."""
    from sketchlaw.theory.equivalents import sketched_modes_de  # compiled kernels: loaded by this job only

    b = None if b == a else b  # the isotropic prior
    mu, p0, n, approx = sketched_modes_de(spectrum, a, int(M), b)
    engine = ExactEngine(mu, p0, sigma2, approx, multiplicity=n)
    rows = []
    # a γ at or above the equivalent's own stability bound (small M, where the drawn sketches diverge too): no
    # finite-size theory, and the window rows say so by its absence
    stable = gamma < critical_step_size(mu, n)
    for spec in schedule_specs(specs, log_base) if stable else []:
        schedules = [make_schedule(gamma, int(N), spec, a) for N in N_values]
        s0 = schedules[0]
        if all(math.isnan(theory.schedule_exponent(s0.kind, paper_schedule(s0), x, a, b)) for x in ("N", "N_eff")):
            continue
        for s, r in zip(schedules, run_schedule_family(engine, schedules)):
            rows.append({**_schedule_columns(s), "reducible": approx + r.bias + r.variance})
    return pd.DataFrame(rows, columns=[*SCHEDULE_COLUMNS, "reducible"]).assign(
        spectrum=spectrum, a=a, b=a if b is None else b, M=int(M), gamma=gamma, sigma2=sigma2)


# ------------------------------------------------------------------------------------------------- mini-batch

STEP_RULES = ("fixed", "linear", "sqrt")
STABILITY_MARGIN = 0.5  # scaled step sizes are capped at this fraction of the batch stability bound


def batch_step_size(gamma: float, B: int, rule: str, mu) -> tuple[float, bool]:
    """Step size for batch size B: "fixed" γ; "linear" γB (keeps the intrinsic time Tγ_B = Nγ, so the bias is
    unchanged and only the variance and the stability bound move); "sqrt" γ√B. Returns (γ_B, capped).

    B = 1 is every rule's common baseline (``critical_batch_size`` compares each rule's B against its B = 1 row):
    there every rule gives γ itself, uncapped. A scaled step above STABILITY_MARGIN·critical_step_size(mu, batch=B)
    is capped there, but never below γ: γ_c(B) grows with B, so γ < γ_c(1) is stable at every B, and a scaled rule
    never steps smaller than the fixed one. γ ≥ γ_c(1) is not a case here: the config's γ is checked against the
    stability bound, and every run checks its own sketch's bound and refuses a γ above it (ParameterError).
    """
    if rule not in STEP_RULES:
        raise ParameterError("step_rule", rule, f"one of {', '.join(STEP_RULES)}")
    if rule == "fixed" or B == 1:
        return gamma, False
    g = gamma * {"linear": float(B), "sqrt": math.sqrt(B)}[rule]
    cap = max(gamma, STABILITY_MARGIN * critical_step_size(mu, batch=B))
    return (cap, True) if g > cap else (g, False)


def batch_rows(problem, a: float, N_values, B_values, gamma: float, step_rules, log_base: str = "e") -> pd.DataFrame:
    """Exact risk of mini-batch SGD on a built problem (the workflow's job): every (N, B, step rule) with
    T = ⌊N/B⌋ >= 2 updates of the paper's schedule on T (T_eff = T/log T), one batched engine per B shared by every
    N and rule; ``variance_predictor`` is ``theory.variance_predictor`` at (M, T_eff, γ_B, B)."""
    M = problem.M
    rows = []
    for N in N_values:
        N = check_int("N", N, minimum=2)
        Bs = B_values if B_values is not None else [2**k for k in range(int(math.log2(N / 16)) + 1)]
        for B in Bs:
            B = check_int("B", B, minimum=1)
            T = N // B
            if T < 2:
                continue
            engine = ExactEngine(problem.mu, problem.p0, problem.sigma2, problem.approx, batch=B)
            for rule in step_rules:
                gB, capped = batch_step_size(gamma, B, rule, problem.mu)
                sch = Schedule(gB, T, log_base=log_base)
                r = engine.run(sch)
                pred = float(theory.variance_predictor(M, sch.N_eff, gB, B, a))
                rows.append({"N": N, "B": B, "T": T, "T_eff": sch.N_eff, "step_rule": rule, "gamma_B": gB,
                             "capped": capped, **_breakdown_columns(r), "variance_predictor": pred,
                             "variance_ratio": r.variance / (problem.noise * pred)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------- data reuse

def reuse_rows(problem, n_samples: int, L_values, gamma: float, trials: int, seed: int,
               log_base: str = "e") -> pd.DataFrame:
    """Multi-pass Monte Carlo on a built problem at every L (the same ``trials`` datasets and w* at every L), with
    the exact one-pass risks after L fresh samples and after one pass over the N samples (the workflow's job)."""
    engine = ExactEngine.from_problem(problem)
    onepass_N = engine.run(Schedule(gamma, n_samples, log_base=log_base)).as_dict()["reducible"]
    rows = []
    for L in L_values:
        sch = Schedule(gamma, int(L), log_base=log_base)
        mc = multipass_monte_carlo(problem, sch, n_samples, trials, seed)
        rows.append({"M": problem.M, "N": n_samples, "L": int(L), "repeats": expected_repeats(int(L), n_samples),
                     **mc.summary(), "reducible": mc.mean - problem.sigma2,
                     "onepass_L_reducible": engine.run(sch).as_dict()["reducible"],
                     "onepass_N_reducible": onepass_N, "approx": problem.approx})
    return pd.DataFrame(rows)
