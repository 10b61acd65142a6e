"""The primary estimates hold for exponents nobody tuned on: tests/configs/generalization.yaml (a = 1.75, 2.6 and a
source condition b = 1.3), run by the unchanged rules, recovers every theorem exponent within ±0.02."""

import math

import pandas as pd
import pytest

from sketchlaw import theory

from .harness import REPO, snakemake, workdir

CONFIG = REPO / "tests" / "configs" / "generalization.yaml"


@pytest.mark.workflow
@pytest.mark.slow
def test_primary_estimates_recover_untuned_exponents(request, tmp_path_factory, tmp_path):
    wd = workdir(request.config, tmp_path_factory, "generalization")
    results = tmp_path / "results"
    target = results / "tables" / "exponents.csv"
    run = snakemake(request.config, wd, target, "--cores", "2", "--configfile", CONFIG,
                    "--config", f"results_dir={results}", log=tmp_path / "generalization.log", timeout=2400)
    assert run.returncode == 0, run.tail()
    primary = pd.read_csv(target).query("estimator == 'primary'")
    expected = {("main", 1.75, 1.75): theory.exponents("main", 1.75), ("main", 2.6, 2.6): theory.exponents("main", 2.6),
                ("source", 2.6, 1.3): theory.exponents("source", 2.6, 1.3)}
    seen = 0
    for (experiment, a, b), slopes in expected.items():
        for variable, value in slopes.items():
            row = primary[(primary["experiment"] == experiment) & (primary["a"] == a) & (primary["b"] == b)
                          & (primary["variable"] == variable)]
            assert len(row) == 1, (experiment, a, b, variable)
            fitted = float(row["fitted"].iloc[0])
            assert math.isfinite(fitted) and abs(fitted - value) <= 0.02, (experiment, a, b, variable, fitted, value)
            assert row["verdict"].iloc[0] in ("consistent", "pre-asymptotic"), row.to_dict("records")
            seen += 1
    assert seen == 6
