"""sketchlaw: exact and Monte Carlo simulation of sketched linear regression trained by one-pass SGD.

The package is layered (imports point downwards only; tests/test_layers.py):
  engine/     the model and its simulators: spectra, problems, schedules, the exact engine, the M = ∞ limit,
              Monte Carlo SGD, multi-pass reuse, the naive reference, baselines
  theory/     the theorems' rates, exponents and regimes (rates), and deterministic equivalents (equivalents)
  workflow/   the experiment registry, grid planning, the jobs, seeds' coordinates, provenance and table I/O
  analysis/   estimators and the exponent table (reads tables; never runs an engine)
  api         the engine as a library call: risk tables, the M = ∞ limit, compute-optimal M*, stability bounds
  present/    the notebooks' plotting helpers, the results page and the live explorer
The engine's main names and the api's functions are importable from here too (``from sketchlaw import ExactEngine,
risk_curve``); they are loaded on first use, so ``import sketchlaw`` alone loads no compiled kernel.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "ExactEngine": "sketchlaw.engine.exact", "critical_step_size": "sketchlaw.engine.exact",
    "build_problem": "sketchlaw.engine.problem", "Problem": "sketchlaw.engine.problem",
    "Spectrum": "sketchlaw.engine.spectra", "Prior": "sketchlaw.engine.spectra",
    "Schedule": "sketchlaw.engine.schedules", "monte_carlo": "sketchlaw.engine.sgd",
    "limit_curve": "sketchlaw.engine.limit",
    # the engine as a library call (README: "Use the engine from Python")
    "risk_curve": "sketchlaw.api", "limit_risk_curve": "sketchlaw.api", "compute_optimal": "sketchlaw.api",
    "stability_bound": "sketchlaw.api", "rates": "sketchlaw.theory.rates", "exponents": "sketchlaw.theory.rates",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sketchlaw' has no attribute {name!r}")
