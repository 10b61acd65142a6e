"""Snakemake script: draw one sketch and save its reduced problem (results/problems/<stem>.npz)."""

import sys
import time

from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.spectra import Prior, Spectrum

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821 (snakemake injects this object)
key = snakemake.params.key  # noqa: F821
start = time.perf_counter()
print(f"building problem {key}", flush=True)
# σ² is applied at training time (it only enters the noise level), so one sketch serves every σ².
problem = build_problem(Spectrum(key["spectrum"], key["a"], key["d"]), key["M"], 0.0, key["seed"], Prior(key["b"]),
                        tail=key["tail"])
problem.save(snakemake.output[0], eigenvectors=snakemake.params.eigenvectors)  # noqa: F821
print(f"done in {time.perf_counter() - start:.2f} s: mu_max={problem.mu[0]:.4g} mu_min={problem.mu[-1]:.4g} "
      f"E Approx={problem.approx:.6g}", flush=True)
