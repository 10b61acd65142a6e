"""The files a research repository is expected to have, and what users' own tools do with them: LICENSE,
CITATION.cff, the workflow catalog file, the GitHub Actions workflow (actionlint; its steps are the README's
commands), config/README.md and the report captions (generated, no drift), the condensed terminal output, and
the Snakemake report and provenance of the shared config/test.yaml run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from .harness import NOTEBOOKS, load_test_config, shared_run, snakemake

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILE = ROOT / ".github" / "workflows" / "ci.yml"
sys.path.insert(0, str(ROOT / "scripts" / "dev"))
sys.path.insert(0, str(ROOT / "scripts"))
import captions  # noqa: E402
import condense_log  # noqa: E402
import config_doc  # noqa: E402


def _tool(name: str) -> str:
    for candidate in (Path(sys.executable).with_name(name), ROOT / ".venv" / "bin" / name, ROOT / ".tools" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: `make install` installs it")
    return found


# ---------------------------------------------------------------------------------------------------------------
# LICENSE, CITATION.cff, .snakemake-workflow-catalog.yml
# ---------------------------------------------------------------------------------------------------------------


def test_license_is_the_mit_license_that_pyproject_declares():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "the sketchlaw authors" in text
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()


CFFCONVERT = "cffconvert==2.0.0"  # run in its own tool environment: it pins jsonschema < 4, the workflow needs 4


def _cffconvert_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("uv"), "tool", "run", "--from", CFFCONVERT, "cffconvert", "--validate", "-i",
                           str(path)], capture_output=True, text=True, timeout=600)


def test_citation_cff_is_valid(tmp_path):
    run = _cffconvert_validate(ROOT / "CITATION.cff")
    assert run.returncode == 0, run.stdout + run.stderr
    broken = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    del broken["authors"]  # required by the schema: the validator must reject it
    (tmp_path / "CITATION.cff").write_text(yaml.safe_dump(broken))
    assert _cffconvert_validate(tmp_path / "CITATION.cff").returncode != 0


def test_citation_cites_the_paper_and_matches_the_package():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert cff["version"] == re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    paper = cff["preferred-citation"]
    assert paper["title"] == "Scaling Laws in Linear Regression: Compute, Parameters, and Data"
    assert [a["family-names"] for a in paper["authors"]] == ["Lin", "Wu", "Kakade", "Bartlett", "Lee"]
    assert paper["year"] == 2024 and "NeurIPS 2024" in paper["collection-title"]
    assert "2406.08466" in paper["doi"] and "2406.08466" in paper["url"]


def test_workflow_catalog_file():
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    usage = catalog["usage"]
    assert usage["software-stack-deployment"]["conda"] is True
    assert usage["report"] is True
    assert set(usage["mandatory-flags"]) == {"desc", "flags"}


# ---------------------------------------------------------------------------------------------------------------
# .github/workflows/ci.yml
# ---------------------------------------------------------------------------------------------------------------


def test_actionlint_passes_on_the_workflow(tmp_path):
    actionlint = _tool("actionlint")
    run = subprocess.run([actionlint, str(WORKFLOW_FILE)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    broken = tmp_path / "ci.yml"  # an undefined context: actionlint must catch it
    broken.write_text(WORKFLOW_FILE.read_text().replace("${{ runner.os }}", "${{ runner.nonexistent_key }}", 1))
    assert subprocess.run([actionlint, str(broken)], capture_output=True, text=True).returncode != 0


def readme_commands() -> set[str]:
    """Every command line of the README's fenced code blocks, comments stripped."""
    text = (ROOT / "README.md").read_text()
    out = set()
    for language, block in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):  # every block, in turn
        if language not in ("", "bash", "sh", "console"):
            continue
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                out.add(command)
    return out


def _steps():
    workflow = yaml.safe_load(WORKFLOW_FILE.read_text())
    return workflow, [(name, step) for name, job in workflow["jobs"].items() for step in job["steps"]]


def test_workflow_runs_the_readmes_commands():
    workflow, steps = _steps()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    commands = readme_commands()
    runs = {step["run"].strip() for _, step in steps if "run" in step}
    assert runs, "no run steps"
    assert runs <= commands, f"steps that are not README commands: {sorted(runs - commands)}"
    ci = [step["run"].strip() for job, step in steps if job == "test-and-artifacts" and "run" in step]
    assert {"make install", "make test", ".venv/bin/snakemake --lint", "make check-science", "make ci-artifacts"} <= set(ci)
    assert ci.index("make test") < ci.index("make check-science"), ci  # the same order as .ci/run
    ci_run = (ROOT / ".ci" / "run").read_text()  # `step COMMAND` runs COMMAND there, timed
    assert re.search(r"^step make test$.*^step make check-science$", ci_run, re.M | re.S), ci_run


