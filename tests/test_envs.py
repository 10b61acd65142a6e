"""The conda environment file mirrors the lock file exactly, and the running environment is the locked one."""

import importlib.metadata
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
