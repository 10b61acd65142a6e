"""Checks on the numbers of a finished replication run (reads results/tables; never simulates).

These run against the directory in $SKETCHLAW_RESULTS (default: results/) when its tables were produced by the
default config.yaml (matching config hash); otherwise they skip and say why, or fail where a run is required
(SKETCHLAW_REQUIRE_RESULTS=1: `make check-science`, which CI runs after the replication).
"""

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sketchlaw.workflow import registry
from sketchlaw.workflow.provenance import canonical_hash

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("SKETCHLAW_RESULTS", ROOT / "results"))


def _default_config_hash():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg.pop("results_dir", None)
    return canonical_hash(cfg)


def finished(*files: str) -> list[Path]:
    """The files (relative to the results directory) of a finished default run; skip, or fail where a run is
    required, when there is none."""
    missing = pytest.fail if os.environ.get("SKETCHLAW_REQUIRE_RESULTS") == "1" else pytest.skip
    prov_file, paths = RESULTS / "provenance.json", [RESULTS / f for f in files]
    if not prov_file.exists() or not all(p.exists() for p in paths):
        missing(f"no finished run under {RESULTS} (run `make replicate` first)")
    if json.loads(prov_file.read_text())["config_hash"] != _default_config_hash():
        missing(f"{RESULTS} was not produced by the default config.yaml")
    return paths


@pytest.fixture(scope="module")
def exponents():
    return pd.read_csv(finished("tables/exponents.csv")[0])


def _row(df, experiment, variable, a, b=None, estimator="primary", schedule=None):
    sel = (df.experiment == experiment) & (df.variable == variable) & (df.a == a) & (df.estimator == estimator)
    if b is not None:
        sel &= df.b == b
    if schedule is not None:
        sel &= df.schedule == schedule
    assert sel.sum() == 1, (experiment, variable, a, b, estimator)
    return df[sel].iloc[0]


PRIMARY = [("main", 1.5, 1.5, "M"), ("main", 1.5, 1.5, "N_eff"), ("main", 2.0, 2.0, "M"), ("main", 2.0, 2.0, "N_eff"),
           ("source", 2.0, 1.5, "M"), ("source", 2.0, 1.5, "N_eff"),
           ("compute", 1.5, 1.5, "M_star"), ("compute", 1.5, 1.5, "N_star"), ("compute", 1.5, 1.5, "reducible_star"),
           ("compute", 2.0, 2.0, "M_star"), ("compute", 2.0, 2.0, "N_star"), ("compute", 2.0, 2.0, "reducible_star")]


@pytest.mark.parametrize("experiment,a,b,variable", PRIMARY)
def test_primary_estimate_within_001_of_theory(exponents, experiment, a, b, variable):
    """The primary estimate of every power-law theorem exponent is within ±0.01 of the theorem on the default grid."""
    r = _row(exponents, experiment, variable, a, b)
    assert abs(r.fitted - r.theory) <= 0.01, r.to_dict()
    if math.isfinite(r.ci_low):
        assert r.ci_low <= r.fitted <= r.ci_high, r.to_dict()


@pytest.mark.parametrize("experiment,a,b,variable", [row for row in PRIMARY if row[3] == "N_eff"]
                         + [("logpower", 2.0, None, "log_N_eff"), ("logpower", 3.0, None, "log_N_eff")])
def test_n_eff_extrapolation_holds_the_theorem(exponents, experiment, a, b, variable):
    """The N_eff rows' extrapolation (the exact M = ∞ limit run far beyond the grid) lands within ±0.01 of the theorem
    and its interval holds it, the slowly converging log power law included."""
    r = _row(exponents, experiment, variable, a, b)
    assert abs(r.extrapolated - r.theory) <= 0.01, r.to_dict()
    assert r.extrapolated_low <= r.theory <= r.extrapolated_high, r.to_dict()


@pytest.mark.parametrize("experiment,a,b,variable", [row for row in PRIMARY if row[0] == "compute"])
def test_compute_frontier_extrapolation_is_tight_and_holds_the_theorem(exponents, experiment, a, b, variable):
    """The frontier rows beside their finite-size theory (the deterministic equivalent's continuous frontier, within
    0.01 of the estimate), their extrapolation within 0.005 of the theorem, its interval at most ±0.02 and holding it."""
    r = _row(exponents, experiment, variable, a, b)
    assert r.verdict in ("consistent", "pre-asymptotic"), r.to_dict()
    assert math.isfinite(r.theory_finite) and abs(r.fitted - r.theory_finite) <= 0.01, r.to_dict()
    assert abs(r.extrapolated - r.theory) <= 0.005, r.to_dict()
    assert r.extrapolated_low <= r.theory <= r.extrapolated_high, r.to_dict()
    assert max(r.extrapolated - r.extrapolated_low, r.extrapolated_high - r.extrapolated) <= 0.02, r.to_dict()


