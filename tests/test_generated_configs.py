"""Generated configurations (issue 24): a schema-valid config is either refused by the planner, naming a field, or
run by the workflow to the end.

Hypothesis draws small configurations across every experiment (one to three experiments; grids with one or several
values; a from just above 1 to large; b on both sides of a; σ² = 0 among others; every schedule, schedule kind, log
base and tail; tiny d) from strategies built on the enums and bounds of ``schemas/config.schema.yaml``. Each draw is
checked against the schema, then planned in-process (``grid.check_config``, ``grid.plan``): a refusal must be a
ConfigError naming a field of the config. An accepted draw is run by ``snakemake --cores 2`` in one working copy of
the repository (shared by the draws, so numba compiles once) into a results directory of its own; it must finish,
write every table with finite results on the points that did not diverge, list the diverged points
(``tables/diverged.csv``) and the results page.

Budget: ``SKETCHLAW_CONFIG_EXAMPLES`` draws (default 3: `make test`); `make test-configs` runs 100. Hypothesis keeps
its database of draws in .hypothesis/ (not in git). The five configurations quoted in the issue are explicit tests
below (tests/configs/issue24_*.yaml).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sketchlaw.workflow.grid import ConfigError, check_config, plan, stability_warnings
from sketchlaw.workflow.registry import EXPERIMENTS

from .harness import REPO, background, background_log, background_result, snakemake, snapshot, workdir

SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
DEFS = SCHEMA["definitions"]
EXAMPLES = int(os.environ.get("SKETCHLAW_CONFIG_EXAMPLES", "3"))
FINITE = ("risk", "approx", "bias", "variance", "excess", "reducible")

pytestmark = pytest.mark.workflow


def enum(*path):
    node = SCHEMA
    for key in path:
        node = node[key]
    return node["enum"]


SPECTRA = enum("definitions", "experiment", "properties", "spectrum")
SCHEDULES = enum("properties", "defaults", "properties", "schedule")
LOG_BASES = enum("properties", "defaults", "properties", "log_base")
TAILS = enum("properties", "defaults", "properties", "tail")
KINDS = enum("definitions", "schedule", "properties", "kind")
STEP_RULES = DEFS["experiment"]["properties"]["step_rules"]["items"]["enum"]


# ---------------------------------------------------------------------------------------------- strategies

def grid(values, min_size=1, max_size=3):
    """A sorted, distinct grid (the planner refuses others, naming the field: tests/test_config_validation.py)."""
    return st.lists(values, min_size=min_size, max_size=max_size, unique=True).map(sorted)


exponents = st.sampled_from([1.05, 1.1, 1.25, 1.5, 1.75, 2.0, 3.0, 6.0])
model_sizes = grid(st.integers(1, 32))
sample_sizes = grid(st.integers(2, 10_000))
step_sizes = st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.5])


@st.composite
def schedule_spec(draw):
    kind = draw(st.sampled_from(KINDS))
    spec = {"kind": kind}
    if kind == "geometric":
        extra = draw(st.sampled_from(["", "phase_factor", "n_phases"]))
        if extra == "phase_factor":
            spec["phase_factor"] = draw(st.sampled_from([0.5, 2.0, 4.0]))
        elif extra == "n_phases":
            spec["n_phases"] = draw(st.integers(1, 8))
    elif kind == "polynomial":
        spec.update(power=draw(st.sampled_from([0.5, 1.0, 2.0])), t0=draw(st.sampled_from([1.0, 10.0])))
    elif kind == "power" and draw(st.booleans()):
        spec["power"] = draw(st.sampled_from([1.0, 3.0]))
    elif kind == "cosine" and draw(st.booleans()):
        spec["final"] = draw(st.sampled_from([0.0, 0.1]))
    elif kind == "wsd":
        spec.update(warmup=draw(st.sampled_from([0.0, 0.1])), decay=draw(st.sampled_from([0.1, 0.5, 1.0])))
    return spec


@st.composite
def experiment_block(draw, name: str):
    kind = EXPERIMENTS[name].kind
    if kind == "dataset":  # the real dataset: its own keys (no spectrum, no a), its γ below the schema's 2/3
        block = {"dataset": "digits", "M": draw(model_sizes), "N": draw(sample_sizes),
                 "modes": draw(st.sampled_from([[10, 300], [5, 20], [300, 800]])), "bootstrap": 2}
        if draw(st.booleans()):
            block["gamma"] = draw(st.sampled_from([0.05, 0.2, 0.5]))
        if draw(st.booleans()):
            block["montecarlo"] = {"trials": draw(st.integers(2, 5)), "M": [block["M"][-1]], "N": [block["N"][0]]}
        return block
    if kind == "covariates":  # full-dimensional Monte Carlo: tail none, small d, a few trials
        block = {"spectrum": "power", "a": draw(grid(exponents, max_size=2)), "M": draw(grid(st.integers(1, 8))),
                 "N": draw(grid(st.integers(2, 500), max_size=2)), "tail": "none", "d_per_M": draw(st.integers(1, 4)),
                 "coordinates": draw(st.lists(st.sampled_from(["gaussian", "rademacher", "student5", "student12",
                                                               "bernoulli0.3", "bernoulli1"]),
                                              min_size=1, max_size=3, unique=True))}
        block["montecarlo"] = {"trials": draw(st.integers(2, 5)), "M": draw(grid(st.integers(1, 8))),
                               "N": block["N"][:draw(st.integers(1, len(block["N"])))]}
        for key, values in (("gamma", step_sizes), ("schedule", st.sampled_from(SCHEDULES)),
                            ("sigma2", st.sampled_from([0.0, 1.0]))):
            if draw(st.booleans()):
                block[key] = draw(values)
        if draw(st.booleans()):
            M = draw(st.integers(2, 6))
            block["stability"] = {"d": draw(st.integers(M, 10)), "M": M, "steps": draw(st.integers(4, 50)),
                                  "trials": draw(st.integers(2, 5))}
        return block
    follow = kind in ("schedules", "batch", "reuse")
    block = {"spectrum": draw(st.sampled_from(SPECTRA) if not follow else
                              st.sampled_from(["power"] * 5 + SPECTRA)),
             "a": draw(grid(exponents, max_size=2)),
             "M": draw(model_sizes)}
    if name in ("source", "reuse") or draw(st.integers(0, 5)) == 0:
        a = block["a"][0]
        block["b"] = draw(grid(st.sampled_from(sorted({1.05, 1.5, a, a + 1.0, 2 * a})), max_size=2))
    if kind == "compute":
        block["C"] = draw(grid(st.integers(4, 100_000)))
    else:
        block["N"] = draw(sample_sizes if kind != "reuse" else grid(st.integers(2, 200), max_size=2))
    if kind in ("scaling", "sketches") and draw(st.booleans()):
        block["montecarlo"] = {"trials": draw(st.integers(2, 5)), "M": [block["M"][0]],
                               "N": draw(grid(st.integers(2, 500), max_size=2))}
    if kind == "variance":
        block["ridge"] = {"trials": draw(st.integers(2, 5)), "lambdas": draw(grid(st.sampled_from([1e-3, 0.1, 1.0])))}
    if kind == "stepsize":
        block["gamma"] = draw(grid(step_sizes, max_size=4))
    if kind == "schedules":
        block["schedules"] = draw(st.lists(schedule_spec(), min_size=1, max_size=3))
        if draw(st.booleans()):
            block["claim"] = {"N": draw(grid(st.integers(16, 10_000), max_size=2))}
    if kind == "batch":
        block["B"] = draw(grid(st.integers(1, 64)).map(lambda b: sorted({1, *b})))
        block["step_rules"] = draw(st.lists(st.sampled_from(STEP_RULES), min_size=1, max_size=3, unique=True))
    if kind == "sketches":
        block["sketches"] = draw(st.lists(st.sampled_from(["gaussian", "rademacher", "sparse1", "sparse3", "srht"]),
                                          min_size=1, max_size=3, unique=True))
    if kind == "reuse":
        block["L"] = draw(grid(st.integers(2, 400)))
        block["trials"] = draw(st.integers(2, 5))
    for key, values in (("gamma", step_sizes), ("tail", st.sampled_from(TAILS)),
                        ("log_base", st.sampled_from(LOG_BASES)), ("schedule", st.sampled_from(SCHEDULES)),
                        ("sigma2", st.sampled_from([0.0, 1.0]))):
        if key not in block and draw(st.integers(0, 3)) == 0:
            block[key] = draw(values)
    return block


@st.composite
def configs(draw):
    names = draw(st.lists(st.sampled_from(list(EXPERIMENTS)), min_size=1, max_size=3, unique=True))
    defaults = {"sigma2": draw(st.sampled_from([0.0, 0.5, 1.0])), "gamma": draw(step_sizes),
                "schedule": draw(st.sampled_from(SCHEDULES)), "log_base": draw(st.sampled_from(LOG_BASES)),
                "d_per_M": draw(st.integers(1, 4)), "d_min": draw(st.sampled_from([1, 8, 32, 64])),
                "tail": draw(st.sampled_from(TAILS)),
                "sketch_seeds": draw(grid(st.integers(0, 5), max_size=2))}
    return {"defaults": defaults, "experiments": {name: draw(experiment_block(name)) for name in names}}


# ---------------------------------------------------------------------------------------------- checks

def field_exists(config: dict, field: str) -> bool:
    """Whether a refusal's dotted field path (e.g. experiments.main.gamma, experiments.schedules.schedules[0].t0)
    names the config's own keys, up to the key it found missing or wrong."""
    parts = field.replace("]", "").replace("[", ".").split(".")
    node = config
    for i, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and part in config.get("defaults", {}) and parts[0] == "experiments":
            return True  # an inherited default, named where the experiment uses it
        else:
            return i == len(parts) - 1  # the last key may be the missing one (e.g. a required grid)
    return True


