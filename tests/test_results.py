"""Checks on the numbers of a finished replication run (reads results/tables; never simulates).

These run against the directory in $SKETCHLAW_RESULTS (default: results/) when its tables were produced by the
default config.yaml (matching config hash); otherwise they skip and say why. `make replicate` then `make test`
runs them on the real run.
"""

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sketchlaw.provenance import canonical_hash

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("SKETCHLAW_RESULTS", ROOT / "results"))


def _default_config_hash():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg.pop("results_dir", None)
    return canonical_hash(cfg)


@pytest.fixture(scope="module")
def exponents():
    prov_file, table = RESULTS / "provenance.json", RESULTS / "tables" / "exponents.csv"
    if not table.exists() or not prov_file.exists():
        pytest.skip(f"no finished run under {RESULTS} (run `make replicate` first)")
    if json.loads(prov_file.read_text())["config_hash"] != _default_config_hash():
        pytest.skip(f"{RESULTS} was not produced by the default config.yaml")
    return pd.read_csv(table)


def _row(df, experiment, variable, a, b=None, method="window slope (dominance)"):
    sel = (df.experiment == experiment) & (df.variable == variable) & (df.a == a) & (df.method == method)
    if b is not None:
        sel &= df.b == b
    assert sel.sum() == 1, (experiment, variable, a, b, method)
    return df[sel].iloc[0]


@pytest.mark.parametrize("a,variable,tol", [(1.5, "M", 0.02), (2.0, "M", 0.02), (2.0, "N_eff", 0.02)])
def test_main_exponents_within_tolerance_of_theory(exponents, a, variable, tol):
    r = _row(exponents, "main", variable, a)
    assert abs(r.fitted - r.theory) <= tol, r.to_dict()
    assert r.ci_low <= r.fitted <= r.ci_high


def test_a15_n_slope_is_reported_honestly(exponents):
    """At a = 1.5 the approximation error never drops below 10 % of R − σ² on the default grid: the dominance window
    is too short and the margin-rule slope is biased; the table must say so rather than print a number."""
    dom = _row(exponents, "main", "N_eff", 1.5)
    margin = _row(exponents, "main", "N_eff", 1.5, method="window slope (margin)")
    assert (isinstance(dom.flag, str) and "short-window" in dom.flag) or abs(dom.fitted - dom.theory) <= 0.02
    if abs(margin.fitted - margin.theory) > 0.02:
        assert margin.verdict != "consistent"


BEST_FORM = "best held-out form"


def _best_form_row(df, experiment, variable, a, b):
    sel = ((df.experiment == experiment) & (df.variable == variable) & (df.a == a) & (df.b == b)
           & df.method.str.contains(BEST_FORM, regex=False))
    assert sel.sum() == 1, (experiment, variable, a, b)
    return df[sel].iloc[0]


@pytest.mark.parametrize("a,variable", [(1.5, "M"), (1.5, "N_eff"), (2.0, "M"), (2.0, "N_eff")])
def test_joint_fit_of_the_best_form_recovers_the_four_main_exponents(exponents, a, variable):
    """The form is chosen by held-out-corner extrapolation (not by closeness to theory); its exponents must then be
    within 0.02 of the theorem's, with a bootstrap interval around them."""
    r = _best_form_row(exponents, "main", variable, a, a)
    assert abs(r.fitted - r.theory) <= 0.02, r.to_dict()
    assert r.ci_low <= r.fitted <= r.ci_high and math.isfinite(r.ci_low)


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


@pytest.mark.parametrize("experiment,a,b,variable,method", [
    ("source", 2.0, 1.5, "M", "window slope (dominance)"),
    ("source", 2.0, 1.5, "N_eff", BEST_FORM),
    ("source", 2.0, 1.5, "M", BEST_FORM),
    pytest.param("source", 2.0, 2.5, "M", "window slope (dominance)", marks=pytest.mark.xfail(strict=True, reason=(
        "pre-asymptotic, not a simulation error: fitted -1.458 on M in [32, 1024] vs -1.5; the deterministic "
        "equivalent's slope on the same window is -1.457 (test_m_slopes_equal_the_finite_size_theory), and its "
        "correction decays only as M^-(a+1-b) = M^-0.5"))),
    ("compute", 1.5, 1.5, "M_star", "frontier slope"),
    ("compute", 2.0, 2.0, "M_star", "frontier slope"),
    ("compute", 1.5, 1.5, "N_star", "frontier slope"),
    ("compute", 2.0, 2.0, "N_star", "frontier slope"),
    ("compute", 1.5, 1.5, "reducible_star", "frontier slope"),
    ("compute", 2.0, 2.0, "reducible_star", "frontier slope"),
])
def test_extension_exponents(exponents, experiment, a, b, variable, method):
    if method == BEST_FORM:
        r = _best_form_row(exponents, experiment, variable, a, b)
    else:
        r = _row(exponents, experiment, variable, a, b, method=method)
    if isinstance(r.flag, str) and "short-window" in r.flag:
        pytest.fail(f"no admissible window: {r.window}")
    assert abs(r.fitted - r.theory) <= 0.03, r.to_dict()
    assert r.ci_low <= r.fitted <= r.ci_high and math.isfinite(r.ci_low)
