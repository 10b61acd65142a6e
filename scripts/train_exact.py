"""Snakemake script: exact expected risk at every (N, γ) of each problem of one sketch family (one row per point)."""

import sys
import time

import pandas as pd

from sketchlaw.exact import ExactEngine, critical_step_size
from sketchlaw.problem import Problem
from sketchlaw.schedules import Schedule
from sketchlaw.tables import write_table

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
start = time.perf_counter()
rows = []
for job, path in zip(snakemake.params.jobs, snakemake.input.problems):  # noqa: F821
    problem = Problem.load(path)
    engine = ExactEngine(problem.mu, problem.p0, job["sigma2"], problem.approx)
    gamma_max = critical_step_size(problem.mu)
    points = [(N, g) for N, g in job["points"] if g < gamma_max]
    skipped = len(job["points"]) - len(points)
    if skipped:
        if not job["drop_unstable"]:
            raise SystemExit(f"gamma >= {gamma_max:.6g}, the stability bound of the sketch in {path}: see config")
        print(f"M={problem.M}: {skipped} points with gamma >= gamma_max = {gamma_max:.6g} omitted (SGD diverges)")
    schedules = [Schedule(g, N, job["schedule"], job["log_base"]) for N, g in points]
    t0 = time.perf_counter()
    for sch, res in zip(schedules, engine.run_many(schedules)):
        extra = {"compute": job["compute_of_N"][str(sch.N)]} if job["compute_of_N"] else {}
        rows.append({**job["columns"], **extra, "N": sch.N, "N_eff": sch.N_eff, "gamma": sch.gamma,
                     "gamma_max": gamma_max, **res.as_dict(), "sigma2": job["sigma2"]})
    print(f"M={problem.M:>6d}: {len(schedules)} points in {time.perf_counter() - t0:.2f} s, "
          f"risk at the largest N {rows[-1]['risk']:.10g}", flush=True)
write_table(pd.DataFrame(rows), snakemake.output[0])  # noqa: F821
print(f"{len(rows)} rows in {time.perf_counter() - start:.2f} s", flush=True)
