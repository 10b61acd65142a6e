"""Bad configurations are rejected before any job runs, with a message naming the field and the allowed values.

Each case is config/test.yaml with one small mutation. The workflow test runs the real command
``snakemake --cores 1 --configfile BAD.yaml --config results_dir=<tmp>/results`` in a fresh copy of the repository
(so config.yaml sits next to the Snakefile, as for a user) and checks: non-zero exit, the output names the offending
field (dotted path, or the JSON-schema path / key) and shows the allowed values or range, and nothing at all was
created under results_dir. The Snakemake runs are started two at a time in the background when the module starts
(each spends ~10 s parsing, mostly in ``snakemake.utils.validate``); a run that starts creating results is killed
as soon as results_dir appears.

The semantic checks (what the schema cannot express) are also tested directly on ``sketchlaw.workflow.grid.check_config``.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import pytest
import yaml

from sketchlaw.workflow.grid import ConfigError, check_config, plan, truncation

from .harness import REPO, SNAKEMAKE, sm_env, snapshot, workdir

BASE = yaml.safe_load((REPO / "config" / "test.yaml").read_text())


def fld(*keys: str) -> str:
    """Regex for a config field given as a dotted path or as the JSON-schema instance path ['a']['b']..."""
    dotted = r"\.".join(keys)
    bracket = "".join(rf"\['{k}'\]" for k in keys)
    return rf"(?:\b{dotted}\b|{bracket})"


TYPE_NUMBER = r"'type': 'number'|is not of type 'number'"
TYPE_INTEGER = r"'type': 'integer'|is not of type 'integer'"


@dataclass
class Case:
    id: str
    mutate: Callable[[dict], None]
    field: list            # regexes that must all match the output (the offending field)
    allowed: list          # regexes that must all match the output (allowed values or range)
    raw: Callable[[str], str] | None = None  # edit of the YAML text (for YAML-level mistakes)
    marks: tuple = ()


def _set(path: str, value):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


def _del(path: str):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        del node[last]
    return mutate


def _rename(path: str, new: str):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[new] = node.pop(last)
    return mutate


def _add_experiment(name: str, like: str):
    def mutate(cfg):
        cfg["experiments"][name] = copy.deepcopy(cfg["experiments"][like])
    return mutate


CASES = [
    Case("sigma2_string", _set("defaults.sigma2", "one"), [fld("defaults", "sigma2")], [TYPE_NUMBER]),
    Case("a_string_abc", _set("experiments.main.a", ["abc", 2.0]), [fld("experiments", "main", "a")], [TYPE_NUMBER]),
    Case("N_string_1e3", _set("experiments.main.N", ["1e3", 10000, 100000]), [fld("experiments", "main", "N")],
         [TYPE_INTEGER]),
    Case("gamma_yaml_exponent_without_dot", lambda c: None, [fld("defaults", "gamma")], [TYPE_NUMBER],
         # YAML 1.1 reads 1e-1 (no dot) as the *string* '1e-1'
         raw=lambda text: re.sub(r"(?m)^(\s+gamma:) 0\.1\s*$", r"\1 1e-1", text, count=1)),
    Case("N_float", _set("experiments.main.N", [1000.5, 10000]), [fld("experiments", "main", "N")], [TYPE_INTEGER]),
    Case("a_equal_1", _set("experiments.main.a", [1.0, 2.0]), [fld("experiments", "main", "a")],
         [r"'exclusiveMinimum': 1\b|values > 1"]),
    Case("b_below_1", _set("experiments.source.b", [0.5, 3.0]), [fld("experiments", "source", "b")],
         [r"'exclusiveMinimum': 1\b|values > 1"]),
    Case("M_above_d_via_d_per_M_0", lambda c: c["experiments"]["main"].update(d_per_M=0, d_min=4),
         [fld("experiments", "main", "d_per_M")], [r"'minimum': 1\b"]),
    Case("M_zero", _set("experiments.main.M", [0, 8, 16]), [fld("experiments", "main", "M")], [r"'minimum': 1\b"]),
    Case("empty_grid", _set("experiments.main.N", []), [fld("experiments", "main", "N")],
         [r"'minItems': 1\b|non-empty"]),
    Case("unsorted_grid", _set("experiments.main.M", [16, 8, 32, 64]), [fld("experiments", "main", "M")],
         [r"sorted in increasing order"]),
    Case("duplicate_grid", _set("experiments.main.N", [1000, 1000, 10000]), [fld("experiments", "main", "N")],
         [r"distinct values"]),
    Case("duplicate_sketch_seeds", _set("defaults.sketch_seeds", [0, 0]), [r"sketch_seeds"], [r"distinct values"]),
    Case("unknown_experiment", _add_experiment("mainn", "main"), [r"'mainn'"],
         [r"'main'.*'source'.*'logpower'|one of main, source"]),
    Case("unknown_spectrum", _set("experiments.main.spectrum", "exponential"), [fld("experiments", "main", "spectrum")],
         [r"\['power', 'logpower'\]"]),
    Case("misspelled_sigma_2", _rename("defaults.sigma2", "sigma_2"), [r"'sigma_2'", fld("defaults")],
         [r"'sigma2'"]),
    Case("missing_N", _del("experiments.main.N"), [r"'N' is a required property", fld("experiments", "main")],
         [r"'required': \[.*'N'"]),
    Case("negative_sigma2", _set("defaults.sigma2", -1.0), [fld("defaults", "sigma2")], [r"'minimum': 0\b"]),
    Case("gamma_zero", _set("defaults.gamma", 0.0), [fld("defaults", "gamma")], [r"'exclusiveMinimum': 0\b"]),
    Case("gamma_negative_in_list", _set("experiments.stepsize.gamma", [-0.1, 0.2]),
         [fld("experiments", "stepsize", "gamma")], [r"'exclusiveMinimum': 0\b"]),
    Case("gamma_divergent", _set("defaults.gamma", 5.0), [r"\bexperiments\.\w+\.gamma\b|\bdefaults\.gamma\b"],
         [r"0 < gamma < 0\.\d+"]),
    Case("N_too_small_for_schedule", _set("experiments.main.N", [1, 1000, 10000]), [fld("experiments", "main", "N")],
         [r"values >= 2"]),
    Case("montecarlo_M_not_subset", _set("experiments.main.montecarlo.M", [8, 12]),
         [fld("experiments", "main", "montecarlo", "M")], [r"a subset of experiments\.main\.M = \[8, 16, 32, 64\]"]),
    Case("ridge_lambda_zero", _set("experiments.variance.ridge.lambdas", [0.0, 0.1]),
         [fld("experiments", "variance", "ridge", "lambdas")], [r"'exclusiveMinimum': 0\b"]),
    Case("montecarlo_trials_1", _set("experiments.main.montecarlo.trials", 1),
         [fld("experiments", "main", "montecarlo", "trials")], [r"'minimum': 2\b"]),
    Case("ridge_trials_1", _set("experiments.variance.ridge.trials", 1),
         [fld("experiments", "variance", "ridge", "trials")], [r"'minimum': 2\b"]),
    Case("schedule_unknown", _set("defaults.schedule", "cosine"), [fld("defaults", "schedule")],
         [r"\['geometric', 'constant'\]"]),
    Case("log_base_unknown", _set("defaults.log_base", "3"), [fld("defaults", "log_base")],
         [r"\['e', '2', '10'\]"]),
    Case("b_with_logpower_spectrum", _set("experiments.logpower.b", [2.0]), [fld("experiments", "logpower", "b")],
         [r"only with spectrum 'power'"]),
    Case("compute_budget_too_small", _set("experiments.compute.C", [1, 100000]), [fld("experiments", "compute", "C")],
         [r"values >= 2"]),
    Case("tail_unknown", _set("defaults.tail", "exact"), [fld("defaults", "tail")], [r"\['mean', 'none'\]"]),
    Case("d_min_zero", _set("experiments.main.d_min", 0), [fld("experiments", "main", "d_min")], [r"'minimum': 1\b"]),
]
CASES_BY_ID = {c.id: c for c in CASES}
assert len(CASES_BY_ID) == len(CASES) >= 20


def bad_config_text(case: Case) -> str:
    cfg = copy.deepcopy(BASE)
    case.mutate(cfg)
    text = yaml.safe_dump(cfg, sort_keys=False)
    if case.raw:
        new = case.raw(text)
        assert new != text, f"{case.id}: the YAML edit did not apply"
        text = new
    return text


@dataclass
class BadRun:
    returncode: int | None
    output: str
    created: list = field(default_factory=list)
    started: bool = False   # results_dir appeared: the workflow began running jobs (killed at once)
    timed_out: bool = False


def run_bad_config(config: pytest.Config, factory: pytest.TempPathFactory, case: Case, timeout: float = 600) -> BadRun:
    wd = workdir(config, factory, f"bad-{case.id}")
    cfg = wd.parent / "bad.yaml"
    cfg.write_text(bad_config_text(case))
    results = wd.parent / "results"
    log = wd.parent / "snakemake.log"
    cmd = [str(SNAKEMAKE), "--cores", "1", "--configfile", str(cfg), "--config", f"results_dir={results}"]
    started = timed_out = False
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=wd, env=sm_env(config, wd), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if results.exists() or time.monotonic() > deadline:
                started, timed_out = results.exists(), not results.exists()
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                break
            time.sleep(0.2)
    created = sorted(str(p.relative_to(results)) for p in results.rglob("*")) if results.exists() else []
    if results.exists():
        created = created or ["(results_dir itself)"]
    return BadRun(proc.returncode, log.read_text(errors="replace"), created, started, timed_out)


@pytest.fixture(scope="module")
def bad_runs(request, tmp_path_factory):
    """Start the Snakemake run of every selected case, two at a time; {case id: future}."""
    wanted = [item.callspec.params["case"].id for item in request.session.items
              if item.originalname == "test_bad_config_is_rejected_by_the_workflow"
              and hasattr(item, "callspec")]
    snapshot(request.config, tmp_path_factory)  # set up the snapshot (and the basetemp) before the threads start
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {cid: pool.submit(run_bad_config, request.config, tmp_path_factory, CASES_BY_ID[cid]) for cid in wanted}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


# End to end through Snakemake, one case per way a config is refused: a wrong type, YAML's reading of 1e-3 as a
# string, a missing field, an unknown experiment (the schema), a divergent step size, a Monte Carlo grid outside the
# main grid and repeated seeds (check_config). Every case, these included, is refused in-process above and below.
END_TO_END = ("sigma2_string", "gamma_yaml_exponent_without_dot", "missing_N", "unknown_experiment",
              "gamma_divergent", "montecarlo_M_not_subset", "duplicate_sketch_seeds")


@pytest.mark.workflow
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES if c.id in END_TO_END])
def test_bad_config_is_rejected_by_the_workflow(bad_runs, case):
    res = bad_runs[case.id].result()
    summary = f"[{case.id}] exit {res.returncode}; output tail:\n" + "\n".join(res.output.splitlines()[-40:])
    assert not res.started, f"the workflow started running jobs (created {res.created[:5]}):\n{summary}"
    assert not res.timed_out, summary
    assert res.returncode not in (0, None), summary
    for pattern in case.field:
        assert re.search(pattern, res.output), f"output does not name the field ({pattern!r}):\n{summary}"
    for pattern in case.allowed:
        assert re.search(pattern, res.output, re.S), f"output lacks the allowed values ({pattern!r}):\n{summary}"
    assert not res.created, f"files were created under results_dir: {res.created}"
    assert "Traceback (most recent call last)" not in res.output, f"a traceback instead of a message:\n{summary}"


@pytest.mark.workflow
def test_missing_required_field_is_rejected_without_a_default_config(request, tmp_path_factory):
    """The schema itself requires main.N, whether or not a config.yaml sits beside the Snakefile (which Snakemake
    would deep-merge a --configfile into if the Snakefile loaded it unconditionally)."""
    wd = workdir(request.config, tmp_path_factory, "bad-missing-N-alone")
    (wd / "config.yaml").unlink()
    cfg = wd.parent / "bad.yaml"
    cfg.write_text(bad_config_text(CASES_BY_ID["missing_N"]))
    results = wd.parent / "results"
    proc = subprocess.run([str(SNAKEMAKE), "--cores", "1", "--configfile", str(cfg), "--config",
                           f"results_dir={results}"], cwd=wd, env=sm_env(request.config, wd), capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert re.search(r"'N' is a required property", out) and re.search(fld("experiments", "main"), out), out
    assert not results.exists()


# ----------------------------------------------------------------------------------------------------------------
# sketchlaw.workflow.grid.check_config directly (fast)
# ----------------------------------------------------------------------------------------------------------------

SEMANTIC = [  # (case id, ConfigError.field, text in the message)
    ("unsorted_grid", "experiments.main.M", "sorted in increasing order"),
    ("duplicate_grid", "experiments.main.N", "distinct values"),
    ("duplicate_sketch_seeds", "experiments.main.sketch_seeds", "distinct values"),
    ("gamma_divergent", "experiments.main.gamma", "0 < gamma < "),
    ("N_too_small_for_schedule", "experiments.main.N", "values >= 2"),
    ("montecarlo_M_not_subset", "experiments.main.montecarlo.M", "a subset of experiments.main.M"),
    ("b_with_logpower_spectrum", "experiments.logpower.b", "only with spectrum 'power'"),
    ("compute_budget_too_small", "experiments.compute.C", "values >= 2"),
    ("unknown_experiment", "experiments.mainn", "one of main, source, logpower"),
    ("empty_grid", "experiments.main.N", "a non-empty list"),
    ("a_equal_1", "experiments.main.a", "values > 1"),
    ("b_below_1", "experiments.source.b", "values > 1"),
    ("negative_sigma2", "experiments.main.sigma2", "a number >= 0"),
    ("gamma_zero", "experiments.main.gamma", "a number > 0"),
    ("a_string_abc", "experiments.main.a", "a list of numbers"),
    ("N_float", "experiments.main.N", "a list of integers"),
]


@pytest.mark.parametrize("case_id,field_name,text", SEMANTIC, ids=[s[0] for s in SEMANTIC])
def test_check_config_rejects(case_id, field_name, text):
    cfg = copy.deepcopy(BASE)
    CASES_BY_ID[case_id].mutate(cfg)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert err.value.field == field_name, str(err.value)
    assert field_name in str(err.value) and text in str(err.value) and "allowed" in str(err.value)


def test_check_config_rejects_M_above_d():
    """M > d cannot come through the schema (d_per_M >= 1 makes d = max(d_min, d_per_M·M) >= M); check_config
    still guards it when d_per_M = 0 slips through."""
    cfg = copy.deepcopy(BASE)
    cfg["experiments"]["main"].update(d_per_M=0, d_min=16)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert err.value.field == "experiments.main.M" and "M <= d = 16" in str(err.value)


def test_d_per_M_1_gives_d_equal_M_above_d_min():
    cfg = copy.deepcopy(BASE)
    cfg["experiments"]["main"].update(d_per_M=1, d_min=16, M=[8, 16, 32, 64])
    check_config(cfg)
    s = {**cfg["defaults"], **cfg["experiments"]["main"]}
    assert [truncation(s, M) for M in s["M"]] == [16, 16, 32, 64]


def test_check_config_rejects_no_experiments():
    cfg = copy.deepcopy(BASE)
    cfg["experiments"] = {}
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert err.value.field == "experiments"


@pytest.mark.parametrize("path", ["config.yaml", "config/test.yaml"])
def test_shipped_configs_are_valid(path):
    """The default and the test configuration pass the schema (as Snakemake applies it) and check_config, and
    plan into jobs."""
    from snakemake.utils import validate

    cfg = yaml.safe_load((REPO / path).read_text())
    validate(cfg, str(REPO / "schemas" / "config.schema.yaml"))
    check_config(cfg)
    jobs = plan(cfg)
    assert jobs["problems"] and jobs["exact"] and jobs["montecarlo"] and jobs["baselines"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if c.id not in {s[0] for s in SEMANTIC}])
def test_schema_rejects(case):
    """Cases left to the schema: snakemake.utils.validate raises on each (fast, in-process)."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    cfg = yaml.safe_load(bad_config_text(case))
    with pytest.raises(WorkflowError) as err:
        validate(cfg, str(REPO / "schemas" / "config.schema.yaml"))
    message = "\n".join(str(a) for a in (err.value, *err.value.args, err.value.__cause__) if a is not None)
    for pattern in case.field:
        assert re.search(pattern, message), f"the message does not name the field ({pattern!r}):\n{message}"
    for pattern in case.allowed:
        assert re.search(pattern, message, re.S), f"the message lacks the allowed values ({pattern!r}):\n{message}"