def check_results(results: Path, config: dict) -> None:
    """Every table written with finite results on its usable points, diverged points listed, the page there."""
    assert (results / "index.html").is_file()
    diverged = pd.read_csv(results / "tables" / "diverged.csv")
    n_div = 0
    for name in config["experiments"]:
        df = pd.read_parquet(results / "tables" / f"{name}.parquet")
        mask = df["diverged"].to_numpy(dtype=bool)
        n_div += int(mask.sum())
        if mask.any():
            assert (df.loc[mask, "gamma_max"] <= df.loc[mask].get("gamma_B", df.loc[mask, "gamma"])).all()
        for col in FINITE:
            if col in df:
                assert np.isfinite(df.loc[~mask, col].to_numpy(dtype=float)).all(), (name, col)
    assert int(diverged["diverged"].sum()) == n_div  # (the others: batch curves left out with their reference)
    assert not list(results.rglob("*.tmp*")), "half-written files left behind"


class Runner:
    """One working copy for every draw of the session (numba's cache is then compiled once). Each draw's outcome is
    appended to ``generated_configs.log`` in pytest's base temp directory (JSON lines: what was refused, naming
    which field; what ran, in how many seconds, with how many diverged points)."""

    def __init__(self, request, factory):
        self.request, self.factory = request, factory
        self.wd = None
        self.count = 0
        self.log = factory.getbasetemp() / "generated_configs.log"

    def note(self, config: dict, **outcome) -> None:
        with open(self.log, "a") as fh:
            fh.write(json.dumps({"experiments": sorted(config["experiments"]), **outcome}) + "\n")

    def run(self, config: dict):
        if self.wd is None:
            base = snapshot(self.request.config, self.factory)
            self.wd = self.factory.mktemp("generated") / "repo"
            shutil.copytree(base, self.wd, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
        self.count += 1
        case = self.wd.parent / f"case{self.count}"
        case.mkdir()
        path = case / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        run = snakemake(self.request.config, self.wd, "--cores", "2", "--configfile", path, "--config",
                        f"results_dir={case / 'results'}", log=case / "snakemake.log", timeout=900)
        return run, case


@pytest.fixture(scope="module")
def runner(request, tmp_path_factory):
    return Runner(request, tmp_path_factory)


def check_one(runner: Runner, config: dict) -> str:
    """Refused naming a field, or run to the end; returns 'refused' or 'ran'."""
    jsonschema.validate(config, SCHEMA)
    try:
        check_config(config)
    except ConfigError as err:
        runner.note(config, outcome="refused", field=err.field)
        assert field_exists(config, err.field), f"refusal names no field of the config: {err}"
        return "refused"
    plan(config)
    warnings = stability_warnings(config)
    run, case = runner.run(config)
    runner.note(config, outcome="ran" if run.returncode == 0 else "failed", case=case.name,
                seconds=round(run.seconds, 1), warnings=len(warnings))
    assert run.returncode == 0, f"accepted config failed ({case}):\n{yaml.safe_dump(config)}\n{run.tail(60)}"
    check_results(case / "results", config)
    runner.note(config, outcome="checked", case=case.name,
                diverged=len(pd.read_csv(case / "results" / "tables" / "diverged.csv")))
    shutil.rmtree(case / "results")
    return "ran"


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(config=configs())
def test_generated_config_is_refused_naming_a_field_or_runs_to_the_end(runner, config):
    check_one(runner, config)


# ---------------------------------------------------------------------------------------------- the issue's five

ISSUE = sorted(p.name for p in (REPO / "tests" / "configs").glob("issue24_*.yaml"))


@background("issue_runs")
def _issue_runs(config, factory) -> dict:
    """Each issue config run by the workflow, one after another in a copy of its own (a background run:
    tests/harness.py); {name: (run, case directory)}."""
    wd = workdir(config, factory, "issue-configs")
    out = {}
    for name in ISSUE:
        case = wd.parent / name.removesuffix(".yaml")
        case.mkdir()
        log = background_log(config, "issue_runs", case / "snakemake.log")
        out[name] = snakemake(config, wd, "--cores", "2", "--configfile", REPO / "tests" / "configs" / name,
                              "--config", f"results_dir={case / 'results'}", log=log, timeout=900), case
    return out


@pytest.fixture(scope="session")
def issue_runs(request, tmp_path_factory) -> dict:
    return background_result(request.config, tmp_path_factory, "issue_runs")


@pytest.mark.slow
@pytest.mark.parametrize("name", ISSUE)
def test_issue_config_runs_to_the_end_or_is_refused_before_any_job(issue_runs, name):
    config = yaml.safe_load((REPO / "tests" / "configs" / name).read_text())
    run, case = issue_runs[name]
    try:
        check_config(config)
    except ConfigError as err:  # the workflow refuses it too, before any job
        assert run.returncode != 0 and "Invalid configuration" in run.output and err.field in run.output
        assert not (case / "results").exists(), "a refused config created results"
        return
    assert run.returncode == 0, run.tail(60)
    check_results(case / "results", config)


def test_issue_configs_present():
    assert len(ISSUE) == 6, ISSUE  # five quoted configurations (main at a = 1.25 and at a = 1.1) and the one mode
