"""One job's work as a table: exact risks, Monte Carlo statistics, baselines and M = ∞ limit curves.

Each function takes the plain job parameters that ``grid.job_params`` / ``grid.limit_params`` produce and returns a
tidy DataFrame (one row per grid point); the workflow's scripts only build the job's sketched problems
(``sketched_problem``), call and write. The compiled engine (numba) is imported by the functions that run it, so
Monte Carlo and baseline jobs never load it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from sketchlaw.engine.baselines import ridge_monte_carlo
from sketchlaw.engine.problem import NestedSketches, Problem, build_problem
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.sgd import monte_carlo
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.errors import ParameterError
from sketchlaw.theory import ols_variance

EXACT_RESULT_COLUMNS = ("N", "N_eff", "gamma", "gamma_max", "diverged", "risk", "sigma2", "approx", "bias",
                        "variance", "excess", "reducible", "variance_from_noise", "variance_from_approx")
# Columns a diverged point leaves empty (NaN): everything that depends on the run (Approx is the sketch's own).
DIVERGED_EMPTY = ("risk", "bias", "variance", "excess", "reducible", "variance_from_noise", "variance_from_approx",
                  "mc_mean", "mc_std", "mc_sem", "onepass_L_reducible", "onepass_N_reducible", "variance_ratio")

EMPTY_BREAKDOWN = {"risk": np.nan, "reducible": np.nan, "bias": np.nan, "variance": np.nan}


def sketched_problem(key: dict) -> Problem:
    """The job's sketched problem (a ``grid.ProblemKey`` as plain data), drawn from its seed inside the job that uses
    it: a problem is cheap next to the start of a process of its own. σ² enters only the noise level and is set at
    training time."""
    return build_problem(Spectrum(key["spectrum"], key["a"], key["d"]), key["M"], 0.0, key["seed"], Prior(key["b"]),
                         tail=key["tail"], sketch=key.get("sketch", "gaussian"))


def stable_points(points, mu, drop_unstable: bool = False) -> tuple[list, list, float]:
    """Split the (N, γ) points at the sketch's exact stability bound: (stable, diverged, bound).

    A realized sketch's bound fluctuates below the unsketched one the config check uses (at small M by a factor of
    several), so a point with γ at or above it is a result, *diverged* (its expected risk grows without bound), not
    an error: the training jobs record it as a row with ``diverged`` true and empty risk columns. The step-size
    experiment explores γ up to divergence by design and omits such points (``drop_unstable``; the figure marks
    each sketch's bound): they come back as neither stable nor diverged.
    """
    bound = critical_step_size(mu)
    keep = [(int(N), float(g)) for N, g in points if g < bound]
    diverged = [] if drop_unstable else [(int(N), float(g)) for N, g in points if not g < bound]
    return keep, diverged, bound


def exact_rows(problem, job: dict) -> pd.DataFrame:
    """Exact expected risk at every stable (N, γ) of the job, all N sharing the phase maps of one engine; a point
    above the sketch's bound is a row with ``diverged`` true (``stable_points``)."""
    from sketchlaw.engine.exact import ExactEngine

    engine = ExactEngine(problem.mu, problem.p0, job["sigma2"], problem.approx)
    points, diverged, bound = stable_points(job["points"], problem.mu, job["drop_unstable"])
    schedules = [Schedule(g, N, job["schedule"], job["log_base"]) for N, g in points]
    rows = []

    def extra(N):
        return {"compute": job["compute_of_N"][str(N)]} if job["compute_of_N"] else {}

    for sch, res in zip(schedules, engine.run_many(schedules) if schedules else []):
        rows.append({**job["columns"], **extra(sch.N), "N": sch.N, "N_eff": sch.N_eff, "gamma": sch.gamma,
                     "gamma_max": bound, "diverged": False, **res.as_dict(), "sigma2": job["sigma2"]})
    for N, g in diverged:
        sch = Schedule(g, N, job["schedule"], job["log_base"])
        rows.append({**job["columns"], **extra(N), "N": N, "N_eff": sch.N_eff, "gamma": g, "gamma_max": bound,
                     "diverged": True, **{c: np.nan for c in DIVERGED_EMPTY if c in EXACT_RESULT_COLUMNS},
                     "approx": problem.approx, "sigma2": job["sigma2"]})
    if diverged:
        print(f"diverged: gamma >= {bound:.6g}, the stability bound of this sketch, at (N, gamma) = {diverged}",
              flush=True)
    columns = list(dict.fromkeys(list(job["columns"]) + (["compute"] if job["compute_of_N"] else [])
                                 + list(EXACT_RESULT_COLUMNS)))
    # A typed first row, dropped: a job with no point (the compute experiment's M with no budget C ≥ 2M) still
    # writes numeric columns, not object ones that would turn the experiment's whole table to objects.
    template = {**job["columns"], **({"compute": 0} if job["compute_of_N"] else {}),
                **dict.fromkeys(EXACT_RESULT_COLUMNS, np.nan), "N": 0, "diverged": False}
    df = pd.DataFrame([template, *rows], columns=columns).iloc[1:]
    df["diverged"] = df["diverged"].astype(bool)
    return df.sort_values(["gamma", "N"], kind="stable").reset_index(drop=True)


REFINE_PER_OCTAVE = 8  # sizes added between a budget's grid minimum and its grid neighbours (docs/METHODS.md §13)


def elapsed_log():
    """A job log's line printer: each line prefixed with the seconds since this call and flushed, so a long job's
    progress shows in ``tail -f`` of its log."""
    start = time.perf_counter()
    return lambda text: print(f"{time.perf_counter() - start:.2f} s: {text}", flush=True)


def family_rows(jobs: list[dict], log=print) -> pd.DataFrame:
    """Exact rows of one sketch family's jobs (``exact_rows`` per problem), or, for the compute experiment (jobs
    marked ``nested``), of one ``NestedSketches`` family refined around each budget's minimum
    (``compute_family_rows``)."""
    if jobs and jobs[0].get("nested"):
        return compute_family_rows(jobs, log)
    return problem_rows(jobs, exact_rows, log)


def problem_rows(jobs: list[dict], rows, log=print) -> pd.DataFrame:
    """``rows(problem, job)`` for each job of a sketch family (``grid.family_groups``), each problem drawn here from
    its seed, concatenated: what a training script writes."""
    parts = []
    for job in jobs:
        problem = sketched_problem(job["problem"])
        parts.append(rows(problem, job))
        log(f"M = {problem.M}: {len(parts[-1])} rows from {len(job['points'])} points")
    return pd.concat(parts, ignore_index=True)


def compute_family_rows(jobs: list[dict], log=print) -> pd.DataFrame:
    """The compute experiment's sketch family: every grid M (``refined`` false) from one nested family (its sketch
    of size M is the first M rows of its largest: ``NestedSketches``), then, for each budget C whose smallest
    R − σ² over the grid lies at an interior M_i, the integer sizes M_i·2^(k/REFINE_PER_OCTAVE) strictly between
    M_(i−1) and M_(i+1) at N = round(C/M) (``refined`` true): the points the frontier's optimum is located from."""
    top = max(jobs, key=lambda j: j["problem"]["M"])
    key = top["problem"]
    family = NestedSketches(Spectrum(key["spectrum"], key["a"], key["d"]), key["M"], key["seed"], Prior(key["b"]),
                            tail=key["tail"])
    cache: dict[int, Problem] = {}

    def run(job: dict, M: int) -> pd.DataFrame:
        if M not in cache:
            cache[M] = family.problem(M)
        job = {**job, "columns": {**job["columns"], "M": M, "d": key["d"]}}
        return exact_rows(cache[M], job)

    grid = pd.concat([run(job, job["problem"]["M"]) for job in jobs], ignore_index=True)
    grid["refined"] = False
    log(f"grid: {len(jobs)} sizes from one family of {key['M']} rows, {len(grid)} points")
    grid_sizes = {j["problem"]["M"] for j in jobs}
    wanted: dict[int, list] = {}
    for (gamma, C), curve in grid[~grid["diverged"]].groupby(["gamma", "compute"]):
        sizes = np.sort(curve["M"].to_numpy(float))
        best = float(curve.loc[curve["reducible"].idxmin(), "M"])
        i = int(np.searchsorted(sizes, best))
        if not 0 < i < len(sizes) - 1:
            continue
        lo, hi = np.log2(sizes[i - 1] / best), np.log2(sizes[i + 1] / best)
        ks = np.arange(np.floor(lo * REFINE_PER_OCTAVE) + 1, np.ceil(hi * REFINE_PER_OCTAVE))
        for M in {int(round(best * 2.0 ** (k / REFINE_PER_OCTAVE))) for k in ks} - grid_sizes:
            if sizes[i - 1] < M < sizes[i + 1] and round(C / M) >= 2:
                wanted.setdefault(M, []).append((int(round(C / M)), float(gamma), int(C)))
    refined = []
    for M, points in sorted(wanted.items()):
        job = {**top, "points": [[N, g] for N, g, _ in points], "compute_of_N": {str(N): C for N, _, C in points}}
        refined.append(run(job, M))
    log(f"refined: {len(wanted)} sizes between grid neighbours, {sum(len(p) for p in wanted.values())} points")
    out = pd.concat([grid, *refined], ignore_index=True)
    out["refined"] = out["refined"].fillna(True).astype(bool)
    return out


def montecarlo_rows(problem, job: dict) -> pd.DataFrame:
    """Monte Carlo SGD at each of the job's grid points, one row each: fresh data and a fresh w* per trial, from the
    point's own seed (``point_seeds``). Above the sketch's stability bound nothing is run: the row is ``diverged``
    with empty statistics (its exact twin is diverged too)."""
    problem.sigma2 = job["sigma2"]
    bound = critical_step_size(problem.mu)
    rows = []
    for (N, gamma), seed in zip(job["points"], job["point_seeds"], strict=True):
        schedule = Schedule(gamma, N, job["schedule"], job["log_base"])
        if not gamma < bound:
            print(f"diverged: gamma = {gamma} >= {bound:.6g}, the stability bound of this sketch", flush=True)
            stats = {"mc_trials": int(job["trials"]), "mc_mean": np.nan, "mc_std": np.nan, "mc_sem": np.nan}
        else:
            print(f"Monte Carlo: {job['trials']} trials at (N, gamma) = ({N}, {gamma}), seed {seed}", flush=True)
            stats = monte_carlo(problem, schedule, job["trials"], seed, progress=True).summary()
        rows.append({**job["columns"], "N": N, "N_eff": schedule.N_eff, "gamma": gamma, "mc_seed": seed, **stats,
                     "diverged": not gamma < bound})
    return pd.DataFrame(rows)


def baseline_rows(problem, job: dict) -> pd.DataFrame:
    """Least squares (exact mean variance, where N > M + 1) and ridge tuned by an oracle at each N.

    The ridge λ is the one of the grid with the smallest population risk averaged over the trials (an oracle: the
    best any tuning could do), so the comparison with SGD is the most favourable to ridge.
    """
    problem.sigma2 = job["sigma2"]
    M, rows = problem.M, []
    lambdas = np.array(job["lambdas"], dtype=float)
    for N, gamma in job["points"]:
        ols = N > M + 1
        seed = job["mc_seed"] + N
        res = ridge_monte_carlo(problem, N, np.concatenate([[0.0], lambdas]) if ols else lambdas, job["trials"], seed)
        risk = res.risk()
        base = {**job["columns"], "N": N, "N_eff": Schedule(gamma, N, job["schedule"], job["log_base"]).N_eff,
                "gamma": gamma, "approx": problem.approx, "mc_trials": job["trials"], "mc_seed": seed}
        if ols:
            var_mc, exact_var = res.variance[0], float(ols_variance(problem.noise, M, N))
            rows.append({**base, "method": "ols", "ridge_lambda": 0.0, "variance": exact_var, "bias": 0.0,
                         "risk": float(problem.noise + exact_var), "mc_mean": var_mc.mean(),
                         "mc_sem": var_mc.std(ddof=1) / np.sqrt(len(var_mc))})
            res.lambdas, res.bias, res.variance, risk = res.lambdas[1:], res.bias[1:], res.variance[1:], risk[1:]
        best = int(np.argmin(risk.mean(axis=1)))
        v = res.variance[best]
        # the trials' own targets: the risk averages σ² + Approx(S, w*_r) + bias + variance over them
        rows.append({**base, "method": "ridge", "ridge_lambda": float(res.lambdas[best]), "approx": res.approx.mean(),
                     "variance": v.mean(), "bias": res.bias[best].mean(), "risk": risk[best].mean(),
                     "mc_mean": v.mean(), "mc_sem": v.std(ddof=1) / np.sqrt(len(v))})
    table = pd.DataFrame(rows)
    table["excess"] = table["bias"] + table["variance"]
    table["reducible"] = table["risk"] - job["sigma2"]
    return table


def limit_rows(job: dict) -> pd.DataFrame:
    """Bias and variance of the M = ∞ limit (model ``limit``, M = inf) at every N of the experiment and on the far
    grid beyond it (model ``limit_far``, ``limit.far_grid``), and their deterministic equivalent at the largest M
    of the grid (model ``deterministic_equivalent``, with its E Approx),
    for each (a, b) of the job."""
    from sketchlaw.engine.limit import far_grid, limit_curve
    from sketchlaw.theory.equivalents import sketched_excess_de

    out = []
    for curve in job["curves"]:
        a, b = curve["a"], curve["b"]
        prior_b = None if b == a else b
        common = dict(experiment=job["experiment"], spectrum=job["spectrum"], a=a, b=b, gamma=job["gamma"],
                      sigma2=job["sigma2"])
        limit = limit_curve(job["spectrum"], a, prior_b, job["sigma2"], job["gamma"], job["N"],
                            schedule=job["schedule"], log_base=job["log_base"])
        out.append(limit.assign(model="limit", M=float("inf"), approx=0.0, **common))
        far = far_grid(max(job["N"]))
        if len(far) >= 2:  # its own modes (a longer horizon), so the grid's rows do not depend on the far grid
            far = limit_curve(job["spectrum"], a, prior_b, job["sigma2"], job["gamma"], far,
                              schedule=job["schedule"], log_base=job["log_base"])
            # N beyond int64: the column is float (exact for the grid's N < 2^53)
            out.append(far.assign(model="limit_far", M=float("inf"), approx=0.0, N=far["N"].astype(float), **common))
        try:
            de = sketched_excess_de(job["spectrum"], a, prior_b, job["M_window"], job["sigma2"], job["gamma"],
                                    job["N"], schedule=job["schedule"], log_base=job["log_base"])
        except ParameterError as err:  # the equivalent's modes can be less stable than any real sketch: no theory
            print(f"no deterministic equivalent for a = {a}, b = {b}: {err}", flush=True)
            continue
        out.append(de.assign(model="deterministic_equivalent", M=float(job["M_window"]), **common))
    columns = ["experiment", "spectrum", "a", "b", "model", "M", "N", "N_eff", "gamma", "sigma2", "bias", "variance",
               "excess", "approx"]
    return pd.concat(out, ignore_index=True)[columns]


def followup_rows(problem, job: dict) -> pd.DataFrame:
    """One follow-up job on one problem (``grid.followup_params``): every schedule at every N (schedules), every
    batch size and step rule at every N (batch), or multi-pass Monte Carlo at every L (reuse, one N).

    Every row carries the sketch's stability bound (``gamma_max``; batch: the bound at its B) and ``diverged``: a
    step size at or above the bound is not run, its row has empty risk columns (``stable_points``). The schedules
    never step above γ (warm-ups rise to it), so γ decides for every schedule; in the batch experiment each rule's own
    step at B (``followups.batch_step_size``: γ itself at B = 1, a scaled step never capped below γ) decides."""
    from sketchlaw.workflow import followups as fu

    problem.sigma2 = job["sigma2"]
    kind, gamma = job["kind"], job["gamma"]
    bound = critical_step_size(problem.mu)
    if kind == "schedules":
        if gamma < bound:
            df = fu.schedule_rows(problem, gamma, job["N"], job["specs"], job["a"], job["log_base"])
        else:
            specs = [{"log_base": job["log_base"], **spec} if spec.get("kind", "geometric") == "geometric" else spec
                     for spec in job["specs"]]
            df = pd.DataFrame([{"schedule": s.label, "kind": s.kind, "N": s.N, "N_eff": s.N_eff,
                                "pieces": len(s.phases()), "intrinsic_time": float(sum(g * n for g, n in s.phases())),
                                **EMPTY_BREAKDOWN, "approx": problem.approx}
                               for spec in specs for s in (fu.make_schedule(gamma, int(N), spec, job["a"])
                                                           for N in job["N"])])
        df = df.assign(gamma_max=bound, diverged=not gamma < bound)
    elif kind == "batch":
        parts = []
        for B in job["B"]:
            bound_B = critical_step_size(problem.mu, batch=int(B))
            steps = {rule: fu.batch_step_size(gamma, int(B), rule, problem.mu) for rule in job["step_rules"]}
            rules = [rule for rule in job["step_rules"] if steps[rule][0] < bound_B]
            if rules:
                parts.append(fu.batch_rows(problem, job["a"], job["N"], [B], gamma, rules, job["log_base"])
                             .assign(gamma_max=bound_B, diverged=False))
            for rule in (r for r in job["step_rules"] if r not in rules):
                parts.append(pd.DataFrame([{"N": N, "B": int(B), "T": N // B,
                                            "T_eff": Schedule(steps[rule][0], N // B, log_base=job["log_base"]).N_eff,
                                            "step_rule": rule, "gamma_B": steps[rule][0], "capped": steps[rule][1],
                                            **EMPTY_BREAKDOWN, "approx": problem.approx,
                                            "variance_predictor": np.nan, "variance_ratio": np.nan,
                                            "gamma_max": bound_B, "diverged": True}
                                           for N in job["N"] if N // B >= 2]))
        df = pd.concat(parts, ignore_index=True)
        df = df.sort_values(["N", "B"], kind="stable").reset_index(drop=True)
    elif kind == "reuse":
        (N,) = job["N"]
        if gamma < bound:
            df = fu.reuse_rows(problem, N, job["L"], gamma, job["trials"], job["mc_seed"], job["log_base"])
        else:
            from sketchlaw.engine.reuse import expected_repeats

            df = pd.DataFrame([{"M": problem.M, "N": N, "L": int(L), "repeats": expected_repeats(int(L), N),
                                "mc_trials": int(job["trials"]), "mc_mean": np.nan, "mc_std": np.nan,
                                "mc_sem": np.nan, "reducible": np.nan, "onepass_L_reducible": np.nan,
                                "onepass_N_reducible": np.nan, "approx": problem.approx} for L in job["L"]])
        df = df.assign(mc_seed=job["mc_seed"], gamma_max=bound, diverged=not gamma < bound)
    else:
        raise ParameterError("kind", kind, "one of schedules, batch, reuse")
    df["diverged"] = df["diverged"].astype(bool)
    if df["diverged"].any():
        print(f"diverged: gamma = {gamma} >= the stability bound of this sketch ({bound:.6g}; batch: at each B) "
              f"at {int(df['diverged'].sum())} of {len(df)} points", flush=True)
    columns = {k: v for k, v in job["columns"].items() if k not in df.columns}
    df = df.assign(**columns)
    first = list(job["columns"])
    return df[first + [c for c in df.columns if c not in first]]


def followup_table(jobs) -> pd.DataFrame:
    """``followup_rows`` for each follow-up job of one workflow job, on its own sketched problem, concatenated; prints
    each one's time."""
    import time

    start, parts = time.perf_counter(), []
    for job in jobs:
        t0 = time.perf_counter()
        if job["kind"] in ("dataset", "covariates"):  # their own job functions (the dataset's problems, full d)
            from sketchlaw.workflow.covariates import covariate_rows
            from sketchlaw.workflow.datasets import dataset_rows

            df = {"dataset": dataset_rows, "covariates": covariate_rows}[job["kind"]](job)
            first = list(job["columns"])
            parts.append(df.assign(**job["columns"])[first + [c for c in df.columns if c not in first]])
        else:
            parts.append(followup_rows(sketched_problem(job["problem"]), job))
        print(f"M = {job['problem']['M']}: {job['kind']}, {len(parts[-1])} rows in {time.perf_counter() - t0:.2f} s",
              flush=True)
    print(f"done in {time.perf_counter() - start:.2f} s", flush=True)
    return pd.concat(parts, ignore_index=True)


def claim_rows(job: dict) -> pd.DataFrame:
    """The unsketched schedule comparison (``followups.schedule_claim``) for every (a, b) of the job."""
    from sketchlaw.workflow.followups import schedule_claim

    out = [schedule_claim(c["a"], c["b"], job["gamma"], job["sigma2"], job["N"]).assign(experiment=job["experiment"])
           for c in job["curves"]]
    return _first_columns(pd.concat(out, ignore_index=True))


def finite_rows(job: dict) -> pd.DataFrame:
    """The schedules' finite-size theory (``followups.schedule_finite``) at the block's largest M, for every (a, b)
    of the job."""
    from sketchlaw.workflow.followups import schedule_finite

    out = [schedule_finite(job["spectrum"], c["a"], c["b"], job["M"], job["sigma2"], job["gamma"], job["N"],
                           job["specs"], job["log_base"]).assign(experiment=job["experiment"])
           for c in job["curves"]]
    return _first_columns(pd.concat(out, ignore_index=True))


def _first_columns(df: pd.DataFrame) -> pd.DataFrame:
    first = ["experiment", "a", "b", "schedule", "kind", "N", "N_eff"]
    return df[first + [c for c in df.columns if c not in first]]


def spectrum_rows(job: dict) -> pd.DataFrame:
    """The real dataset's spectrum and target energies, with their bootstrap resamples (``datasets.spectrum_rows``)."""
    from sketchlaw.workflow.datasets import spectrum_rows as rows

    return rows(job)


# The auxiliary tables' jobs (scripts/auxiliary_table.py): computed without a drawn sketch, one per experiment.
def frontier_rows(job: dict) -> pd.DataFrame:
    """The compute frontier's finite-size theory (``grid.frontier_params``): the deterministic equivalent's
    continuous frontier (``equivalents.frontier_de``) for each (a, b), one row per budget."""
    from sketchlaw.theory.equivalents import frontier_de

    parts = []
    for curve in job["curves"]:
        try:
            df = frontier_de(job["spectrum"], curve["a"], curve["b"], job["sigma2"], job["gamma"], job["budgets"],
                             job["M_min"], job["M_max"], job["schedule"], job["log_base"])
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as err:
            # a theory that cannot be evaluated here (e.g. a root not bracketed at an extreme a) is missing theory,
            # not a failed run: the rows then carry no theory_finite and no extrapolation
            print(f"no deterministic-equivalent frontier at a = {curve['a']}, b = {curve['b']}: {err}", flush=True)
            continue
        b = curve["a"] if curve["b"] is None else curve["b"]
        parts.append(df.assign(experiment=job["experiment"], spectrum=job["spectrum"], a=curve["a"], b=b,
                               gamma=job["gamma"], sigma2=job["sigma2"], model="deterministic_equivalent"))
    columns = ["experiment", "spectrum", "a", "b", "model", "compute", "M_star", "N_star", "reducible_star",
               "interior", "k_star", "evaluations", "gamma", "sigma2"]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    first = ["experiment", "spectrum", "a", "b", "model"]
    return df[first + [c for c in df.columns if c not in first]]


def stability_rows(job: dict) -> pd.DataFrame:
    """The covariates experiment's stability thresholds on a small d (``covariates.stability_rows``)."""
    from sketchlaw.workflow.covariates import stability_rows as rows

    return rows(job)


AUXILIARY = {"limit": limit_rows, "claim": claim_rows, "finite": finite_rows, "frontier": frontier_rows,
             "spectrum": spectrum_rows, "stability": stability_rows}
