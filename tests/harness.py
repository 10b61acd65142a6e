"""The test harness for everything that runs Snakemake (tests/test_workflow.py and the other end-to-end modules
import it; the fixtures ``shared`` and ``tables`` are in conftest.py).

Harness
-------
* ``snapshot``: once per session, a git clone of the repository at HEAD with the working tree laid over it
  (modified tracked files and untracked, non-ignored files). Every Snakemake run works in a *copy* of it, so the
  edits other people make during the session cannot change a run halfway, provenance records the real commit
  (plus the dirty flag), and the repository's own ``.snakemake/`` and ``results/`` are never touched.
* ``sm_env``: the environment of every Snakemake run: ``PYTHONPATH=<copy>/src`` (jobs import the snapshot's
  library, not the live tree) and a fixed ``SOURCE_DATE_EPOCH``. If ``.venv`` has no precompiled bytecode (it
  was installed without ``--compile-bytecode``) while ``PYTHONDONTWRITEBYTECODE`` is set, every job would recompile
  all its imports (the test configuration then takes twice as long): bytecode is then cached under a session temp
  directory (``PYTHONPYCACHEPREFIX``, nothing written into ``.venv``).
* ``shared_run``: config/test.yaml, run once per session with ``--cores 2`` into a session temp directory; the
  end-to-end checks here and the determinism/provenance checks in test_reproducibility.py all read it.

Targets are always given before ``--config`` (its values are ``nargs="*"`` and would swallow them).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
if not SNAKEMAKE.exists():
    SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
SOURCE_DATE_EPOCH = "1700000000"
RULES = ("train_exact", "train_montecarlo", "train_baselines", "train_followup", "schedule_claim",
         "schedule_finite", "dataset_spectrum", "frontier_theory", "covariates_stability", "aggregate", "fit",
         "exponents", "provenance",
         "notebook", "report")
EXPERIMENT_TABLES = ("main", "source", "logpower", "compute", "variance", "stepsize", "sketches")
FOLLOWUP_TABLES = ("schedules", "batch", "reuse", "covariates")  # beyond the paper: columns of their own (registry)
NOTEBOOKS = ("fig1_risk_landscape", "fig2_scaling_fits", "appendix_monte_carlo", "fit_diagnostics",
             "source_condition", "log_power_law", "compute_optimal", "variance_vs_model_size", "stepsize",
             "schedules", "batch", "reuse", "sketch_families", "real_data", "covariates")
RESULT_COLUMNS = ("experiment", "spectrum", "a", "b", "prior", "M", "d", "N", "N_eff", "gamma", "schedule", "sigma2",
                  "sketch_seed", "risk", "approx", "bias", "variance", "excess", "reducible", "mc_trials", "mc_mean",
                  "mc_std", "mc_sem")
EXPONENT_COLUMNS = ("experiment", "spectrum", "a", "b", "variable", "fitted", "ci_low", "ci_high", "theory")
FINITE_COLUMNS = ("risk", "approx", "bias", "variance", "excess", "reducible")
NOTHING_TO_DO = "Nothing to be done"  # Snakemake 9.x: "Nothing to be done (all requested files are present ...)"
# Top-level entries of the repository that are never part of a snapshot (environment, caches, outputs).
_NOT_SOURCE = {".git", ".venv", ".tools", ".snakemake", ".pytest_cache", "results", "logs"}



# ----------------------------------------------------------------------------------------------------------------
# harness (imported by the other workflow test modules)
# ----------------------------------------------------------------------------------------------------------------

_CACHE = pytest.StashKey[dict]()
_SNAPSHOT_LOCK = threading.Lock()  # test_config_validation creates work directories from two threads


def _cache(config: pytest.Config) -> dict:
    if _CACHE not in config.stash:
        config.stash[_CACHE] = {}
    return config.stash[_CACHE]


def snapshot(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    """The session's frozen copy of the repository (see the module docstring)."""
    with _SNAPSHOT_LOCK:
        return _snapshot(config, factory)


