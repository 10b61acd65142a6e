# Grid helpers: the validated config is expanded once, by the library, into problems and jobs.

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

# The planner and every job use the package of this checkout (src/), whichever Python runs them: Snakemake's own
# (which need not have sketchlaw installed) and a job's conda env (--sdm conda), whose env file cannot name a path
# to the checkout. Jobs inherit PYTHONPATH from this process, locally and through the SLURM executor.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
try:
    from sketchlaw.grid import EXPERIMENTS, ConfigError, check_config, exact_groups, plan
    from sketchlaw.provenance import canonical_hash, config_file_label, git_state
    from sketchlaw.seeds import coordinate_seed
except ImportError as err:
    raise WorkflowError(
        f"Planning the grid needs numpy and scipy in the Python that runs Snakemake ({sys.executable}): {err}. "
        "`make install` provides them in .venv; with your own Snakemake: pip install numpy scipy."
    ) from None

try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(f"Invalid configuration: {err}") from None

R = config["results_dir"]
# Shell rules run tools with the interpreter running Snakemake (the right environment even when Snakemake is called
# by path without activating the venv, and inside cluster jobs on a shared file system), except in a conda env
# (--sdm conda), whose activation puts its own `python` first on PATH.
_deployment = getattr(workflow, "deployment_settings", None)
PYTHON = "python" if _deployment and DeploymentMethod.CONDA in _deployment.deployment_method else sys.executable
PLAN = plan(config)
ENABLED = [name for name in EXPERIMENTS if name in config["experiments"]]
EXACT = exact_groups(PLAN["exact"])  # {(experiment, stem): [Job, ...]}
MONTECARLO = {(j.experiment, j.stem): j for j in PLAN["montecarlo"]}
BASELINES = {(j.experiment, j.stem): j for j in PLAN["baselines"]}

# Notebook → experiments whose tables it reads (a notebook runs only when they are all enabled).
NOTEBOOKS = {
    "fig1_risk_landscape": ["main"],
    "fig2_scaling_fits": ["main"],
    "appendix_monte_carlo": ["main"],
    "fit_diagnostics": ["main"],
    "source_condition": ["source"],
    "log_power_law": ["logpower"],
    "compute_optimal": ["compute"],
    "variance_vs_model_size": ["variance"],
    "stepsize": ["stepsize"],
}
ACTIVE_NOTEBOOKS = [nb for nb, needs in NOTEBOOKS.items() if all(e in ENABLED for e in needs)]


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    notebook="|".join(NOTEBOOKS),


def settings(experiment):
    return {**config["defaults"], **config["experiments"][experiment]}


def job_params(job):
    """Everything a training script needs, as plain data (params changes re-run exactly the affected jobs)."""
    s = settings(job.experiment)
    p = job.problem
    prior = "isotropic" if p.b is None else "source"
    b = p.a if (p.b is None and p.spectrum == "power") else p.b
    columns = {"experiment": job.experiment, "spectrum": p.spectrum, "a": p.a,
               "b": float("nan") if b is None else b, "prior": prior, "M": p.M, "d": p.d,
               "schedule": s["schedule"], "sigma2": float(s["sigma2"]), "sketch_seed": p.seed}
    return {"points": [list(pt) for pt in job.points], "sigma2": float(s["sigma2"]), "schedule": s["schedule"],
            "log_base": s["log_base"], "columns": columns, "trials": job.trials,
            "drop_unstable": EXPERIMENTS[job.experiment] == "stepsize",
            "lambdas": s.get("ridge", {}).get("lambdas", []),
            # compute experiment: the nominal budget C of each N = round(C / M)
            "compute_of_N": {str(int(round(C / p.M))): int(C) for C in s.get("C", [])},
            # Monte Carlo seeds derive from the grid coordinates, never from job order.
            "mc_seed": coordinate_seed(job.experiment, p.stem, *[x for pt in job.points for x in pt])}


def problem_file(wildcards):
    job = MONTECARLO.get((wildcards.experiment, wildcards.stem)) or BASELINES[(wildcards.experiment, wildcards.stem)]
    return f"{R}/problems/{job.problem.stem}.npz"


def problem_files(wildcards):
    return [f"{R}/problems/{job.problem.stem}.npz" for job in EXACT[(wildcards.experiment, wildcards.stem)]]


def runs(experiment, kind):
    table = {"exact": EXACT, "mc": MONTECARLO, "baselines": BASELINES}[kind]
    return sorted(f"{R}/runs/{experiment}/{kind}/{stem}.parquet" for (e, stem) in table if e == experiment)


def notebook_outputs(nb):
    return [f"{R}/notebooks/{nb}.ipynb", f"{R}/notebooks/{nb}.html", f"{R}/figures/{nb}.png", f"{R}/figures/{nb}.pdf"]


def final_targets():
    out = [f"{R}/tables/{e}.parquet" for e in ENABLED] + [f"{R}/tables/{e}.csv" for e in ENABLED]
    out += [f"{R}/tables/exponents.csv", f"{R}/tables/exponents.md", f"{R}/index.html"]
    for nb in ACTIVE_NOTEBOOKS:
        out += notebook_outputs(nb)
    return out


def provenance_params():
    commit, dirty = git_state(workflow.basedir)
    science = {k: v for k, v in config.items() if k != "results_dir"}
    return {"config_hash": canonical_hash(science), "git_commit": commit, "git_dirty": dirty}
