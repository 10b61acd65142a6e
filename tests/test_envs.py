"""The conda environment file mirrors the lock file exactly, and the running environment is the locked one."""

import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "dev"))
import conda_env  # noqa: E402


def _uv():
    for candidate in (ROOT / ".tools" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.skip("uv not found (run `make install` first)")


def test_conda_env_file_matches_lock(monkeypatch):
    monkeypatch.chdir(ROOT)
    expected = conda_env.render(conda_env.locked_pins(_uv()))
    assert (ROOT / "envs" / "sketchlaw.yaml").read_text() == expected, "envs/ drifted from uv.lock: run `make envs`"


def test_running_environment_is_the_locked_one(monkeypatch):
    monkeypatch.chdir(ROOT)
    pins = dict(p.split("==") for p in conda_env.locked_pins(_uv()))
    for name in ("numpy", "scipy", "pandas", "pyarrow", "snakemake", "papermill", "seaborn"):
        assert importlib.metadata.version(name) == pins[name], name


# ---------------------------------------------------------------------------------------------------------------
# --sdm conda (untested here: no conda channel is reachable), checked in the files: the package comes from a path
# the env can reach, the rules import it only guarded, and notebooks run with the env's interpreter
# ---------------------------------------------------------------------------------------------------------------


def test_conda_env_installs_no_path_relative_to_the_env_file():
    """Snakemake copies the env file into .snakemake/: `-e ..` or any path would point there, not to the checkout."""
    import yaml

    env = yaml.safe_load((ROOT / "envs" / "sketchlaw.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.+!-]+", p) for p in pip), pip
    assert not any(p.startswith("sketchlaw") for p in pip)


def test_jobs_and_planner_import_the_package_from_the_checkout():
    common = (ROOT / "rules" / "common.smk").read_text()
    assert 'SRC = os.path.join(workflow.basedir, "src")' in common
    assert "sys.path.insert(0, SRC)" in common
    assert re.search(r"os\.environ\.update\(PYTHONPATH=os\.pathsep\.join\(.*SRC", common)


def test_rules_import_the_package_only_guarded():
    """Every `import sketchlaw` while the workflow is parsed sits in a try block that turns ImportError into a
    WorkflowError saying what is missing."""
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*(from sketchlaw\b|import sketchlaw\b)", line):
                assert line.startswith("    "), f"{smk.name}:{i + 1}: unguarded import: {line}"
                opening = next(lines[j] for j in range(i, -1, -1) if not lines[j].startswith("    "))
                assert opening == "try:", f"{smk.name}:{i + 1} is not inside a try block"
                handler = next(lines[j] for j in range(i, len(lines)) if not lines[j].startswith("    "))
                assert handler.startswith("except ImportError"), f"{smk.name}:{i + 1}"


def test_notebooks_run_with_the_envs_interpreter():
    """The notebook rule is a script rule with the conda env (under --sdm conda its script, papermill and the kernel
    run in that env), and nothing in it names an interpreter of its own."""
    figures = (ROOT / "rules" / "figures.smk").read_text()
    notebook_rule = figures[figures.index("rule notebook:"):figures.index("rule report:")]
    assert "conda:" in notebook_rule and 'script:\n        "../scripts/run_notebook.py"' in notebook_rule
    assert "shell:" not in notebook_rule and "python" not in notebook_rule.replace("run_notebook.py", "")