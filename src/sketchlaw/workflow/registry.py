"""The one registry of experiments: what each experiment is, what is computed for it and what reads its tables.

The schema's semantic checks (``grid.check_config``), the workflow's targets (rules/common.smk), the fit step
(``analysis.exponent_table``), the results page and the tests all read this registry. Adding an experiment means one
entry here, its block in the config (and the schema) and its notebook.
"""

from __future__ import annotations

from dataclasses import dataclass

FOLLOWUP_KINDS = ("schedules", "batch", "reuse")
# Columns every follow-up table has (besides its own): the slice, the sketch and the settings.
FOLLOWUP_COLUMNS = ("experiment", "spectrum", "a", "b", "prior", "M", "d", "gamma", "sigma2", "sketch_seed")
EXACT_COLUMNS = ("experiment", "spectrum", "a", "b", "prior", "M", "d", "N", "N_eff", "gamma", "sigma2",
                 "sketch_seed", "risk", "approx", "bias", "variance", "reducible")


@dataclass(frozen=True)
class Notebook:
    """A figure notebook that reads one experiment's table; ``needs`` names config blocks it cannot do without."""

    name: str
    needs: tuple = ()


@dataclass(frozen=True)
class Aux:
    """An auxiliary table <experiment>_<name>.parquet, its own job; ``needs`` names the config key it needs."""

    name: str
    needs: str = ""


@dataclass(frozen=True)
class Experiment:
    """One experiment of the config.

    kind      how its grid expands into jobs (grid.plan): scaling (an N grid), compute (a budget grid C = M·N),
              variance (an N grid plus least-squares and ridge baselines), stepsize (a grid of γ; unstable γ dropped);
              the follow-ups (FOLLOWUP_KINDS): schedules (every schedule of the block at every N, one exact job per
              sketch family), batch (every batch size B at every N, one exact job per sketch family), reuse
              (multi-pass Monte Carlo over an L grid, one job per sketch family); sketches (as scaling, once per
              sketch family of its ``sketches`` list: column ``sketch`` in its table); dataset (a real dataset as the
              population: one job per sketch seed with every M, the exact Gaussian-equivalent curves and real-data SGD
              by Monte Carlo); covariates (non-Gaussian coordinate laws: one Monte Carlo job of full-dimensional
              SGD per (law, M, sketch seed) on the ``montecarlo`` grid, column ``coordinates``, beside the
              Gaussian exact curve on the same sketches over the block's larger grid and every Monte Carlo point)
    analyses  what the fit step computes from its table (``sketchlaw.analysis.table.ANALYSES``): scaling (primary
              and window slopes), montecarlo (Monte Carlo slopes), joint (the comparison of joint functional forms),
              compute (the frontier); schedules, batch, reuse (the follow-ups' rows)
    limit     whether the fit needs the M = ∞ limit (the N_eff slopes' primary quantity)
    theory    the theory its rows are checked against: the key of ``theory.exponents`` (the analysis reads it)
    aux       auxiliary tables <name>_<aux>.parquet of the experiment that its fit and its notebooks also read
              (schedules: ``claim``, the unsketched schedule comparison, and ``finite``, the finite-size theory of
              its window rows)
    """

    name: str
    kind: str
    analyses: tuple = ()
    notebooks: tuple = ()
    limit: bool = False
    theory: str | None = None
    columns: tuple = EXACT_COLUMNS
    aux: tuple = ()

    @property
    def grid_key(self) -> str:
        """The config key of its sample-size grid."""
        return "C" if self.kind == "compute" else "N"

    def aux_tables(self, block: dict | None = None) -> list[str]:
        """Stems of its auxiliary tables (results/tables/<stem>.parquet); given its config block, only those whose
        needed key it has."""
        return [f"{self.name}_{t.name}" for t in self.aux if block is None or not t.needs or (block or {}).get(t.needs)]


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("main", "scaling", ("scaling", "montecarlo", "joint"),
               (Notebook("fig1_risk_landscape"), Notebook("fig2_scaling_fits"), Notebook("fit_diagnostics"),
                Notebook("appendix_monte_carlo", needs=("montecarlo",))), limit=True, theory="main"),
    Experiment("source", "scaling", ("scaling", "joint"), (Notebook("source_condition"),), limit=True,
               theory="source"),
    Experiment("logpower", "scaling", ("scaling",), (Notebook("log_power_law"),), limit=True, theory="logpower"),
    Experiment("compute", "compute", ("compute",), (Notebook("compute_optimal"),), theory="compute",
               aux=(Aux("theory"),),
               columns=EXACT_COLUMNS + ("compute", "refined")),
    Experiment("variance", "variance", (), (Notebook("variance_vs_model_size"),),
               columns=EXACT_COLUMNS + ("method", "ridge_lambda")),
    Experiment("stepsize", "stepsize", (), (Notebook("stepsize"),), columns=EXACT_COLUMNS + ("gamma_max",)),
    # Beyond the paper (docs/METHODS.md §18): step-size schedules, mini-batches, multi-pass SGD with data reuse.
    Experiment("schedules", "schedules", ("schedules",), (Notebook("schedules"),), theory="schedules",
               aux=(Aux("claim", needs="claim"), Aux("finite")),
               columns=FOLLOWUP_COLUMNS + ("schedule", "kind", "N", "N_eff", "pieces", "risk", "approx", "bias",
                                           "variance", "reducible")),
    Experiment("batch", "batch", ("batch",), (Notebook("batch"),), theory="batch",
               columns=FOLLOWUP_COLUMNS + ("N", "B", "T", "T_eff", "step_rule", "gamma_B", "capped", "risk",
                                           "approx", "bias", "variance", "reducible", "variance_predictor")),
    Experiment("reuse", "reuse", ("reuse",), (Notebook("reuse"),), theory="reuse",
               columns=FOLLOWUP_COLUMNS + ("N", "L", "repeats", "mc_trials", "mc_mean", "mc_sem", "reducible",
                                           "onepass_L_reducible", "onepass_N_reducible", "approx")),
    # Beyond the paper's assumptions (docs/METHODS.md §19): the scaling experiment on other sketch families.
    Experiment("sketches", "sketches", ("scaling", "montecarlo"), (Notebook("sketch_families"),), limit=True,
               theory="source", columns=EXACT_COLUMNS + ("sketch",)),
    # A real dataset's spectrum (docs/METHODS.md §20): its Gaussian equivalent, exact, beside SGD on the real features.
    Experiment("digits", "dataset", ("dataset",), (Notebook("real_data"),), theory="source",
               aux=(Aux("spectrum"),),
               columns=("experiment", "dataset", "M", "d", "gamma", "sketch_seed", "N", "N_eff", "risk", "approx",
                        "bias", "variance", "reducible", "mc_trials", "mc_mean", "mc_sem", "mc_diverged")),
    # Covariates with non-Gaussian coordinates (docs/METHODS.md §21): full-dimensional SGD by Monte Carlo per law,
    # beside the Gaussian exact curve on the same sketches; the stability thresholds on a small d (aux table).
    Experiment("covariates", "covariates", ("covariates",), (Notebook("covariates"),), limit=True, theory="source",
               aux=(Aux("stability", needs="stability"),),
               columns=FOLLOWUP_COLUMNS + ("coordinates", "kurtosis", "N", "N_eff", "mc_trials", "mc_mean", "mc_sem",
                                           "mc_diverged", "risk", "approx", "reducible", "gamma_max_gaussian")),
)}
KINDS = ("scaling", "compute", "variance", "stepsize", "sketches", "dataset", "covariates") + FOLLOWUP_KINDS


