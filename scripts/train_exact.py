"""Snakemake script: exact expected risk at every (N, γ) of one problem (one row per point)."""

import sys
import time

import pandas as pd

from sketchlaw.exact import ExactEngine, critical_step_size
from sketchlaw.problem import Problem
from sketchlaw.schedules import Schedule
from sketchlaw.tables import write_table

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
job = snakemake.params.job  # noqa: F821
start = time.perf_counter()
problem = Problem.load(snakemake.input.problem)  # noqa: F821
engine = ExactEngine(problem.mu, problem.p0, job["sigma2"], problem.approx)
gamma_max = critical_step_size(problem.mu)
points = [(N, g) for N, g in job["points"] if g < gamma_max]
skipped = len(job["points"]) - len(points)
if skipped:
    if not job["drop_unstable"]:
        raise SystemExit(f"gamma >= {gamma_max:.6g}, the stability bound of sketch {problem.meta}: see config")
    print(f"{skipped} points with gamma >= gamma_max = {gamma_max:.6g} omitted (SGD diverges there)")
schedules = [Schedule(g, N, job["schedule"], job["log_base"]) for N, g in points]
results = engine.run_many(schedules)
rows = []
for sch, res in zip(schedules, results):
    extra = {"compute": job["compute_of_N"][str(sch.N)]} if job["compute_of_N"] else {}
    rows.append({**job["columns"], **extra, "N": sch.N, "N_eff": sch.N_eff, "gamma": sch.gamma, "gamma_max": gamma_max,
                 **res.as_dict(), "sigma2": job["sigma2"]})
    print(f"N={sch.N:>12d} gamma={sch.gamma:<8g} risk={res.risk:.10g} bias={res.bias:.4g} var={res.variance:.4g}")
write_table(pd.DataFrame(rows), snakemake.output[0])  # noqa: F821
print(f"{len(rows)} points in {time.perf_counter() - start:.2f} s", flush=True)