def test_every_row_has_a_verdict_of_the_vocabulary_and_none_disagrees(exponents):
    allowed = ("consistent", "pre-asymptotic", "disagrees", "no theory")
    assert set(exponents.verdict) <= set(allowed) | {"not fitted"}, exponents.verdict.unique()
    disagree = exponents[exponents.verdict == "disagrees"]
    assert disagree.empty, disagree[["experiment", "variable", "a", "b", "estimator", "fitted", "theory"]].to_string()


@pytest.mark.parametrize("notebook", registry.active_notebooks(yaml.safe_load((ROOT / "config.yaml").read_text())))
def test_every_figure_is_drawn_and_reads_cleanly(notebook):
    """Each figure of the default run exists as PNG and PDF, its executed notebook as HTML, the PNG is a real image
    (not blank: its pixels vary), and its layout check at the saved size found nothing."""
    png, pdf, layout, html = finished(f"figures/{notebook}.png", f"figures/{notebook}.pdf",
                                      f"figures/{notebook}.layout.json", f"notebooks/{notebook}.html")
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert min(pixels.shape[:2]) >= 300 and pixels[..., :3].std() > 0.02, (pixels.shape, pixels[..., :3].std())
    assert pdf.read_bytes().startswith(b"%PDF") and html.stat().st_size > 10_000
    assert json.loads(layout.read_text())["problems"] == []


@pytest.mark.parametrize("experiment,a,b,variable", [
    ("main", 1.5, 1.5, "M"), ("main", 2.0, 2.0, "M"), ("source", 2.0, 1.5, "M"), ("source", 2.0, 2.5, "M"),
    ("logpower", 2.0, None, "log_M"), ("logpower", 3.0, None, "log_M"),
])
def test_m_slopes_equal_the_finite_size_theory(exponents, experiment, a, b, variable):
    """Every M slope against the deterministic equivalent's slope on the same window (theory_finite): the simulated
    approximation error and the theory must agree at these sizes, including where the asymptotic exponent is far
    (the log power law)."""
    r = _row(exponents, experiment, variable, a, b)
    assert math.isfinite(r.theory_finite), r.to_dict()
    assert abs(r.fitted - r.theory_finite) <= 0.01, r.to_dict()


@pytest.mark.parametrize("experiment,a,b,variable", [
    ("main", 1.5, 1.5, "M"), ("main", 2.0, 2.0, "M"), ("source", 2.0, 1.5, "M"), ("source", 2.0, 2.5, "M"),
    ("logpower", 2.0, None, "log_M"),
])
def test_m_extrapolation_holds_the_theorem(exponents, experiment, a, b, variable):
    """The M rows' extrapolation (the estimate corrected by the deterministic equivalent's own computed convergence)
    lands within ±0.01 of the theorem and its interval holds it, b = 2.5 > a included (its window slope is 0.024
    off, converging as M^-(a+1-b))."""
    r = _row(exponents, experiment, variable, a, b)
    assert abs(r.extrapolated - r.theory) <= 0.01, r.to_dict()
    assert r.extrapolated_low <= r.theory <= r.extrapolated_high, r.to_dict()


@pytest.mark.parametrize("variable,schedule", [("N_eff", "geometric"), ("N", "power decay to 0 (q = 3)")])
def test_schedule_claim_primaries_within_001_of_theory(exponents, variable, schedule):
    """The unsketched schedule comparison (default block, a = b = 2): the geometric decay against N_eff and the
    power decay to zero against N are within ±0.01 of −(b − 1)/a."""
    r = _row(exponents, "schedules", variable, 2.0, 2.0, schedule=schedule)
    assert abs(r.fitted - r.theory) <= 0.01, r.to_dict()


def test_power_decay_removes_the_log_factor():
    """docs/METHODS.md §18: at the claim's largest N the power decay's local slope against N is within 0.002 of
    −(b − 1)/a, while the geometric decay's is off by more than 0.02 (its log factor) and sits within 0.002 of the
    local slope of N_eff^−(b−1)/a on the same N (the fit step's rows, as the figure plots them)."""
    diag = pd.read_parquet(finished("tables/fit_diagnostics.parquet")[0])
    diag = diag[(diag["experiment"] == "schedules") & diag["kind"].isin(["local_slope_primary", "local_slope_theory"])]
    last = diag[diag["x"] == diag["x"].max()].set_index(["kind", "schedule"])["value"]
    theory = -(2.0 - 1) / 2.0
    power, geometric = "power decay to 0 (q = 3)", "geometric"
    assert abs(last["local_slope_primary", power] - theory) <= 0.002, last
    assert abs(last["local_slope_primary", geometric] - theory) > 0.02, last
    assert abs(last["local_slope_primary", geometric] - last["local_slope_theory", geometric]) <= 0.002, last