# Notebooks that are interactive apps, not figures: they compute (through sketchlaw.api) where a figure notebook only
# reads tables, so they have no CAPTION, no papermill parameters and no place in the workflow, the gallery or the
# report; the figure notebooks' checks skip them by this name only.
APP_NOTEBOOKS = {"explore": "the live explorer of the exact engine (`make explore`)"}


def figure_notebook_paths(notebook_dir) -> list:
    """The figure notebooks (``*.ipynb``) in ``notebook_dir``, sorted: every notebook but the apps."""
    from pathlib import Path

    return sorted(p for p in Path(notebook_dir).glob("*.ipynb") if p.stem not in APP_NOTEBOOKS)


def notebooks() -> dict[str, str]:
    """Every notebook → the experiment whose table it reads."""
    return {nb.name: e.name for e in EXPERIMENTS.values() for nb in e.notebooks}


def enabled(config: dict) -> list[str]:
    """The config's experiments, in registry order."""
    return [name for name in EXPERIMENTS if name in (config.get("experiments") or {})]


def active_notebooks(config: dict) -> list[str]:
    """Notebooks whose experiment is enabled and whose needed config blocks are present."""
    out = []
    for name in enabled(config):
        block = config["experiments"][name]
        out += [nb.name for nb in EXPERIMENTS[name].notebooks if all(block.get(k) for k in nb.needs)]
    return out


def aux_tables(config: dict) -> list[str]:
    """Auxiliary tables of the enabled experiments (e.g. schedules_claim), in registry order."""
    return [t for name in enabled(config) for t in EXPERIMENTS[name].aux_tables(config["experiments"][name])]
