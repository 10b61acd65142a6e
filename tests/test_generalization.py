"""The primary estimates hold for exponents nobody tuned on: tests/configs/generalization.yaml (a = 1.75, 2.6 and a
source condition b = 1.3), run by the unchanged rules, recovers every theorem exponent within ±0.02."""

import math

import pandas as pd
import pytest

from sketchlaw import theory

from .harness import REPO, background, background_log, background_result, snakemake, workdir

CONFIG = REPO / "tests" / "configs" / "generalization.yaml"


@background("generalization_run")
def _generalization_run(config, factory):
    wd = workdir(config, factory, "generalization")
    target = wd.parent / "results" / "tables" / "exponents.csv"
    log = background_log(config, "generalization_run", wd.parent / "generalization.log")
    return target, snakemake(config, wd, target, "--cores", "2", "--configfile", CONFIG,
                             "--config", f"results_dir={wd.parent / 'results'}", log=log, timeout=2400)


@pytest.fixture(scope="session")
def generalization_run(request, tmp_path_factory):
    """exponents.csv of tests/configs/generalization.yaml (a background run: tests/harness.py)."""
    target, run = background_result(request.config, tmp_path_factory, "generalization_run")
    assert run.returncode == 0, run.tail()
    return target


@pytest.mark.workflow
@pytest.mark.slow
def test_primary_estimates_recover_untuned_exponents(generalization_run):
    target = generalization_run
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
