"""Snakemake script: Monte Carlo SGD at one grid point (fresh data and w* per trial), one row of statistics."""

import sys
import time

import pandas as pd

from sketchlaw.problem import Problem
from sketchlaw.schedules import Schedule
from sketchlaw.sgd import monte_carlo
from sketchlaw.tables import write_table

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
job = snakemake.params.job  # noqa: F821
start = time.perf_counter()
problem = Problem.load(snakemake.input.problem)  # noqa: F821
problem.sigma2 = job["sigma2"]
(N, gamma), = job["points"]
schedule = Schedule(gamma, N, job["schedule"], job["log_base"])
print(f"Monte Carlo: {job['trials']} trials of {N} steps, M={problem.M}, seed={job['mc_seed']}", flush=True)
mc = monte_carlo(problem, schedule, job["trials"], job["mc_seed"], progress=True)
row = {**job["columns"], "N": N, "N_eff": schedule.N_eff, "gamma": gamma, "mc_seed": job["mc_seed"], **mc.summary()}
write_table(pd.DataFrame([row]), snakemake.output[0])  # noqa: F821
print(f"mean={mc.mean:.8g} std={mc.std:.4g} sem={mc.sem:.3g} in {time.perf_counter() - start:.2f} s", flush=True)
