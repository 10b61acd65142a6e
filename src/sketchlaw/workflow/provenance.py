"""Provenance attached to every table and figure: code version, config file and hash, lock hash, package versions.

Nothing time- or host-dependent is recorded, so two runs of the same commit and config write identical bytes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

PACKAGES = ("sketchlaw", "numpy", "scipy", "pandas", "pyarrow", "snakemake", "papermill", "matplotlib", "seaborn")


def canonical_hash(obj) -> str:
    """sha256 of the canonical JSON of obj (sorted keys), first 16 hex digits."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_hash(path) -> str:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.exists() else "missing"


def git_state(root) -> tuple[str, bool]:
    """(commit, dirty) of the repository at root; ("unknown", True) outside git. results/ is ignored by git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        # no optional locks: jobs running side by side each call this, and must neither contend for the index's
        # lock nor write the index
        status = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return commit, bool(status)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True


def versions() -> dict:
    from sketchlaw import __version__

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            # sketchlaw imported from a checkout's src/ (a conda env of the workflow) has no installed metadata
            out[name] = __version__ if name == "sketchlaw" else "not installed"
    return out


def config_file_label(config_files, workflow_dir) -> str:
    """The config file(s) a workflow run was given, relative to the workflow directory where they lie inside it;
    "config.yaml (default)" when none was given (the workflow then reads its own config.yaml)."""
    if not config_files:
        return "config.yaml (default)"
    labels = []
    for f in config_files:
        path = Path(f).resolve()
        try:
            labels.append(str(path.relative_to(Path(workflow_dir).resolve())))
        except ValueError:  # outside the workflow directory
            labels.append(str(path))
    return ", ".join(labels)


def science(config: dict) -> dict:
    """The configuration without ``results_dir``: a path, not science, so runs into different directories share one
    config hash."""
    return {k: v for k, v in config.items() if k != "results_dir"}


def of_job(config: dict, scriptdir) -> dict:
    """The provenance a workflow job embeds in what it writes, taken when the job runs, of the checkout whose
    ``scripts/`` it runs. Read at run time rather than from an upstream file, so that provenance is recorded without
    being a rerun trigger (a new commit reruns no job for its provenance alone)."""
    return collect(science(config), root=Path(scriptdir).parent)


def collect(config: dict, root=".", lock_file="uv.lock", config_file: str | None = None) -> dict:
    """Provenance of a run of ``config`` (its science content, embedded whole) from the file ``config_file``."""
    commit, dirty = git_state(root)
    out = {"git_commit": commit, "git_dirty": dirty, "config_hash": canonical_hash(config),
           "lock_hash": file_hash(Path(root) / lock_file), "versions": versions(), "config": config}
    if config_file is not None:
        out["config_file"] = config_file
    return out
