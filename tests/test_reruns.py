"""What a change reruns (tests/configs/reruns.yaml: two experiments): provenance is recorded, never a rerun trigger,
so a commit of the docs reruns only the page; editing one notebook reruns that notebook and the page; changing one
experiment's block reruns that experiment's jobs, its fit, its notebook, the gathered tables and the page only."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from .harness import background, background_log, background_result, job_stats, snakemake, workdir

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
COMPUTE = {"train_exact", "train_montecarlo", "train_baselines", "train_followup", "train_limit",
           "schedule_claim", "schedule_finite", "frontier_theory", "aggregate", "fit"}


@background("finished")
def _finished(config, factory):
    wd = workdir(config, factory, "reruns")
    path = factory.mktemp("reruns-config") / "reruns.yaml"
    path.write_text((wd / "tests" / "configs" / "reruns.yaml").read_text())
    args = ("--cores", "2", "--configfile", path, "--config", f"results_dir={wd / 'results-reruns'}")
    run = snakemake(config, wd, *args, log=background_log(config, "finished", path.parent / "run.log"), timeout=1800)
    return wd, path, args, run


@pytest.fixture(scope="session")
def finished(request, tmp_path_factory):
    """A work directory (a git checkout) with the rerun config run to the end (a background run: tests/harness.py)."""
    wd, config, args, run = background_result(request.config, tmp_path_factory, "finished")
    assert run.returncode == 0, run.tail()
    return wd, config, args


def _planned(request, wd, args, log) -> tuple[dict, str]:
    """({rule: jobs} that `snakemake -n` plans, its output)."""
    run = snakemake(request.config, wd, "-n", *args, log=log, timeout=600)
    assert run.returncode == 0, run.tail()
    return {rule: n for rule, n in job_stats(run.output).items() if rule not in ("all", "total")}, run.output


def _git(wd, *args):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=wd, check=True,
                   capture_output=True)


def test_editing_one_notebook_reruns_that_notebook_and_the_page(request, finished, tmp_path):
    wd, _, args = finished
    path = wd / "notebooks" / "batch.ipynb"
    text, stat = path.read_text(), path.stat()
    nb = json.loads(text)
    nb["cells"][0]["source"].append("\nEdited.")
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    try:
        planned, output = _planned(request, wd, args, tmp_path / "notebook.log")
    finally:  # as it was, for the next test
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    planned.pop("provenance", None)  # the tree is dirty now: recorded, and the page says so
    assert planned == {"notebook": 1, "report": 1} and "notebook=batch" in output, planned


def test_a_commit_of_the_docs_reruns_only_the_page(request, finished, tmp_path):
    wd, _, args = finished
    (wd / "docs" / "METHODS.md").write_text((wd / "docs" / "METHODS.md").read_text() + "\nA new sentence.\n")
    _git(wd, "add", "docs/METHODS.md")
    _git(wd, "commit", "-qm", "docs only")
    assert _planned(request, wd, args, tmp_path / "docs.log")[0] == {"provenance": 1, "report": 1}


def test_changing_one_experiment_reruns_that_experiment_only(request, finished, tmp_path):
    wd, config, args = finished
    cfg = yaml.safe_load(config.read_text())
    cfg["experiments"]["stepsize"]["gamma"] = [0.05, 0.2, 0.3]
    config.write_text(yaml.safe_dump(cfg))
    planned, output = _planned(request, wd, args, tmp_path / "config.log")
    assert "experiment=batch" not in output and "notebook=batch" not in output, output  # nothing of the other one
    assert set(planned) <= COMPUTE | {"provenance", "notebook", "exponents", "report"}, planned
    assert planned.get("notebook") == 1 and planned.get("fit") == 1 and planned.get("aggregate") == 1, planned