def test_workflow_pins_actions_caches_uv_and_uploads_the_artifacts():
    _, steps = _steps()
    uses = [step["uses"] for _, step in steps if "uses" in step]
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", u) for u in uses), uses
    caches = [step for _, step in steps if step.get("uses", "").startswith("actions/cache@")]
    assert caches and all("hashFiles('uv.lock')" in c["with"]["key"] for c in caches)
    cache_dir = yaml.safe_load(WORKFLOW_FILE.read_text())["env"]["UV_CACHE_DIR"]
    assert all(c["with"]["path"] == cache_dir for c in caches)
    paths = [step["with"]["path"] for _, step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    for results in ("results_ci", "results"):
        for part in ("figures/", "tables/", "report.zip"):
            assert any(f"{results}/{part}" in path.split() for path in paths), (results, part)


# ---------------------------------------------------------------------------------------------------------------
# generated documentation: config/README.md, report captions
# ---------------------------------------------------------------------------------------------------------------


def test_every_config_key_is_described():
    schema = config_doc.load()
    assert config_doc.undescribed(schema) == []
    documented = {dotted for dotted, _, _ in config_doc.keys(schema, schema)}
    for key in ("results_dir", "defaults.tail", "defaults.sigma2", "experiments.main", "experiments.<name>.M",
                "experiments.<name>.montecarlo.trials", "experiments.<name>.ridge.lambdas"):
        assert key in documented, key
    undescribed = {"type": "object", "description": "x", "properties": {"k": {"type": "integer"}}}
    assert config_doc.undescribed(undescribed) == ["k"]


def test_config_readme_is_generated_from_the_schema():
    expected = config_doc.render(config_doc.load())
    assert (ROOT / "config" / "README.md").read_text() == expected, "config/README.md drifted: run `make config-doc`"


def test_report_captions_are_generated_from_the_notebooks():
    expected = captions.expected()
    assert {p.stem for p in expected} == set(NOTEBOOKS)
    for path, text in expected.items():
        assert path.exists() and path.read_text() == text, f"{path.name} drifted: run `make captions`"


def test_caption_comes_from_the_caption_cell_else_the_first_heading(tmp_path):
    def notebook(*cells):
        path = tmp_path / "nb.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": kind, "source": src} for kind, src in cells]}))
        return path

    heading_only = notebook(("markdown", "intro\n# The heading\ntext"), ("code", "x = 1"))
    assert captions.caption_source(heading_only)[0] == "The heading"
    with_caption = notebook(("markdown", "# The heading"), ("code", 'CAPTION = """R − σ² against *M*; |x|"""'))
    assert captions.caption_source(with_caption)[0] == "R − σ² against *M*; |x|"
    assert "\\|x\\|" in captions.render(with_caption)


# ---------------------------------------------------------------------------------------------------------------
# terminal output of `make replicate`
# ---------------------------------------------------------------------------------------------------------------


def test_condensed_output_keeps_errors_and_every_twentieth_of_progress():
    jobs = 400
    lines = ["Building DAG of jobs...", "Job stats:", "job  count", "all  1", ""]
    for i in range(1, jobs + 1):
        lines += ["Select jobs to execute...", "Execute 1 jobs...", "", "[Tue Dec  1 22:57:03 2026]",
                  "rule problem:", "    output: x", "    jobid: 4", "    reason: Missing output files: x", "",
                  "[Tue Dec  1 22:57:03 2026]", f"Finished jobid: {i} (Rule: problem)",
                  f"{i} of {jobs} steps ({100 * i / jobs:.0f}%) done"]
    lines += ["Error in rule fit:", "    jobid: 7", "    log: results/logs/fit.log (check log file(s) for error details)",
              "Traceback (most recent call last):", "Exiting because a job execution failed. Look below for error messages"]
    out = list(condense_log.condense(lines))
    progress = [line for line in out if " steps (" in line]
    assert len(progress) == condense_log.STEPS + 1  # the first step, then one every 5 %
    assert f"{jobs} of {jobs} steps (100%) done" in out
    assert out[-5:] == lines[-5:]  # the error block whole
    assert not any("reason:" in line or "Finished jobid" in line or line.startswith("[") for line in out)
    assert len(out) < 40


@pytest.mark.workflow
def test_condensed_output_of_the_test_run_is_short(request, tmp_path_factory):
    """The shared run (no profile: Snakemake's full output) condensed; it has as many lines as a default run."""
    shared = shared_run(request.config, tmp_path_factory)
    full = shared.run.output.splitlines()
    out = list(condense_log.condense(full))
    assert len(full) > 300 and len(out) <= 60, (len(full), len(out))


# ---------------------------------------------------------------------------------------------------------------
# the shared config/test.yaml run: Snakemake report, provenance
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_snakemake_report_has_every_figure_and_table(request, tmp_path_factory):
    shared = shared_run(request.config, tmp_path_factory)
    report = shared.results.parent / "report.zip"
    run = snakemake(request.config, shared.workdir, "--report", report, *shared.args,
                    log=shared.results.parent / "report.log", timeout=1200)
    assert run.returncode == 0, run.tail()
    names = zipfile.ZipFile(report).namelist()
    figures = sorted(p.name for p in (shared.results / "figures").glob("*.png"))
    assert len(figures) == len(NOTEBOOKS)
    for name in figures + [f"{e}.csv" for e in load_test_config(request.config, tmp_path_factory)["experiments"]]:
        assert any(n.endswith("/" + name) for n in names), f"{name} missing from the report"
    assert any(n.endswith("/provenance.json") for n in names)
    html = "".join(zipfile.ZipFile(report).read(n).decode(errors="replace") for n in names
                              if n.endswith(".html") or n.endswith(".js"))
    assert "config/test.yaml" in html and "Scaling Laws in Linear Regression" in html


@pytest.mark.workflow
def test_provenance_names_and_embeds_the_config(request, tmp_path_factory):
    shared = shared_run(request.config, tmp_path_factory)
    prov = json.loads((shared.results / "provenance.json").read_text())
    assert prov["config_file"] == "config/test.yaml"
    expected = load_test_config(request.config, tmp_path_factory)
    expected.pop("results_dir")
    assert {k: prov["config"][k] for k in expected} == expected
    assert "results_dir" not in prov["config"]


def test_config_file_label():
    from sketchlaw.workflow.provenance import config_file_label

    assert config_file_label([], ROOT) == "config.yaml (default)"
    assert config_file_label([str(ROOT / "config" / "paper.yaml")], ROOT) == "config/paper.yaml"
    assert config_file_label(["/elsewhere/my.yaml"], ROOT) == "/elsewhere/my.yaml"