def _snapshot(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    cache = _cache(config)
    if "snapshot" in cache:
        return cache["snapshot"]
    dest = factory.mktemp("snapshot") / "repo"
    if (REPO / ".git").exists():
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True,
                       capture_output=True)
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                 check=True, capture_output=True).stdout.decode()
        for rel in filter(None, listing.split("\0")):
            if rel.split("/")[0] in _NOT_SOURCE:
                continue
            src, dst = REPO / rel, dest / rel
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            elif dst.is_file() or dst.is_symlink():  # deleted in the working tree
                dst.unlink()
        cache["head"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, check=True, capture_output=True,
                                       text=True).stdout.strip()
    else:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*_NOT_SOURCE, "__pycache__"))
        cache["head"] = "unknown"
    _warm_numba_cache(dest)
    cache["snapshot"] = dest
    cache["pycache"] = factory.mktemp("pycache")
    return dest


def _warm_numba_cache(dest: Path) -> None:
    """Give the snapshot compiled numba kernels: the repository's cache where it has one (valid for a copy, since the
    snapshot's sources keep their modification times), compiled once otherwise. Every run's copy then carries them,
    so no run compiles the kernels again (each would spend tens of seconds of CPU on it)."""
    for cached in (REPO / "src").rglob("__pycache__/*.nb[ic]"):
        target = dest / cached.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached, target)
    subprocess.run([sys.executable, "-m", "sketchlaw.workflow.warm_up"], cwd=dest, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(dest / "src")}, timeout=900)


def snapshot_head(config: pytest.Config) -> str:
    return _cache(config)["head"]


def workdir(config: pytest.Config, factory: pytest.TempPathFactory, name: str = "work") -> Path:
    """A fresh copy of the snapshot (its own .snakemake/, so runs in different copies never interact)."""
    source = snapshot(config, factory)  # first: it also sets up the session's basetemp, under the lock
    dest = factory.mktemp(name) / "repo"
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    return dest


def _venv_precompiled() -> bool:
    spec = importlib.util.find_spec("snakemake")
    return spec is not None and spec.origin is not None and (Path(spec.origin).parent / "__pycache__").is_dir()


