"""Every schema-valid config runs to the end or is refused before any job starts (issue: degenerate grids).

tests/configs/degenerate.yaml holds each experiment's degenerate grid (one M, one N, no Monte Carlo, one seed, one
budget, unstable step sizes); it must run to the end, its slopes must say why they were not fitted, and a config that
would leave an experiment with nothing to run must be refused up front, naming the field.
"""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from sketchlaw import registry
from sketchlaw.grid import ConfigError, check_config

from .test_workflow import REPO, snakemake, workdir

DEGENERATE = REPO / "tests" / "configs" / "degenerate.yaml"


@pytest.mark.slow
def test_degenerate_grids_run_to_the_end(request, tmp_path_factory, tmp_path):
    wd = workdir(request.config, tmp_path_factory, "degenerate")
    results = tmp_path / "results"
    run = snakemake(request.config, wd, "--cores", "2", "--configfile", DEGENERATE,
                    "--config", f"results_dir={results}", log=tmp_path / "degenerate.log", timeout=1800)
    assert run.returncode == 0, run.tail()
    config = yaml.safe_load(DEGENERATE.read_text())
    for nb in registry.active_notebooks(config):
        assert (results / "figures" / f"{nb}.png").stat().st_size > 0, nb
    assert "appendix_monte_carlo" not in registry.active_notebooks(config)  # no Monte Carlo block: not in the DAG
    exponents = pd.read_csv(results / "tables" / "exponents.csv")
    main = exponents[exponents["experiment"] == "main"]
    assert len(main) and main["verdict"].str.startswith("not fitted: ").all(), main[["variable", "verdict"]]
    assert (main["reason"].fillna("") != "").all()
    stepsize = pd.read_parquet(results / "tables" / "stepsize.parquet")
    assert (stepsize["gamma"] < stepsize["gamma_max"]).all() and len(stepsize) >= 1


def test_an_experiment_left_with_nothing_to_run_is_refused_up_front():
    config = yaml.safe_load(DEGENERATE.read_text())
    config["experiments"]["stepsize"]["gamma"] = [2.0, 3.0]
    with pytest.raises(ConfigError, match=r"experiments\.stepsize\.gamma"):
        check_config(config)
