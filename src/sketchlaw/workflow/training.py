"""One job's work as a table: exact risks, Monte Carlo statistics, baselines and M = ∞ limit curves.

Each function takes the plain job parameters that ``grid.job_params`` / ``grid.limit_params`` produce and returns a
tidy DataFrame (one row per grid point); the workflow's scripts only load, call and write.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sketchlaw.engine.baselines import ridge_monte_carlo
from sketchlaw.engine.exact import ExactEngine, critical_step_size
from sketchlaw.errors import ParameterError
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.sgd import monte_carlo
from sketchlaw.theory import ols_variance

EXACT_RESULT_COLUMNS = ("N", "N_eff", "gamma", "gamma_max", "risk", "sigma2", "approx", "bias", "variance",
                        "excess", "reducible", "variance_from_noise", "variance_from_approx")


def stable_points(points, mu, drop_unstable: bool) -> tuple[list, float]:
    """The (N, γ) points whose γ is below the sketch's exact stability bound, and the bound.

    The step-size experiment explores γ up to divergence, so its unstable points are omitted (the figure marks the
    bound); anywhere else an unstable γ is a configuration error and is refused.
    """
    bound = critical_step_size(mu)
    keep = [(int(N), float(g)) for N, g in points if g < bound]
    if len(keep) < len(points) and not drop_unstable:
        raise ParameterError("gamma", max(g for _, g in points),
                             f"0 < gamma < {bound:.6g}, the stability bound of this sketch")
    return keep, bound


def exact_rows(problem, job: dict) -> pd.DataFrame:
    """Exact expected risk at every stable (N, γ) of the job, all N sharing the phase maps of one engine."""
    engine = ExactEngine(problem.mu, problem.p0, job["sigma2"], problem.approx)
    points, bound = stable_points(job["points"], problem.mu, job["drop_unstable"])
    schedules = [Schedule(g, N, job["schedule"], job["log_base"]) for N, g in points]
    rows = []
    for sch, res in zip(schedules, engine.run_many(schedules)):
        extra = {"compute": job["compute_of_N"][str(sch.N)]} if job["compute_of_N"] else {}
        rows.append({**job["columns"], **extra, "N": sch.N, "N_eff": sch.N_eff, "gamma": sch.gamma,
                     "gamma_max": bound, **res.as_dict(), "sigma2": job["sigma2"]})
    columns = list(job["columns"]) + (["compute"] if job["compute_of_N"] else []) + list(EXACT_RESULT_COLUMNS)
    return pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))


def montecarlo_row(problem, job: dict) -> pd.DataFrame:
    """Monte Carlo SGD at the job's single grid point: fresh data and a fresh w* per trial."""
    problem.sigma2 = job["sigma2"]
    (N, gamma), = job["points"]
    schedule = Schedule(gamma, N, job["schedule"], job["log_base"])
    mc = monte_carlo(problem, schedule, job["trials"], job["mc_seed"], progress=True)
    return pd.DataFrame([{**job["columns"], "N": N, "N_eff": schedule.N_eff, "gamma": gamma,
                          "mc_seed": job["mc_seed"], **mc.summary()}])


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
    batch size and step rule at every N (batch), or multi-pass Monte Carlo at every L (reuse, one N)."""
    from sketchlaw.workflow import followups as fu

    problem.sigma2 = job["sigma2"]
    kind = job["kind"]
    if kind == "schedules":
        df = fu.schedule_rows(problem, job["gamma"], job["N"], job["specs"], job["a"], job["log_base"])
    elif kind == "batch":
        df = fu.batch_rows(problem, job["a"], job["N"], job["B"], job["gamma"], job["step_rules"], job["log_base"])
    elif kind == "reuse":
        (N,) = job["N"]
        df = fu.reuse_rows(problem, N, job["L"], job["gamma"], job["trials"], job["mc_seed"], job["log_base"])
        df = df.assign(mc_seed=job["mc_seed"])
    else:
        raise ParameterError("kind", kind, "one of schedules, batch, reuse")
    columns = {k: v for k, v in job["columns"].items() if k not in df.columns}
    df = df.assign(**columns)
    first = list(job["columns"])
    return df[first + [c for c in df.columns if c not in first]]


def followup_table(jobs, problem_paths) -> pd.DataFrame:
    """``followup_rows`` for each (job, problem file) pair of a workflow job, concatenated; prints each one's time."""
    import time

    from sketchlaw.engine.problem import Problem

    start, parts = time.perf_counter(), []
    for job, path in zip(jobs, problem_paths):
        t0 = time.perf_counter()
        parts.append(followup_rows(Problem.load(path), job))
        print(f"{path}: {job['kind']}, {len(parts[-1])} rows in {time.perf_counter() - t0:.2f} s", flush=True)
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


# The auxiliary tables' jobs (scripts/auxiliary_table.py): computed without a drawn sketch, one per experiment.
AUXILIARY = {"limit": limit_rows, "claim": claim_rows, "finite": finite_rows}
