"""Every schema-valid config runs to the end or is refused before any job starts (issue: degenerate grids).

tests/configs/degenerate.yaml holds each experiment's degenerate grid (one M, one N, no Monte Carlo, one seed, one
budget, unstable step sizes); it must run to the end, its slopes must say why they were not fitted, and a config that
would leave an experiment with nothing to run must be refused up front, naming the field.
"""


import pandas as pd
import pytest
import yaml

from sketchlaw.workflow import registry
from sketchlaw.workflow.grid import ConfigError, check_config

from .harness import REPO, background, background_log, background_result, snakemake, workdir

DEGENERATE = REPO / "tests" / "configs" / "degenerate.yaml"


@background("degenerate_run")
def _degenerate_run(config, factory):
    wd = workdir(config, factory, "degenerate")
    results = wd.parent / "results"
    return results, snakemake(config, wd, "--cores", "2", "--configfile", DEGENERATE, "--config",
                              f"results_dir={results}", log=background_log(config, "degenerate_run",
                                                                            wd.parent / "degenerate.log"), timeout=1800)


@pytest.fixture(scope="session")
def degenerate_run(request, tmp_path_factory):
    """The results directory of tests/configs/degenerate.yaml run to the end (a background run: tests/harness.py)."""
    results, run = background_result(request.config, tmp_path_factory, "degenerate_run")
    assert run.returncode == 0, run.tail()
    return results


@pytest.mark.workflow
@pytest.mark.slow
def test_degenerate_grids_run_to_the_end(degenerate_run):
    results = degenerate_run
    config = yaml.safe_load(DEGENERATE.read_text())
    for nb in registry.active_notebooks(config):
        assert (results / "figures" / f"{nb}.png").stat().st_size > 0, nb
    assert "appendix_monte_carlo" not in registry.active_notebooks(config)  # no Monte Carlo block: not in the DAG
    exponents = pd.read_csv(results / "tables" / "exponents.csv")
    main = exponents[exponents["experiment"] == "main"]
    assert len(main) and (main["verdict"] == "not fitted").all() and (main["reason"] != "").all(), main[["variable", "verdict"]]
    assert (main["reason"].fillna("") != "").all()
    stepsize = pd.read_parquet(results / "tables" / "stepsize.parquet")
    assert (stepsize["gamma"] < stepsize["gamma_max"]).all() and len(stepsize) >= 1
    # the follow-ups: a table each, and every one of their exponent rows says why it has no slope (or no theory)
    for name in registry.FOLLOWUP_KINDS:
        assert len(pd.read_parquet(results / "tables" / f"{name}.parquet")) >= 1, name
        rows = exponents[exponents["experiment"] == name]
        assert len(rows) and (rows["verdict"].isin(["not fitted", "no theory"])).all(), \
            rows[["variable", "estimator", "verdict"]]
    batch = pd.read_parquet(results / "tables" / "batch.parquet")
    assert set(batch["B"]) == {1}, "B = 64 leaves T = 1 update at N = 64: skipped, not run"


def test_an_experiment_left_with_nothing_to_run_is_refused_up_front():
    config = yaml.safe_load(DEGENERATE.read_text())
    config["experiments"]["stepsize"]["gamma"] = [2.0, 3.0]
    with pytest.raises(ConfigError, match=r"experiments\.stepsize\.gamma"):
        check_config(config)


def _followups_config() -> dict:
    config = yaml.safe_load(DEGENERATE.read_text())
    config["experiments"] = {k: v for k, v in config["experiments"].items() if k in registry.FOLLOWUP_KINDS}
    return config


# (experiment, key, value, the field the refusal must name): schema-valid, but nothing (or a crash) would follow
REFUSED = [
    ("batch", "B", [64, 128], r"experiments\.batch\.B'.*B <= N/2"),
    ("batch", "B", [2, 4], r"experiments\.batch\.B'.*includes B = 1"),
    ("batch", "step_rules", ["fixed", "fixed"], r"experiments\.batch\.step_rules"),
    ("batch", "gamma", 3.0, r"experiments\.batch\.gamma"),
    ("reuse", "gamma", 3.0, r"experiments\.reuse\.gamma"),
    ("reuse", "L", [40, 20], r"experiments\.reuse\.L"),
    ("reuse", "N", [100000000], r"experiments\.reuse\.N'.*GiB"),
    ("batch", "spectrum", "logpower", r"experiments\.batch\.spectrum"),
    ("schedules", "schedules", [{"kind": "wsd", "warmup": 0.5, "decay": 0.6}],
     r"experiments\.schedules\.schedules\[0\]\.decay"),
    ("schedules", "schedules", [{"kind": "cosine"}, {"kind": "cosine", "final": 0.0}],
     r"experiments\.schedules\.schedules."),
    ("schedules", "schedules", [{"kind": "geometric", "n_phases": 5000}],
     r"experiments\.schedules\.schedules\[0\]\.n_phases"),
    ("schedules", "gamma", [0.05, 0.1], r"experiments\.schedules\.gamma"),
    ("schedules", "claim", {"N": [8, 1000]}, r"experiments\.schedules\.claim\.N"),
]


@pytest.mark.parametrize("experiment,key,value,field", REFUSED, ids=[f"{e}.{k}-{i}" for i, (e, k, _, _) in
                                                                    enumerate(REFUSED)])
def test_followup_configs_left_with_nothing_to_run_are_refused_up_front(experiment, key, value, field):
    """Each case passes the schema (as Snakemake applies it) and is refused by check_config, naming the field."""
    from snakemake.utils import validate

    config = _followups_config()
    config["experiments"][experiment][key] = value
    validate(config, str(DEGENERATE.parents[2] / "schemas" / "config.schema.yaml"))
    with pytest.raises(ConfigError, match=field):
        check_config(config)


def test_followup_keys_are_refused_outside_their_experiment():
    config = yaml.safe_load(DEGENERATE.read_text())
    config["experiments"]["main"]["B"] = [1, 2]
    with pytest.raises(ConfigError, match=r"experiments\.main\.B'.*only in the batch experiment"):
        check_config(config)


def test_the_degenerate_followups_are_accepted():
    check_config(_followups_config())
