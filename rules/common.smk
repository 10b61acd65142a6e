# Grid helpers: the validated config is expanded once, by the library, into problems and jobs; the experiment
# registry (sketchlaw.workflow.registry) says which experiments, analyses and notebooks exist.

import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The planner and every job use the package of this checkout (src/), whichever Python runs them: Snakemake's own
# (which need not have sketchlaw installed) and a job's conda env (--sdm conda), whose env file cannot name a path
# to the checkout. Jobs inherit PYTHONPATH from this process, locally and through the SLURM executor.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
try:
    from sketchlaw.workflow import registry
    from sketchlaw.workflow.grid import (MONTECARLO_JOB_DRAWS, ConfigError, check_config, claim_params, family_groups,
                                         finite_params, followup_groups, followup_params, frontier_params, job_params,
                                         limit_params, plan, spectrum_params, stability_params, stability_warnings)
    from sketchlaw.workflow.provenance import canonical_hash, config_file_label, git_state, science
except ImportError as err:
    raise WorkflowError(
        f"Planning the grid needs numpy and scipy in the Python that runs Snakemake ({sys.executable}): {err}. "
        "`make install` provides them in .venv; with your own Snakemake: pip install numpy scipy."
    ) from None

try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(f"Invalid configuration: {err}") from None
for _warning in stability_warnings(config):  # likely diverged points: a warning, not a refusal
    print(f"Warning: {_warning}", file=sys.stderr)

R = config["results_dir"]
PLAN = plan(config)
ENABLED = registry.enabled(config)
NOTEBOOKS = registry.notebooks()  # notebook → the experiment whose table it reads
ACTIVE_NOTEBOOKS = registry.active_notebooks(config)
LIMITS = [e for e in ENABLED if registry.EXPERIMENTS[e].limit]
# {(experiment, stem): [Job, ...]}: one job per sketch family (every M of one a, b and seed) for each kind of work, a
# Monte Carlo family split by M where it draws more than MONTECARLO_JOB_DRAWS normal numbers
EXACT = family_groups(PLAN["exact"])
MONTECARLO = family_groups(PLAN["montecarlo"], max_draws=MONTECARLO_JOB_DRAWS)
BASELINES = family_groups(PLAN["baselines"])
FOLLOWUPS = followup_groups(PLAN["followups"])  # {(experiment, stem): [Job, ...]} (schedules, batch, reuse)
AUX = registry.aux_tables(config)  # auxiliary tables, e.g. schedules_claim (its own job)


wildcard_constraints:
    experiment="|".join(registry.EXPERIMENTS),
    notebook="|".join(NOTEBOOKS),


def memory_mb(jobs):
    """Memory of a training job, for the largest M among its problems: Σ, its eigenvectors, the eigensolver's work
    space and their copies, 48·M² bytes with room (a build at M = 8192 peaks at 2.7 GB, at M = 4096 at 1.4 GB:
    benchmarks/bench_core.py), plus 1 GB."""
    M = max(job.problem.M for job in jobs)
    nested = max((8 * job.problem.d * M for job in jobs if registry.EXPERIMENTS[job.experiment].kind == "compute"),
                 default=0)  # a nested family's factor (its Q overwrites it: training.compute_family_rows)
    return 1000 + (48 * M**2 + nested) // 2**20


def experiment_tables(experiment):
    """An experiment's table, its M = ∞ limit (if its fit needs one) and its auxiliary tables."""
    stems = [experiment, *(f"{e}_limit" for e in LIMITS if e == experiment),
             *(t for t in AUX if t.startswith(f"{experiment}_"))]
    return [f"{R}/tables/{stem}.parquet" for stem in stems]


FIT_FILES = {"exponents": "exponents.csv", "forms": "forms.csv", "frontier": "frontier.csv",
             "diagnostics": "diagnostics.parquet", "diverged": "diverged.csv"}


def fit_outputs(experiment):
    """One experiment's fit: its exponent rows, joint forms, compute frontier, fit diagnostics and diverged points."""
    return {k: f"{R}/tables/fits/{experiment}_{name}" for k, name in FIT_FILES.items()}


def runs(experiment, kind):
    table = {"exact": EXACT, "mc": MONTECARLO, "baselines": BASELINES, "followup": FOLLOWUPS}[kind]
    return sorted(f"{R}/runs/{experiment}/{kind}/{stem}.parquet" for (e, stem) in table if e == experiment)


def notebook_outputs(nb):
    return [f"{R}/notebooks/{nb}.{ext}" for ext in ("ipynb", "html", "provenance.json")] + [
        f"{R}/figures/{nb}.{ext}" for ext in ("png", "pdf", "json", "layout.json")]


def final_targets():
    out = [f"{R}/tables/{e}.parquet" for e in ENABLED] + [f"{R}/tables/{e}.csv" for e in ENABLED]
    out += [f"{R}/tables/{t}.parquet" for t in AUX] + [f"{R}/tables/{t}.csv" for t in AUX]
    out += [f"{R}/tables/exponents.csv", f"{R}/tables/exponents.md", f"{R}/index.html"]
    for nb in ACTIVE_NOTEBOOKS:
        out += notebook_outputs(nb)
    return out


def provenance_params():
    commit, dirty = git_state(workflow.basedir)
    return {"config_hash": canonical_hash(science(config)), "git_commit": commit, "git_dirty": dirty}


def notebook_caption(notebook):
    """The figure's report caption (report/<notebook>.rst, generated by `make captions`); a notebook added since then
    still gets a caption that points to it."""
    path = Path(workflow.basedir, "report", f"{notebook}.rst")
    return path.read_text() if path.exists() else f"See notebooks/{notebook}.ipynb for this figure's caption."
