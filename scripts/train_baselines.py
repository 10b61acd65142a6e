"""Snakemake script: least squares (exact formula and Monte Carlo) and tuned ridge at each N of one problem."""

import sys
import time

import numpy as np
import pandas as pd

from sketchlaw.baselines import ridge_monte_carlo
from sketchlaw.problem import Problem
from sketchlaw.schedules import Schedule
from sketchlaw.tables import write_table
from sketchlaw.theory import ols_variance

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
job = snakemake.params.job  # noqa: F821
start = time.perf_counter()
problem = Problem.load(snakemake.input.problem)  # noqa: F821
problem.sigma2 = job["sigma2"]
M, rows = problem.M, []
for N, gamma in job["points"]:
    lambdas = np.array(job["lambdas"], dtype=float)
    ols = N > M + 1
    res = ridge_monte_carlo(problem, N, np.concatenate([[0.0], lambdas]) if ols else lambdas, job["trials"],
                            job["mc_seed"] + N)
    risk = res.risk()
    base = {**job["columns"], "N": N, "N_eff": Schedule(gamma, N, job["schedule"], job["log_base"]).N_eff,
            "gamma": gamma, "approx": problem.approx, "mc_trials": job["trials"], "mc_seed": job["mc_seed"] + N}
    if ols:
        var_mc = res.variance[0]
        rows.append({**base, "method": "ols", "ridge_lambda": 0.0,
                     "variance": float(ols_variance(problem.noise, M, N)),
                     "bias": 0.0, "risk": float(problem.noise + ols_variance(problem.noise, M, N)),
                     "mc_mean": var_mc.mean(), "mc_sem": var_mc.std(ddof=1) / np.sqrt(len(var_mc))})
        res.lambdas, res.bias, res.variance, risk = res.lambdas[1:], res.bias[1:], res.variance[1:], risk[1:]
    best = int(np.argmin(risk.mean(axis=1)))  # ridge tuned on the population risk (an oracle choice of λ)
    v = res.variance[best]
    # the trials' own targets: risk averages sigma2 + Approx(S, w*_r) + bias + variance over them
    rows.append({**base, "method": "ridge", "ridge_lambda": float(res.lambdas[best]), "approx": res.approx.mean(),
                 "variance": v.mean(),
                 "bias": res.bias[best].mean(), "risk": risk[best].mean(), "mc_mean": v.mean(),
                 "mc_sem": v.std(ddof=1) / np.sqrt(len(v))})
    print(f"N={N} M={M}: ols={'%.4g' % rows[-2]['variance'] if ols else 'n/a'} ridge λ={res.lambdas[best]:.3g} "
          f"var={v.mean():.4g}", flush=True)
table = pd.DataFrame(rows)
table["excess"] = table["bias"] + table["variance"]
table["reducible"] = table["risk"] - job["sigma2"]
write_table(table, snakemake.output[0])  # noqa: F821
print(f"done in {time.perf_counter() - start:.2f} s", flush=True)