def sm_env(config: pytest.Config, wd: Path, **extra) -> dict:
    env = dict(os.environ)
    if not _venv_precompiled():
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(_cache(config)["pycache"])
    env["PYTHONPATH"] = os.pathsep.join([str(wd / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    env.update(extra)
    return env


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    log: Path

    def tail(self, n: int = 80) -> str:
        return "\n".join(self.output.splitlines()[-n:])


_RUNNING: dict = {}  # log path -> Popen of a snakemake run in progress (see stop_snakemake)


def snakemake(config: pytest.Config, wd: Path, *args, log: Path, timeout: float = 3600, **env_extra) -> Run:
    """Run snakemake in ``wd`` (own process group), stdout+stderr to ``log``; kill the group on timeout."""
    cmd = [str(SNAKEMAKE), *map(str, args)]
    if not ({"-n", "--dry-run", "--lint"} & set(cmd)) and threading.current_thread() is threading.main_thread():
        from .conftest import current_test_runs_workflows  # (runs a fixture starts in the background are exempt)

        assert current_test_runs_workflows(config), "a test that runs Snakemake jobs must be marked workflow"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=wd, env=sm_env(config, wd, **env_extra), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        _RUNNING[log] = proc
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"snakemake timed out after {timeout} s: {' '.join(cmd)} (log {log})")
        except BaseException:  # interrupted (Ctrl-C): its own session would not get the signal, do not leave it behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            _RUNNING.pop(log, None)
    return Run(rc, log.read_text(errors="replace"), time.monotonic() - start, log)


def stop_snakemake(log: Path) -> None:
    """Kill the process group of the snakemake run writing ``log`` (started by ``snakemake``), if still running."""
    proc = _RUNNING.get(log)
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


def job_stats(output: str) -> dict:
    """The first 'Job stats' table of a Snakemake log: {rule: count}."""
    m = re.search(r"Job stats:\n(.*?)\n\s*\n", output, re.S)
    if not m:
        return {}
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", m.group(1), re.M)}


def load_test_config(config: pytest.Config, factory: pytest.TempPathFactory) -> dict:
    """config/test.yaml of the snapshot, as a dict."""
    return yaml.safe_load((snapshot(config, factory) / "config" / "test.yaml").read_text())


# ----------------------------------------------------------------------------------------------------------------
# workflow runs in the background
# ----------------------------------------------------------------------------------------------------------------
# The session's long workflow runs (each in its own copy of the repository) start before the first test when a
# selected test needs one (tests/conftest.py), two at a time: they then overlap the SLURM tests, which mostly wait for
# their scheduler, and the single-threaded unit tests, instead of running one after the other with a core idle.

_BACKGROUND: dict = {}  # name -> fn(config, factory), the run behind the session fixture of that name


def background(name: str):
    """Register ``fn(config, factory)`` as the background run behind the session fixture ``name``; ``fn`` returns
    what the fixture returns and keeps its Snakemake log path in ``_cache(config)["logs"][name]``."""
    def register(fn):
        _BACKGROUND[name] = fn
        return fn
    return register


def start_background(config: pytest.Config, factory: pytest.TempPathFactory, name: str):
    """The future of the background run ``name``, started now unless it was already."""
    cache = _cache(config)
    # pytest's temporary-path factory is not thread-safe: its first getbasetemp() creates the session's numbered
    # directory, and a worker thread racing this one there can make two (seen once: pytest-10 and pytest-11 in one
    # session, and a tmp_path setup error in it later).
    factory.getbasetemp()
    with _SNAPSHOT_LOCK:
        futures = cache.setdefault("background", {})
        if name not in futures:
            pool = cache.setdefault("pool", ThreadPoolExecutor(max_workers=2, thread_name_prefix="workflow-run"))
            futures[name] = pool.submit(_BACKGROUND[name], config, factory)
    return futures[name]


def background_result(config: pytest.Config, factory: pytest.TempPathFactory, name: str):
    """What the background run ``name`` returns, waiting for it (and starting it first if nothing has)."""
    return start_background(config, factory, name).result()


def stop_background(config: pytest.Config) -> None:
    """At the end of the session: kill the background runs still going (no selected test waited for them)."""
    cache = _cache(config)
    for name, future in cache.get("background", {}).items():
        if not future.done():
            future.cancel()
            log = cache.get("logs", {}).get(name)
            if log is not None:
                stop_snakemake(log)
    if "pool" in cache:
        cache["pool"].shutdown(wait=True)


def background_log(config: pytest.Config, name: str, log: Path) -> Path:
    _cache(config).setdefault("logs", {})[name] = log
    return log


@dataclass
class SharedRun:
    workdir: Path
    results: Path
    run: Run
    args: tuple


@background("shared")
def _shared(config: pytest.Config, factory: pytest.TempPathFactory) -> SharedRun:
    wd = workdir(config, factory, "shared-work")
    results = factory.mktemp("shared-results") / "results"
    args = ("--cores", "2", "--configfile", "config/test.yaml", "--config", f"results_dir={results}")
    run = snakemake(config, wd, *args, log=background_log(config, "shared", results.parent / "snakemake.log"))
    return SharedRun(wd, results, run, args)


def shared_run(config: pytest.Config, factory: pytest.TempPathFactory) -> SharedRun:
    """config/test.yaml, --cores 2, once per session (every rule; see RULES)."""
    shared = background_result(config, factory, "shared")
    assert shared.run.returncode == 0, f"config/test.yaml run failed (log {shared.run.log}):\n{shared.run.tail()}"
    return shared


def file_bytes(root: Path, sub: str, patterns=("*",)) -> dict:
    base = root / sub
    return {str(p.relative_to(base)): p.read_bytes() for pat in patterns for p in sorted(base.rglob(pat))
            if p.is_file()}


def png_text_chunks(data: bytes) -> dict:
    """tEXt / iTXt / zTXt chunks of a PNG (no PIL needed)."""
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    out, pos = {}, 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            out[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"zTXt":
            k, rest = body.split(b"\0", 1)
            out[k.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            k, rest = body.split(b"\0", 1)
            compressed, rest = rest[0], rest[2:]
            _lang, rest = rest.split(b"\0", 1)
            _tkey, text = rest.split(b"\0", 1)
            out[k.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
        elif kind == b"IEND":
            break
    return out
