"""The figure notebooks: each holds its own figure code and caption, and each runs to the end on the tiny
configuration's tables and on degenerate tables (one M, one N, one sketch seed, no Monte Carlo rows, no fit
diagnostics, every exponent row 'not fitted'): the notebooks of tests/configs/degenerate.yaml in that config's own
run (tests/test_degenerate.py), the others here on a degenerate subset of the tiny run's tables.

The tables come from one Snakemake run of config/test.yaml per session (tables only, --cores 1, in a copy of the
repository; see tests/test_workflow.py), or from the session's shared full run when another test already made it.
``SKETCHLAW_TEST_TABLES=<results_dir>`` reuses an existing run's results directory instead (for development).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from sketchlaw.present import plotting as slp
from sketchlaw.workflow import registry

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = [p.stem for p in registry.figure_notebook_paths(NOTEBOOK_DIR)]  # the apps (explore) have their own tests
# the notebooks tests/configs/degenerate.yaml's own run does not execute (no experiment of theirs in it, or no Monte
# Carlo block): these run here on degenerate tables cut from the tiny run's
DEGENERATE_RUN_NOTEBOOKS = set(registry.active_notebooks(yaml.safe_load((REPO / "tests" / "configs" /
                                                                         "degenerate.yaml").read_text())))
NOT_IN_DEGENERATE_RUN = [nb for nb in NOTEBOOKS if nb not in DEGENERATE_RUN_NOTEBOOKS]
EXPERIMENT_TABLES = ("main", "source", "logpower", "compute", "variance", "stepsize", "schedules", "batch", "reuse",
                     "sketches", "digits", "covariates")
# auxiliary tables notebooks read (registry ``aux``)
AUX_TABLES = ("schedules_claim", "digits_spectrum", "covariates_stability")
PARAMETER_DEFAULTS = {"tables_dir": "results/tables", "figures_dir": "results/figures",
                      "provenance_path": "results/provenance.json"}
MIN_FIGURE_CODE_LINES = 25
MC_COLUMNS = ("mc_mean", "mc_std", "mc_sem")
NOT_FITTED = "degenerate test grid"

sys.path.insert(0, str(REPO / "scripts" / "dev"))
import gallery  # noqa: E402


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def _figure_code_lines(nb) -> list[str]:
    """Non-blank, non-comment lines of every code cell except the parameters cell."""
    return [line for c in _code_cells(nb) if "parameters" not in c.metadata.get("tags", [])
            for line in c.source.splitlines() if line.strip() and not line.strip().startswith("#")]


# ----------------------------------------------------------------------------------------------------------------
# what the committed notebooks contain
# ----------------------------------------------------------------------------------------------------------------


def test_the_nine_figures_have_notebooks():
    assert set(NOTEBOOKS) >= {"fig1_risk_landscape", "fig2_scaling_fits", "appendix_monte_carlo", "fit_diagnostics",
                              "source_condition", "log_power_law", "compute_optimal", "variance_vs_model_size",
                              "stepsize"}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_clean_and_parameterized(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = _code_cells(nb)
    for c in code:
        assert c.get("outputs") == [], f"{name}: a code cell has outputs"
        assert c.get("execution_count") is None, f"{name}: a code cell has an execution count"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: needs exactly one cell tagged 'parameters'"
    assert code.index(tagged[0]) == 0, "the parameters cell must come before any other code"
    ns: dict = {}
    exec(tagged[0].source, {}, ns)  # the parameters cell is plain assignments
    assert ns == PARAMETER_DEFAULTS
    src = "\n".join(c.source for c in code)
    assert f'NAME = "{name}"' in src, "the notebook must write figures_dir/<its own name>.png|pdf"
    assert "slp.save_figure(fig, paths.figures_dir, NAME, provenance, CAPTION)" in src


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_holds_its_figure_code(name):
    nb = _read(name)
    lines = _figure_code_lines(nb)
    assert len(lines) >= MIN_FIGURE_CODE_LINES, f"{name}: only {len(lines)} lines of figure code"
    src = "\n".join(c.source for c in _code_cells(nb))
    assert not re.search(r"slp\.(fig|table)_", src), f"{name} calls a figure-specific library function"
    used = set(re.findall(r"\bslp\.([A-Za-z_]\w*)", src))
    missing = sorted(u for u in used if not hasattr(slp, u))
    assert not missing, f"{name} uses names sketchlaw.present.plotting does not have: {missing}"
    assert any(re.search(rf"\bax\w*\.({m})\(", src) for m in ("plot", "errorbar", "contourf", "fill_between")) or \
        "slp.errorbar_log(" in src, f"{name}: no plotting call of its own"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_code_step_is_explained_by_a_markdown_cell(name):
    cells = _read(name).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    for i, c in enumerate(cells):
        if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []):
            previous = cells[i - 1]
            assert previous.cell_type == "markdown", f"{name}: code cell {i} has no markdown cell before it"
            prose = [line for line in previous.source.splitlines() if line.strip() and not line.startswith("#")]
            assert prose, f"{name}: the markdown cell before code cell {i} is only a heading"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_one_caption_with_title_and_sentences(name):
    caption = gallery.notebook_caption(NOTEBOOK_DIR / f"{name}.ipynb")
    title, text = slp.split_caption(caption)
    assert 10 <= len(title) <= 120, title
    sentences = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if s]
    assert 2 <= len(sentences) <= 7, f"{name}: {len(sentences)} sentences"
    assert re.search(r"`(window|primary|montecarlo|joint_form|joint_additive)` estimator|No slope is fitted", text), \
        f"{name}: the caption must say which estimator the printed slopes are (or that none is fitted)"
    assert "reader should see" in text, f"{name}: the caption must say what the reader should see"
    # the caption is written only there: no other cell repeats its title
    nb = _read(name)
    assert sum(title in c.source for c in nb.cells) == 1


def test_readme_gallery_is_the_rendering():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = gallery.render(NOTEBOOK_DIR)
    assert block in readme, "README.md's figure table is stale: run .venv/bin/python scripts/dev/gallery.py"
    for name in NOTEBOOKS:
        title, _ = slp.split_caption(gallery.notebook_caption(NOTEBOOK_DIR / f"{name}.ipynb"))
        assert f"| `{name}` | {title} | [notebooks/{name}.ipynb](notebooks/{name}.ipynb) |" in block


def test_gallery_reads_the_caption_without_running_the_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('raise SystemExit\nCAPTION = """T\nx. y."""')])
    nbformat.write(nb, tmp_path / "demo.ipynb")
    assert gallery.notebook_caption(tmp_path / "demo.ipynb") == "T\nx. y."
    nb.cells.append(nbformat.v4.new_code_cell('CAPTION = "again"'))
    nbformat.write(nb, tmp_path / "demo.ipynb")
    with pytest.raises(ValueError, match="one CAPTION"):
        gallery.notebook_caption(tmp_path / "demo.ipynb")


# ----------------------------------------------------------------------------------------------------------------
# the notebooks run: on the tiny run's tables and on a degenerate subset of them
# ----------------------------------------------------------------------------------------------------------------


def _tiny_results(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    """The session's shared config/test.yaml run (test_workflow.shared_run): its tables feed the notebooks here, so
    the suite runs the tiny workflow once, not a second time for its tables alone."""
    from .harness import shared_run

    if os.environ.get("SKETCHLAW_TEST_TABLES"):
        return Path(os.environ["SKETCHLAW_TEST_TABLES"])
    return shared_run(config, factory).results


def contract_view(exponents: pd.DataFrame) -> pd.DataFrame:
    """exponents.csv with every typed column the figures read. A table written before the typed columns existed
    gets them empty: its rows then match no (estimator, quantity) a figure asks for, and every panel says so."""
    missing = [c for c in slp.EXPONENT_COLUMNS if c not in exponents.columns]
    return exponents.reindex(columns=list(exponents.columns) + missing)


def make_degenerate(src: Path, dst: Path) -> None:
    """The tiny run's tables cut down to one M (the smallest) and one N (the largest at that M) per table, the first
    sketch seed only, no Monte Carlo, no fit diagnostics, and every exponent row not fitted."""
    dst.mkdir(parents=True)
    budgets: set[float] = set()
    for name in EXPERIMENT_TABLES:
        df = pd.read_parquet(src / f"{name}.parquet")
        df = df[df["sketch_seed"] == df["sketch_seed"].min()]
        df = df[df["M"] == df["M"].min()]
        df = df[df["N"] == df["N"].max()].copy()
        if "mc_trials" in df.columns:
            df["mc_trials"] = 0
        for c in MC_COLUMNS:
            if c in df.columns:
                df[c] = np.nan
        if name == "compute":
            budgets |= set(df["compute"].astype(float))
        df.to_parquet(dst / f"{name}.parquet")
    for name in AUX_TABLES:  # the unsketched claim at one N: no local slopes; the dataset's spectrum without resamples;
        # the stability thresholds of one law
        df = pd.read_parquet(src / f"{name}.parquet")
        if "N" in df:
            df = df[df["N"] == df["N"].max()]
        else:
            df = df[df["replicate"] == 0] if "replicate" in df else df.iloc[:1]
        df.to_parquet(dst / f"{name}.parquet")
    (dst / "fits").mkdir()
    for path in sorted((src / "fits").iterdir()):  # every experiment's fit: no diagnostics, every row not fitted
        if path.name.endswith("_frontier.csv"):
            frontier = pd.read_csv(path)
            frontier[frontier["compute"].astype(float).isin(budgets)].to_csv(dst / "fits" / path.name, index=False)
        elif path.name.endswith("_diagnostics.parquet"):
            pd.read_parquet(path).iloc[0:0].to_parquet(dst / "fits" / path.name)
        elif path.name.endswith("_exponents.csv"):
            e = contract_view(pd.read_csv(path))
            for c in ("fitted", "intercept", "ci_low", "ci_high", "x_lo", "x_hi", "fixed_value"):
                e[c] = np.nan
            e["verdict"], e["reason"] = "not fitted", NOT_FITTED
            e.to_csv(dst / "fits" / path.name, index=False)
        else:
            shutil.copy(path, dst / "fits" / path.name)


@pytest.fixture(scope="session")
def notebook_inputs(request, tmp_path_factory) -> dict[str, Path]:
    """{variant: directory with tables/ and provenance.json} for the variant 'degenerate' (the tiny tables themselves
    are what the shared run's notebook jobs ran on: tests/test_workflow.py checks those notebooks)."""
    results = _tiny_results(request.config, tmp_path_factory)
    root = tmp_path_factory.mktemp("notebook-inputs")
    make_degenerate(results / "tables", root / "degenerate" / "tables")
    shutil.copy(results / "provenance.json", root / "degenerate" / "provenance.json")
    return {"degenerate": root / "degenerate"}


@pytest.mark.workflow
def test_degenerate_tables_are_degenerate(notebook_inputs):
    tables = notebook_inputs["degenerate"] / "tables"
    for name in EXPERIMENT_TABLES:
        df = pd.read_parquet(tables / f"{name}.parquet")
        assert len(df) > 0, name
        by = df.groupby("a") if "a" in df else df.groupby(lambda _: 0)  # the real dataset has no spectrum exponent
        assert by[["M", "N", "sketch_seed"]].nunique().max().max() == 1, name
        if "mc_trials" in df.columns:  # the follow-ups' exact tables have no Monte Carlo columns
            assert (df["mc_trials"] == 0).all() and df["mc_mean"].isna().all(), name
    e = pd.concat([pd.read_csv(p) for p in (tables / "fits").glob("*_exponents.csv")])
    assert len(e) and e["fitted"].isna().all() and (e["verdict"] == "not fitted").all() and (e["reason"] == NOT_FITTED).all()


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize("name", NOT_IN_DEGENERATE_RUN)
@pytest.mark.parametrize("variant", ["degenerate"])
def test_notebook_executes(notebook_inputs, tmp_path, variant, name):
    inputs = notebook_inputs[variant]
    figures, out = tmp_path / "figures", tmp_path / f"{name}.ipynb"
    cmd = [sys.executable, "-m", "papermill", "-k", "python3", "--no-progress-bar", str(NOTEBOOK_DIR / f"{name}.ipynb"),
           str(out), "-p", "tables_dir", str(inputs / "tables"), "-p", "figures_dir", str(figures),
           "-p", "provenance_path", str(inputs / "provenance.json")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{name} failed on the {variant} tables:\n{run.stderr[-4000:]}"
    executed = nbformat.read(out, as_version=4)
    assert all(c.execution_count for c in _code_cells(executed))
    png, pdf = figures / f"{name}.png", figures / f"{name}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    sidecar = json.loads((figures / f"{name}.json").read_text(encoding="utf-8"))
    title, text = slp.split_caption(gallery.notebook_caption(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert sidecar == {"name": name, "title": title, "caption": text}
