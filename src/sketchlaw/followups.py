"""Experiment-level entry points for the follow-ups: step-size schedules, mini-batch SGD and multi-pass SGD with
data reuse. Each takes plain parameters and returns a tidy pandas DataFrame (one row per grid point); the workflow's
scripts only read parameters, call one of these and write the table.

Problems are built with ``sketchlaw.problem.build_problem`` (power-law spectrum λ_i = i^-a, prior ``Prior(b)``,
d = max(d_min, d_per_M·M) coordinates, mean-field tail), so every number here is conditional on one sketch seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from .errors import ParameterError, check_int
from .exact import ExactEngine, critical_step_size
from .fit import local_slopes, loglog_slope
from .problem import build_problem
from .reuse import expected_repeats, multipass_monte_carlo
from .schedules import Schedule
from .sgd import monte_carlo
from .spectra import Prior, Spectrum


def make_problem(a: float, M: int, sigma2: float = 1.0, seed: int = 0, b: float | None = None, d: int | None = None,
                 d_per_M: int = 8, d_min: int = 1024, spectrum: str = "power", tail: str = "mean"):
    """The sketched problem of the main experiments for one (a, b, M, seed)."""
    d = max(d_min, d_per_M * M) if d is None else d
    return build_problem(Spectrum(spectrum, a, d), M, sigma2, seed, Prior(b), tail=tail)


def _breakdown_columns(r) -> dict:
    keys = ("risk", "reducible", "bias", "variance", "approx")
    return {k: v for k, v in r.as_dict().items() if k in keys}


# ------------------------------------------------------------------------------------------------- schedules

# The schedules compared by default (keyword arguments of Schedule besides gamma and N). "power" without a given
# exponent uses q = 2a − 1, the optimum of the functional-scaling-law analysis for capacity exponent a.
DEFAULT_SCHEDULES = (
    {"kind": "geometric"},
    {"kind": "geometric", "phase_factor": 2.0},
    {"kind": "geometric", "n_phases": 8},
    {"kind": "constant"},
    {"kind": "polynomial", "power": 0.5, "t0": 1.0},
    {"kind": "power"},
    {"kind": "cosine"},
    {"kind": "wsd", "warmup": 0.0, "decay": 0.2},
)


def make_schedule(gamma: float, N: int, spec: dict, a: float) -> Schedule:
    spec = dict(spec)
    if spec.get("kind") == "power" and "power" not in spec:
        spec["power"] = 2.0 * a - 1.0
    return Schedule(gamma, N, **spec)


def schedule_spec_error(spec: dict, gamma: float, N: int, a: float) -> ParameterError | None:
    """The ParameterError a schedule spec would raise at (γ, N), or None (for the config checks)."""
    try:
        make_schedule(gamma, N, spec, a)
    except ParameterError as err:
        return err
    except TypeError as err:  # an unknown keyword (the schema refuses these first)
        return ParameterError("kind", spec, f"a schedule spec with keys of sketchlaw.schedules.Schedule ({err})")
    return None


def schedule_label(spec: dict, a: float) -> str:
    """The label of a schedule spec (its identity in tables and legends)."""
    return make_schedule(1.0, 1000, spec, a).label


def claim_stability_bound(a: float, b: float | None = None) -> float:
    """The stability bound of the unsketched problem that ``schedule_claim`` runs (its compressed modes)."""
    mu, n, _ = power_law_modes(a, b)
    return critical_step_size(mu, n)


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
            rows.append({"schedule": s.label, "kind": s.kind, "N": s.N, "N_eff": s.N_eff, "pieces": len(s.phases()),
                         "intrinsic_time": float(sum(g * n for g, n in s.phases())), **_breakdown_columns(r)})
    return pd.DataFrame(rows)


def schedules_experiment(a: float = 2.0, M: int = 256, N_values=(10**3, 10**4, 10**5, 10**6), gamma: float = 0.1,
                         sigma2: float = 1.0, b: float | None = None, seed: int = 0, specs=DEFAULT_SCHEDULES,
                         d: int | None = None) -> pd.DataFrame:
    """Final expected risk and R − σ² against N at fixed M for each schedule in ``specs`` (exact engine).

    Columns: schedule (label), kind, N, N_eff, pieces (constant-step phases run), intrinsic_time (Σ γ_t), risk,
    reducible = R − σ², bias, variance, approx, and the parameters a, b, M, gamma, sigma2, seed.
    """
    problem = make_problem(a, M, sigma2, seed, b, d)
    df = run_schedules(ExactEngine.from_problem(problem), gamma, N_values, specs, a)
    return df.assign(a=a, b=np.nan if b is None else b, M=M, gamma=gamma, sigma2=sigma2, seed=seed)


def schedule_rows(problem, gamma: float, N_values, specs, a: float, log_base: str = "e") -> pd.DataFrame:
    """``run_schedules`` on a built problem (the workflow's job: one sketch, every schedule at every N); the
    geometric kinds use ``log_base`` for N_eff."""
    specs = [{"log_base": log_base, **spec} if spec.get("kind", "geometric") == "geometric" else spec
             for spec in specs]
    return run_schedules(ExactEngine.from_problem(problem), gamma, N_values, specs, a)


def schedule_exponents(df: pd.DataFrame, N_min: float | None = None, N_max: float | None = None) -> pd.DataFrame:
    """Fitted slopes of log(R − σ²) against log N and log N_eff per schedule, with theory where there is one.

    Theory (isotropic prior or b ≤ a): the paper's geometric schedule, −(b − 1)/a against N_eff = N/log N; the
    power decay to zero, −(b − 1)/a against N (the functional-scaling-law claim that it removes the log). Fit only
    where M limits nothing (pass N_max, e.g. from ``fit.n_slope_window``).
    """
    rows = []
    for label, g in df.groupby("schedule", sort=False):
        sel = np.ones(len(g), bool)
        if N_min is not None:
            sel &= g["N"].to_numpy() >= N_min
        if N_max is not None:
            sel &= g["N"].to_numpy() <= N_max
        g = g[sel]
        a = float(g["a"].iloc[0])
        b = a if np.isnan(g["b"].iloc[0]) else float(g["b"].iloc[0])
        kind = g["kind"].iloc[0]
        fit_N = loglog_slope(g["N"], g["reducible"])
        fit_eff = loglog_slope(g["N_eff"], g["reducible"])
        theory, against = math.nan, ""
        if b <= a and kind == "geometric" and label == "geometric":
            theory, against = -(b - 1.0) / a, "N_eff"
        elif b <= a and kind == "power":
            theory, against = -(b - 1.0) / a, "N"
        rows.append({"schedule": label, "kind": kind, "slope_N": fit_N.slope, "stderr_N": fit_N.stderr,
                     "slope_N_eff": fit_eff.slope, "stderr_N_eff": fit_eff.stderr, "points": fit_N.n_points,
                     "N_lo": fit_N.x_min, "N_hi": fit_N.x_max, "theory": theory, "theory_against": against,
                     "flags": fit_N.flag})
    return pd.DataFrame(rows)


def power_law_modes(a: float, b: float | None = None, exact: int = 64, fine_until: float = 1e5,
                    fine_ratio: float = 1.02, coarse_ratio: float = 1.5, end: float = 1e12):
    """An unsketched power-law problem λ_i = i^-a, i < ``end``, compressed into modes with multiplicities.

    Modes i ≤ ``exact`` are kept one by one; the rest are grouped into integer ranges growing by ``fine_ratio``
    up to ``fine_until`` (set it well above the number of directions SGD fits, (γN)^(1/a)) and by ``coarse_ratio``
    beyond, where the modes hardly move. A group of n modes has μ = Σλ_i/n (Hurwitz zeta sums, exact) and the
    per-mode initial error p0 with n μ p0 = Σ λ_i s_i (s_i the prior variance: 1, or i^-b/λ_i), so the group's
    share of tr H and of the initial excess risk is exact. Returns (mu, multiplicity, p0).
    """
    edges = list(range(1, exact + 2))
    x = float(exact + 1)
    while x < end:
        x = max(x + 1, math.floor(x * (fine_ratio if x < fine_until else coarse_ratio)))
        edges.append(int(min(x, end)))
    lo, hi = np.array(edges[:-1], dtype=float), np.array(edges[1:], dtype=float)
    n = hi - lo
    lam_sum = special.zeta(a, lo) - special.zeta(a, hi)
    energy = lam_sum if b is None else special.zeta(b, lo) - special.zeta(b, hi)
    mu = lam_sum / n
    return mu, n, energy / (n * mu)


def schedule_claim(a: float = 2.0, b: float | None = None, gamma: float = 0.2, sigma2: float = 1.0,
                   N_values=tuple(int(round(10 ** (k / 2))) for k in range(6, 13)),
                   specs=({"kind": "geometric"}, {"kind": "power"}), fine_until: float | None = None) -> pd.DataFrame:
    """R − σ² against N on the unsketched power-law problem, with local slopes against N, for the schedules in
    ``specs`` (default: the paper's geometric decay and the power decay to zero with q = 2a − 1).

    Columns: schedule, N, N_eff, reducible, bias, variance, local_slope (d log(R − σ²)/d log N), and
    geometric_reference = −(b − 1)/a·(1 − 1/log N), the local slope of (N/log N)^(−(b − 1)/a).
    """
    N_values = sorted(int(N) for N in N_values)
    k_star = (gamma * N_values[-1]) ** (1.0 / a)
    mu, n, p0 = power_law_modes(a, b, fine_until=fine_until or max(1e4, 100 * k_star))
    engine = ExactEngine(mu, p0, sigma2, 0.0, multiplicity=n)
    bound = critical_step_size(mu, n)
    if not gamma < bound:
        raise ParameterError("gamma", gamma, f"below the stability bound {bound:.4g} of the unsketched problem")
    df = run_schedules(engine, gamma, N_values, specs, a)
    bb = a if b is None else b
    out = []
    for _, g in df.groupby("schedule", sort=False):
        x, s = local_slopes(g["N"], g["reducible"])
        g = g.sort_values("N").assign(local_slope=s)
        out.append(g)
    df = pd.concat(out, ignore_index=True)
    return df.assign(geometric_reference=-(bb - 1.0) / a * (1.0 - 1.0 / np.log(df["N"])), a=a,
                     b=np.nan if b is None else b, gamma=gamma, sigma2=sigma2, modes=len(mu))


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


def batch_experiment(a: float = 2.0, M: int = 256, N_values=(10**4, 10**5, 10**6), B_values=None,
                     gamma: float = 0.1, sigma2: float = 1.0, b: float | None = None, seed: int = 0,
                     step_rules=("fixed", "linear"), d: int | None = None) -> pd.DataFrame:
    """Exact risk of mini-batch SGD at fixed N (samples) against the batch size B, T = ⌊N/B⌋ updates, the paper's
    geometric schedule on T (T_eff = T/log T), for each step-size rule.

    Columns: N, B, T, T_eff, step_rule, gamma_B, capped, risk, reducible, bias, variance, approx,
    variance_predictor = min(M, (T_eff γ_B)^(1/a))/(B·T_eff) (the variance over σ_M² up to a constant; see
    ``variance_ratio``), and the parameters. B_values default: powers of 2 up to N/16.
    """
    problem = make_problem(a, M, sigma2, seed, b, d)
    df = batch_rows(problem, a, N_values, B_values, gamma, step_rules)
    return df.assign(a=a, b=np.nan if b is None else b, M=M, gamma=gamma, sigma2=sigma2, seed=seed)


def batch_rows(problem, a: float, N_values, B_values, gamma: float, step_rules, log_base: str = "e") -> pd.DataFrame:
    """``batch_experiment`` on a built problem (the workflow's job): every (N, B, step rule) with T = ⌊N/B⌋ >= 2;
    one batched engine per B, shared by every N and rule."""
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
                pred = min(M, (sch.N_eff * gB) ** (1.0 / a)) / (B * sch.N_eff)
                rows.append({"N": N, "B": B, "T": T, "T_eff": sch.N_eff, "step_rule": rule, "gamma_B": gB,
                             "capped": capped, **_breakdown_columns(r), "variance_predictor": pred,
                             "variance_ratio": r.variance / (problem.noise * pred)})
    return pd.DataFrame(rows)


def critical_batch_size(df: pd.DataFrame, tolerance: float = 0.1) -> pd.DataFrame:
    """Per (N, step_rule): the largest B of the grid such that R − σ² stays within ``tolerance`` (relative) of
    B = 1's at the same N for every B up to it (the first B beyond costs more than 10 % of the reducible risk)."""
    rows = []
    for (N, rule), g in df.groupby(["N", "step_rule"], sort=True):
        g = g.sort_values("B")
        if g["B"].iloc[0] != 1:
            raise ParameterError("B_values", list(g["B"]), "a grid that includes B = 1")
        ok = (g["reducible"].to_numpy() <= (1.0 + tolerance) * g["reducible"].iloc[0])
        k = len(ok) if ok.all() else int(np.argmin(ok))
        rows.append({"N": N, "step_rule": rule, "critical_B": int(g["B"].iloc[k - 1]),
                     "at_grid_edge": bool(ok.all()), "tolerance": tolerance})
    return pd.DataFrame(rows)


def batch_monte_carlo_check(problem, B: int, N: int, gamma: float, trials: int = 2000, seed: int = 0) -> dict:
    """Exact batched risk against batched Monte Carlo at one (M, N, B): z = (MC mean − exact)/SE."""
    T = N // B
    sch = Schedule(gamma, T)
    exact = ExactEngine(problem.mu, problem.p0, problem.sigma2, problem.approx, batch=B).run(sch).risk
    mc = monte_carlo(problem, sch, trials, seed, batch=B)
    return {"M": problem.M, "N": N, "B": B, "T": T, "exact": exact, "mc_mean": mc.mean, "mc_sem": mc.sem,
            "z": (mc.mean - exact) / mc.sem}


# ------------------------------------------------------------------------------------------------- data reuse

def reuse_experiment(a: float = 2.0, b: float | None = 1.5, M_values=(32, 64, 128), n_samples: int = 1000,
                     L_values=None, gamma: float = 0.1, sigma2: float = 1.0, seed: int = 0, trials: int = 100,
                     d: int | None = None) -> pd.DataFrame:
    """Multi-pass SGD over N = ``n_samples`` fixed samples: Monte Carlo R − σ² against the number of updates L
    (geometric decay over L, halving every L/log L updates) for each M, beside the exact one-pass risk after L fresh
    samples and after one pass over the N samples.

    Columns: M, N, L, repeats (expected reused draws), mc_mean, mc_sem, mc_std (of the risk), reducible (MC mean
    − σ²), onepass_L_reducible (exact, L fresh samples), onepass_N_reducible (exact, one pass over N), approx (E
    Approx), trials and the parameters. L_values default: N/8 ... 8·N^(a/b) by factors of 2 (where L ≲ N^(a/b) the
    theory predicts R − σ² ≂ M^(1−b) + L^((1−b)/a)). The same trial numbers (hence datasets and w*) are used at
    every L: the curves carry common random numbers.
    """
    bb = a if b is None else b
    if L_values is None:
        top = 8 * n_samples ** (a / bb)
        L_values = [int(n_samples * 2.0**k / 8) for k in range(int(math.log2(top / (n_samples / 8))) + 1)]
    rows = []
    for M in M_values:
        problem = make_problem(a, M, sigma2, seed, b, d)
        rows.append(reuse_rows(problem, n_samples, L_values, gamma, trials, seed).assign(M=M))
    return pd.concat(rows, ignore_index=True).assign(a=a, b=np.nan if b is None else b, gamma=gamma,
                                                     sigma2=sigma2, seed=seed, trials=trials)


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


def reuse_slopes(df: pd.DataFrame) -> pd.DataFrame:
    """Slopes of log(R − σ²) against log L for L ≤ N^(a/b) at each M (theory (1 − b)/a while L^((1−b)/a) dominates
    M^(1−b)), and against log M at the largest L (theory 1 − b while M^(1−b) dominates)."""
    rows = []
    for M, g in df.groupby("M"):
        a, N = float(g["a"].iloc[0]), float(g["N"].iloc[0])
        b = a if np.isnan(g["b"].iloc[0]) else float(g["b"].iloc[0])
        g = g[g["L"] <= N ** (a / b)]
        f = loglog_slope(g["L"], g["reducible"], 1.0 / (g["mc_sem"] / g["reducible"]) ** 2)
        rows.append({"variable": "L", "M": M, "slope": f.slope, "stderr": f.stderr, "points": f.n_points,
                     "theory": (1.0 - b) / a, "flags": f.flag})
    top = df[df["L"] == df["L"].max()]
    a = float(df["a"].iloc[0])
    b = a if np.isnan(df["b"].iloc[0]) else float(df["b"].iloc[0])
    f = loglog_slope(top["M"], top["reducible"], 1.0 / (top["mc_sem"] / top["reducible"]) ** 2)
    rows.append({"variable": "M", "M": np.nan, "slope": f.slope, "stderr": f.stderr, "points": f.n_points,
                 "theory": 1.0 - b, "flags": f.flag})
    return pd.DataFrame(rows)
