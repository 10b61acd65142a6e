"""End-to-end tests of the Snakemake workflow, and the harness shared with test_config_validation.py and
test_reproducibility.py (they import the helpers below).

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
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
if not SNAKEMAKE.exists():
    SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
SOURCE_DATE_EPOCH = "1700000000"
RULES = ("problem", "train_exact", "train_montecarlo", "train_baselines", "train_followup", "schedule_claim",
         "schedule_finite", "aggregate", "fit", "exponents", "provenance", "notebook", "report")
EXPERIMENT_TABLES = ("main", "source", "logpower", "compute", "variance", "stepsize")
FOLLOWUP_TABLES = ("schedules", "batch", "reuse")  # beyond the paper: columns of their own (registry)
NOTEBOOKS = ("fig1_risk_landscape", "fig2_scaling_fits", "appendix_monte_carlo", "fit_diagnostics",
             "source_condition", "log_power_law", "compute_optimal", "variance_vs_model_size", "stepsize",
             "schedules", "batch", "reuse")
RESULT_COLUMNS = ("experiment", "spectrum", "a", "b", "prior", "M", "d", "N", "N_eff", "gamma", "schedule", "sigma2",
                  "sketch_seed", "risk", "approx", "bias", "variance", "excess", "reducible", "mc_trials", "mc_mean",
                  "mc_std", "mc_sem")
EXPONENT_COLUMNS = ("experiment", "spectrum", "a", "b", "variable", "fitted", "ci_low", "ci_high", "theory")
FINITE_COLUMNS = ("risk", "approx", "bias", "variance", "excess", "reducible")
NOTHING_TO_DO = "Nothing to be done"  # Snakemake 9.x: "Nothing to be done (all requested files are present ...)"
# Top-level entries of the repository that are never part of a snapshot (environment, caches, outputs).
_NOT_SOURCE = {".git", ".venv", ".tools", ".snakemake", ".pytest_cache", "results", "logs"}

pytestmark = pytest.mark.workflow


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
    cache["snapshot"] = dest
    cache["pycache"] = factory.mktemp("pycache")
    return dest


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


@dataclass
class SharedRun:
    workdir: Path
    results: Path
    run: Run
    args: tuple


def shared_run(config: pytest.Config, factory: pytest.TempPathFactory) -> SharedRun:
    """config/test.yaml, --cores 2, once per session (every rule; see RULES)."""
    cache = _cache(config)
    if "shared" not in cache:
        wd = workdir(config, factory, "shared-work")
        results = factory.mktemp("shared-results") / "results"
        args = ("--cores", "2", "--configfile", "config/test.yaml", "--config", f"results_dir={results}")
        run = snakemake(config, wd, *args, log=results.parent / "snakemake.log")
        cache["shared"] = SharedRun(wd, results, run, args)
    shared = cache["shared"]
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


# ----------------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared(request, tmp_path_factory) -> SharedRun:
    return shared_run(request.config, tmp_path_factory)


@pytest.fixture(scope="session")
def tables(shared) -> dict:
    return {name: pd.read_parquet(shared.results / "tables" / f"{name}.parquet") for name in EXPERIMENT_TABLES}


# ----------------------------------------------------------------------------------------------------------------
# static checks (no jobs run)
# ----------------------------------------------------------------------------------------------------------------


def test_dry_run_default_config(request, tmp_path_factory, tmp_path):
    """`snakemake -n` plans the default config.yaml: every rule appears, nothing is written."""
    wd = workdir(request.config, tmp_path_factory, "dry")
    results = tmp_path / "results"
    run = snakemake(request.config, wd, "-n", "--cores", "2", "--config", f"results_dir={results}",
                    log=tmp_path / "dry.log", timeout=600)
    assert run.returncode == 0, run.tail()
    stats = job_stats(run.output)
    assert set(RULES) <= set(stats), f"rules missing from the plan: {set(RULES) - set(stats)}"
    from sketchlaw.workflow import registry

    default = yaml.safe_load((wd / "config.yaml").read_text())
    assert stats["notebook"] == len(registry.active_notebooks(default))  # the batch and reuse follow-ups are not in it
    assert not results.exists(), "a dry run wrote into results_dir"


def test_lint(request, tmp_path_factory, tmp_path):
    wd = workdir(request.config, tmp_path_factory, "lint")
    run = snakemake(request.config, wd, "--lint", "--config", f"results_dir={tmp_path / 'results'}",
                    log=tmp_path / "lint.log", timeout=600)
    assert run.returncode == 0, f"snakemake --lint reports issues:\n{run.output}"
    assert "Lints for" not in run.output, run.output


def test_configfile_with_one_experiment_runs_only_that_experiment(request, tmp_path_factory, tmp_path):
    cfg = load_test_config(request.config, tmp_path_factory)
    cfg["experiments"] = {"main": cfg["experiments"]["main"]}
    path = tmp_path / "only_main.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    wd = workdir(request.config, tmp_path_factory, "only-main")
    run = snakemake(request.config, wd, "-n", "--cores", "1", "--configfile", path,
                    "--config", f"results_dir={tmp_path / 'results'}", log=tmp_path / "dry.log", timeout=600)
    assert run.returncode == 0, run.tail()
    stats = job_stats(run.output)
    assert stats.get("aggregate") == 1, f"expected one table (main), plan has {stats}"
    assert "train_baselines" not in stats, f"the variance experiment (not in {path.name}) is planned: {stats}"


# ----------------------------------------------------------------------------------------------------------------
# end to end: config/test.yaml
# ----------------------------------------------------------------------------------------------------------------


def test_plan_covers_every_rule(shared):
    stats = job_stats(shared.run.output)
    missing = [r for r in RULES if r not in stats]
    assert not missing, f"rules not in the plan of config/test.yaml: {missing} (plan: {stats})"
    assert stats["aggregate"] == len(EXPERIMENT_TABLES) + len(FOLLOWUP_TABLES)
    assert stats["notebook"] == len(NOTEBOOKS)


@pytest.mark.parametrize("name", FOLLOWUP_TABLES)
def test_followup_table_columns(shared, name):
    """Each follow-up table has its registry columns, finite results, and its CSV twin."""
    from sketchlaw.workflow import registry

    df = pd.read_parquet(shared.results / "tables" / f"{name}.parquet")
    csv = pd.read_csv(shared.results / "tables" / f"{name}.csv")
    missing = [c for c in registry.EXPERIMENTS[name].columns if c not in df.columns]
    assert not missing, f"{name}.parquet lacks {missing}"
    assert list(csv.columns) == list(df.columns) and len(df) == len(csv) > 0
    assert (df["experiment"] == name).all()
    for col in ("risk", "reducible", "approx", "bias", "variance"):
        if col in df:
            assert np.isfinite(df[col].to_numpy(float)).all(), (name, col)
    if name == "schedules":
        claim = pd.read_parquet(shared.results / "tables" / "schedules_claim.parquet")
        assert set(claim["kind"]) == {"geometric", "power"} and (claim["approx"] == 0).all()


@pytest.mark.parametrize("name", EXPERIMENT_TABLES)
def test_experiment_table_columns(shared, tables, name):
    df = tables[name]
    csv = pd.read_csv(shared.results / "tables" / f"{name}.csv")
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    assert not missing, f"{name}.parquet lacks {missing}"
    assert list(csv.columns) == list(df.columns), f"{name}.csv and {name}.parquet have different columns"
    assert len(df) == len(csv) > 0
    assert (df["experiment"] == name).all()
    if name == "variance":
        assert set(df["method"]) == {"sgd", "ols", "ridge"}, set(df["method"])


def test_exponents_table(shared):
    exps = pd.read_csv(shared.results / "tables" / "exponents.csv")
    missing = [c for c in EXPONENT_COLUMNS if c not in exps.columns]
    assert not missing, f"exponents.csv lacks {missing}"
    assert len(exps) > 0
    assert {"main", "source", "logpower"} <= set(exps["experiment"]), set(exps["experiment"])
    assert (shared.results / "tables" / "exponents.md").stat().st_size > 0


@pytest.mark.parametrize("name", EXPERIMENT_TABLES)
def test_results_are_finite_and_nonnegative(tables, name):
    df = tables[name]
    for col in FINITE_COLUMNS:
        values = df[col].to_numpy(dtype=float)
        assert np.isfinite(values).all(), f"{name}.{col} has non-finite values: {df.loc[~np.isfinite(values)]}"
    for col in ("bias", "variance", "approx"):
        assert (df[col] >= 0).all(), f"{name}.{col} < 0: {df.loc[df[col] < 0, col].tolist()}"
    assert (df["sigma2"] >= 0).all()


RISK_IDENTITY_CASES = [pytest.param(n, None, id=n) for n in EXPERIMENT_TABLES if n != "variance"] + [
    pytest.param("variance", "sgd", id="variance-sgd"),
    pytest.param("variance", "ols", id="variance-ols"),
    pytest.param("variance", "ridge", id="variance-ridge"),
]


@pytest.mark.parametrize("name,method", RISK_IDENTITY_CASES)
def test_risk_is_sum_of_its_parts(tables, name, method):
    df = tables[name]
    if method is not None:
        df = df[df["method"] == method]
    assert len(df) > 0
    parts = df["sigma2"] + df["approx"] + df["bias"] + df["variance"]
    rel = (parts - df["risk"]).abs() / df["risk"].abs()
    assert rel.max() <= 1e-12, df.loc[rel > 1e-12, ["M", "N", "risk", "sigma2", "approx", "bias", "variance"]]
    np.testing.assert_allclose(df["excess"], df["bias"] + df["variance"], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(df["reducible"], df["risk"] - df["sigma2"], rtol=1e-12, atol=1e-15)


def test_monte_carlo_agrees_with_exact_risk(request, tmp_path_factory, tables):
    """Main table: every Monte Carlo point (fresh w* and data per trial) within 5 standard errors of the exact
    expected risk of the same sketch."""
    cfg = load_test_config(request.config, tmp_path_factory)
    main, mc_cfg = cfg["experiments"]["main"], cfg["experiments"]["main"]["montecarlo"]
    seeds = main.get("sketch_seeds", cfg["defaults"]["sketch_seeds"])
    df = tables["main"]
    mc = df[df["mc_trials"] > 0]
    assert len(mc) == len(main["a"]) * len(mc_cfg["M"]) * len(mc_cfg["N"]) * len(seeds), mc
    assert (mc["mc_trials"] == mc_cfg["trials"]).all()
    assert set(mc["M"]) == set(mc_cfg["M"]) and set(mc["N"]) == set(mc_cfg["N"])
    assert (mc["mc_sem"] > 0).all() and np.isfinite(mc["mc_mean"]).all()
    np.testing.assert_allclose(mc["mc_sem"], mc["mc_std"] / np.sqrt(mc["mc_trials"]), rtol=1e-12)
    z = (mc["mc_mean"] - mc["risk"]) / mc["mc_sem"]
    assert (z.abs() <= 5).all(), mc.assign(z=z)[["a", "M", "N", "sketch_seed", "risk", "mc_mean", "mc_sem", "z"]]
    no_mc = df[df["mc_trials"] == 0]
    assert no_mc["mc_mean"].isna().all()


def test_least_squares_variance_matches_its_monte_carlo(tables):
    """variance table, method = ols: the exact least-squares variance formula against its Monte Carlo estimate."""
    ols = tables["variance"][lambda d: d["method"] == "ols"]
    assert len(ols) > 0
    z = (ols["mc_mean"] - ols["variance"]) / ols["mc_sem"]
    assert (z.abs() <= 5).all(), ols.assign(z=z)[["M", "N", "variance", "mc_mean", "mc_sem", "z"]]


def test_figures(shared):
    figures = shared.results / "figures"
    for nb in NOTEBOOKS:
        png, pdf = (figures / f"{nb}.png").read_bytes(), (figures / f"{nb}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n", f"{nb}.png is not a PNG"
        assert len(png) > 10_000, f"{nb}.png is only {len(png)} bytes"
        assert pdf[:5] == b"%PDF-" and pdf.rstrip().endswith(b"%%EOF"), f"{nb}.pdf is not a complete PDF"
        assert len(pdf) > 5_000, f"{nb}.pdf is only {len(pdf)} bytes"


def test_executed_notebooks(shared):
    for nb in NOTEBOOKS:
        ipynb, html = shared.results / "notebooks" / f"{nb}.ipynb", shared.results / "notebooks" / f"{nb}.html"
        doc = json.loads(ipynb.read_text())
        code = [c for c in doc["cells"] if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{nb}.ipynb has unexecuted cells"
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{nb}.ipynb has error outputs: {errors}"
        assert "papermill" in doc["metadata"], f"{nb}.ipynb was not run by papermill"
        text = html.read_text(errors="replace")
        assert "<html" in text.lower() and len(text) > 10_000, f"{nb}.html looks empty"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src") and v]


def test_index_links_every_figure(shared):
    index = shared.results / "index.html"
    parser = _Links()
    parser.feed(index.read_text())
    links = set(parser.links)
    for nb in NOTEBOOKS:
        for target in (f"figures/{nb}.png", f"figures/{nb}.pdf", f"notebooks/{nb}.html"):
            assert target in links, f"index.html does not link {target}"
    for name in EXPERIMENT_TABLES + FOLLOWUP_TABLES:
        assert f"tables/{name}.csv" in links and f"tables/{name}.parquet" in links
    local = [link for link in links if not re.match(r"^[a-z]+:", link) and not link.startswith("#")]
    dangling = [link for link in local if not (index.parent / link).exists()]
    assert not dangling, f"index.html links missing files: {dangling}"


def test_second_invocation_has_nothing_to_do(request, shared):
    run = snakemake(request.config, shared.workdir, "-n", *shared.args, log=shared.results.parent / "second.log",
                    timeout=600)
    assert run.returncode == 0, run.tail()
    assert NOTHING_TO_DO in run.output, f"second invocation would run jobs:\n{run.tail()}"
    assert not job_stats(run.output), job_stats(run.output)


def test_outputs_respect_the_umask(shared):
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    wrong = {str(p.relative_to(shared.results)): oct(stat.S_IMODE(p.stat().st_mode))
             for p in sorted(shared.results.rglob("*")) if p.is_file() and "logs" not in p.parts
             and "benchmarks" not in p.parts and stat.S_IMODE(p.stat().st_mode) != expected}
    assert not wrong, f"files not created with mode {oct(expected)}: {wrong}"
