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


@pytest.mark.parametrize("experiment,a,b,variable", [
    ("source", 2.0, 1.5, "M"),
    pytest.param("source", 2.0, 1.5, "N_eff", marks=pytest.mark.xfail(reason=(
        "dominance window empty at M = 1024 (approx never below 10 % of R - sigma^2); margin-rule row is -0.234"))),
    pytest.param("source", 2.0, 3.0, "M", marks=pytest.mark.xfail(reason=(
        "b > a: measured -1.80 vs -2 on the default grid (variance/finite-size); open question for the next stop"))),
    ("compute", 1.5, 1.5, "M_star"),
    pytest.param("compute", 2.0, 2.0, "M_star", marks=pytest.mark.xfail(reason=(
        "measured 0.283 vs 1/3: theory holds up to log factors ((C/log C)^(1/(a+1))), not yet fitted that way"))),
    ("compute", 1.5, 1.5, "reducible_star"), ("compute", 2.0, 2.0, "reducible_star"),
])
def test_extension_exponents(exponents, experiment, a, b, variable):
    method = "frontier slope" if experiment == "compute" else "window slope (dominance)"
    r = _row(exponents, experiment, variable, a, b, method=method)
    if isinstance(r.flag, str) and "short-window" in r.flag:
        pytest.fail(f"no admissible window: {r.window}")
    assert abs(r.fitted - r.theory) <= 0.03, r.to_dict()
    assert r.ci_low <= r.fitted <= r.ci_high and math.isfinite(r.ci_low)
