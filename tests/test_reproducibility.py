"""Reproducibility: determinism across core counts, resuming a killed run, divergence handling, numerical edge cases
and provenance.

The Snakemake runs use the harness of test_workflow.py (a frozen snapshot of the repository, one copy per run, fixed
SOURCE_DATE_EPOCH); the --cores 2 run of config/test.yaml is shared with test_workflow.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from base64 import urlsafe_b64decode
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from sketchlaw.errors import ParameterError
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.workflow.grid import check_config, truncation
from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.sgd import monte_carlo, run_sgd
from sketchlaw.engine.spectra import Prior, Spectrum

from .harness import (EXPERIMENT_TABLES, NOTEBOOKS, REPO, SNAKEMAKE, Run, background, background_log, background_result,
                      file_bytes, job_stats, load_test_config, png_text_chunks, shared_run, sm_env, snakemake,
                      snapshot_head, workdir)

CONFIGS = Path(__file__).parent / "configs"
RESUME_CONFIG = CONFIGS / "resume.yaml"
PROVENANCE_KEYS = ("git_commit", "git_dirty", "config_hash", "lock_hash", "versions")


@pytest.fixture(scope="session")
def shared(request, tmp_path_factory):
    return shared_run(request.config, tmp_path_factory)


def _diff(a: dict, b: dict) -> list:
    return sorted(set(a) ^ set(b)) + sorted(k for k in set(a) & set(b) if a[k] != b[k])


# ----------------------------------------------------------------------------------------------------------------
# determinism: --cores 1 against the shared --cores 2 run
# ----------------------------------------------------------------------------------------------------------------


SERIAL_FIGURES = ("fig1_risk_landscape", "fig2_scaling_fits")  # a figure is a function of its tables alone


@background("serial")
def _serial_run(config: pytest.Config, factory: pytest.TempPathFactory) -> Run:
    """config/test.yaml with --cores 1, in its own copy of the repository and its own results directory: every table
    and two figures (the other notebooks would only redraw from tables already compared)."""
    wd = workdir(config, factory, "serial-work")
    results = factory.mktemp("serial-results") / "results"
    targets = [results / "tables" / "exponents.csv", *(results / "figures" / f"{nb}.png" for nb in SERIAL_FIGURES)]
    return snakemake(config, wd, *targets, "--cores", "1", "--configfile", "config/test.yaml", "--config",
                     f"results_dir={results}", log=background_log(config, "serial", results.parent / "snakemake.log"))


@pytest.fixture(scope="session")
def serial(request, tmp_path_factory):
    """The --cores 1 run's results directory (a background run: tests/harness.py)."""
    run = background_result(request.config, tmp_path_factory, "serial")
    assert run.returncode == 0, f"--cores 1 run failed (log {run.log}):\n{run.tail()}"
    return run.log.parent / "results"


@pytest.mark.workflow
@pytest.mark.slow
def test_tables_identical_for_any_core_count(serial, shared):
    a, b = file_bytes(shared.results, "tables"), file_bytes(serial, "tables")
    assert {"main.parquet", "main.csv", "exponents.csv"} <= set(a)
    assert not _diff(a, b), f"tables differ between --cores 2 and --cores 1: {_diff(a, b)}"
    runs_a, runs_b = file_bytes(shared.results, "runs"), file_bytes(serial, "runs")
    assert runs_a and not _diff(runs_a, runs_b), f"per-job runs differ: {_diff(runs_a, runs_b)}"


@pytest.mark.workflow
@pytest.mark.slow
def test_figures_identical_for_any_core_count(serial, shared):
    files = [f"{nb}.{ext}" for nb in SERIAL_FIGURES for ext in ("png", "pdf")]
    a = {f: (shared.results / "figures" / f).read_bytes() for f in files}
    b = {f: (serial / "figures" / f).read_bytes() for f in files}
    assert not _diff(a, b), f"figures differ (SOURCE_DATE_EPOCH set in both runs): {_diff(a, b)}"


# ----------------------------------------------------------------------------------------------------------------
# resume after an interruption
# ----------------------------------------------------------------------------------------------------------------


def _resume_args(results: Path, *extra) -> list:
    # targets first (--config takes every following word); no workflow profile: the default profile sets
    # rerun-incomplete, and these tests must say explicitly whether it is on
    return [results / "tables" / "main.parquet", results / "tables" / "main.csv", "--workflow-profile", "none",
            *extra, "--configfile", RESUME_CONFIG, "--config", f"results_dir={results}"]


@pytest.fixture(scope="module")
def resume_reference(request, tmp_path_factory):
    """tests/configs/resume.yaml, uninterrupted."""
    wd = workdir(request.config, tmp_path_factory, "resume-ref-work")
    results = tmp_path_factory.mktemp("resume-ref") / "results"
    run = snakemake(request.config, wd, *_resume_args(results, "--cores", "2"), log=results.parent / "snakemake.log")
    assert run.returncode == 0, run.tail()
    stats = job_stats(run.output)
    assert stats.get("train_montecarlo") == 2, stats
    return results


def _start_and_interrupt(config, wd: Path, results: Path, log: Path, hard: bool) -> Path:
    """Start the resume config with --cores 1; once one training job has finished and a Monte Carlo job is inside
    its training loop, kill: hard=False sends SIGTERM to Snakemake's process group, waits, then SIGKILLs what is
    left; hard=True SIGKILLs the whole group at once (power loss, OOM killer). Returns the output path of the Monte
    Carlo job that was killed."""
    cmd = [str(SNAKEMAKE), *map(str, _resume_args(results, "--cores", "1"))]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=wd, env=sm_env(config, wd), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline, victim = time.monotonic() + 900, None
            while victim is None:
                assert proc.poll() is None, f"snakemake ended before it could be interrupted:\n{log.read_text()}"
                assert time.monotonic() < deadline, "no Monte Carlo job started within 900 s"
                finished = list((results / "runs").rglob("*.parquet")) if (results / "runs").exists() else []
                logs = results / "logs" / "train_montecarlo" / "main"
                for mc_log in sorted(logs.glob("*.log")) if logs.exists() else []:
                    out = results / "runs" / "main" / "mc" / f"{mc_log.stem}.parquet"
                    if finished and not out.exists() and "Monte Carlo:" in mc_log.read_text(errors="replace"):
                        victim = out
                time.sleep(0.1)
            time.sleep(1.0)  # well inside the training loop (each Monte Carlo job trains for 8-15 s)
            assert not victim.exists(), "the Monte Carlo job finished before the interruption: make it slower"
            if hard:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
                except ProcessLookupError:
                    pass
            proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode != 0
    assert not (results / "tables" / "main.parquet").exists(), "the run was not interrupted before aggregation"
    return victim


def incomplete_markers(wd: Path) -> set:
    """Output paths Snakemake has marked incomplete (.snakemake/incomplete/<urlsafe-b64 path, '@'-chunked>)."""
    base = wd / ".snakemake" / "incomplete"
    out = set()
    for p in base.rglob("*") if base.exists() else []:
        if p.is_file() and p.name != "migration_underway":
            out.add(urlsafe_b64decode("".join(part.lstrip("@") for part in p.relative_to(base).parts)).decode())
    return out


def _assert_same_as_reference(results: Path, reference: Path):
    a, b = file_bytes(reference, "tables"), file_bytes(results, "tables")
    assert set(a) == {"main.parquet", "main.csv"} and not _diff(a, b), f"tables differ: {_diff(a, b)}"
    ra, rb = file_bytes(reference, "runs"), file_bytes(results, "runs")
    assert not _diff(ra, rb), f"runs differ: {_diff(ra, rb)}"
    leftovers = [str(p) for p in results.rglob("*") if ".tmp" in p.name]
    assert not leftovers, f"temporary files survived: {leftovers}"


@pytest.mark.workflow
@pytest.mark.slow
def test_resume_after_sigterm(request, tmp_path_factory, resume_reference):
    wd = workdir(request.config, tmp_path_factory, "resume-term-work")
    results = wd.parent / "results"
    victim = _start_and_interrupt(request.config, wd, results, wd.parent / "interrupted.log", hard=False)
    # SIGTERM is a clean stop: Snakemake removes the killed job's output and its incomplete marker
    assert not victim.exists()
    assert str(victim) not in incomplete_markers(wd)
    kept = {p: p.stat().st_mtime_ns for p in (results / "runs").rglob("*.parquet")}
    assert kept, "no training job had finished before the interruption"
    run = snakemake(request.config, wd, *_resume_args(results, "--cores", "2", "--rerun-incomplete"),
                    log=wd.parent / "resumed.log")
    assert run.returncode == 0, run.tail()
    assert job_stats(run.output).get("train_montecarlo", 0) >= 1, "the killed Monte Carlo job was not rerun"
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "jobs finished before the interruption were redone"
    _assert_same_as_reference(results, resume_reference)


@pytest.mark.workflow
@pytest.mark.slow
def test_incomplete_marker_forces_rerun_after_hard_kill(request, tmp_path_factory, resume_reference):
    """After a SIGKILL nothing is cleaned up. A killed job's output that exists (here: half of the reference file,
    as a non-atomic writer would leave it) is still marked incomplete, so Snakemake refuses to use it without
    --rerun-incomplete, and recomputes it with it. Without the marker it would count as up to date (it is newer
    than its input), so the rerun below is the marker's doing."""
    wd = workdir(request.config, tmp_path_factory, "resume-kill-work")
    results = wd.parent / "results"
    victim = _start_and_interrupt(request.config, wd, results, wd.parent / "interrupted.log", hard=True)
    assert str(victim) in incomplete_markers(wd), f"no incomplete marker for {victim}: {incomplete_markers(wd)}"
    reference = (resume_reference / victim.relative_to(results)).read_bytes()
    victim.write_bytes(reference[: len(reference) // 2])
    unlock = snakemake(request.config, wd, *_resume_args(results, "--unlock"), log=wd.parent / "unlock.log")
    assert unlock.returncode == 0, unlock.tail()

    refused = snakemake(request.config, wd, "-n", *_resume_args(results, "--cores", "2"), log=wd.parent / "dry.log")
    assert refused.returncode != 0 and "IncompleteFilesException" in refused.output, refused.tail()
    assert str(victim) in refused.output, refused.tail()

    run = snakemake(request.config, wd, *_resume_args(results, "--cores", "2", "--rerun-incomplete"),
                    log=wd.parent / "resumed.log")
    assert run.returncode == 0, run.tail()
    assert victim.read_bytes() == reference
    assert str(victim) not in incomplete_markers(wd)
    _assert_same_as_reference(results, resume_reference)


# ----------------------------------------------------------------------------------------------------------------
# divergence: γ below the spectrum's bound, above a realized sketch's
# ----------------------------------------------------------------------------------------------------------------


def _unstable_sketch(a=2.0, M=4, d=512, tail="mean", seeds=range(20)):
    """(γ, seed, sketch bound, spectrum bound): γ just below the spectrum bound check_config uses, above the bound
    of the sketch drawn with that seed."""
    spectrum_bound = critical_step_size(Spectrum("power", a, d).eigenvalues())
    gamma = round(0.98 * spectrum_bound, 4)
    for seed in seeds:
        p = build_problem(Spectrum("power", a, d), M, 1.0, seed, Prior(None), tail=tail)
        if critical_step_size(p.mu) < gamma:
            return gamma, seed, critical_step_size(p.mu), spectrum_bound, p
    pytest.fail(f"no seed in {seeds} gives a sketch less stable than gamma = {gamma}")


@pytest.mark.workflow
def test_divergent_sketch_is_recorded_as_diverged(request, tmp_path_factory):
    """γ below the bound the planner checks, above the realized sketch's: the run finishes, the point is a row with
    diverged true, the sketch's bound and empty risks, listed in diverged.csv with the reason (docs/METHODS.md
    §5); the other rows are finite."""
    cfg = copy.deepcopy(load_test_config(request.config, tmp_path_factory))
    d = cfg["defaults"]
    s = {**d, "M": [4]}
    gamma, seed, sketch_bound, spectrum_bound, _ = _unstable_sketch(d=truncation(s, 4), tail=d.get("tail", "none"))
    main = {"spectrum": "power", "a": [2.0], "M": [4], "N": [1000], "gamma": gamma, "sketch_seeds": [seed]}
    cfg["experiments"] = {"main": main}
    check_config(cfg)  # accepted: gamma is below the bound of the spectrum
    wd = workdir(request.config, tmp_path_factory, "diverge-work")
    path = wd.parent / "diverge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    results = wd.parent / "results"
    run = snakemake(request.config, wd, results / "tables" / "exponents.csv", "--cores", "1", "--configfile", path,
                    "--config", f"results_dir={results}", log=wd.parent / "snakemake.log")
    assert run.returncode == 0, run.tail()
    table = pd.read_parquet(results / "tables" / "main.parquet")
    assert table["diverged"].all() and len(table) == 1
    bound = sketch_bound  # the job draws the same sketch from the same seed
    assert table["gamma_max"].iloc[0] == pytest.approx(bound, rel=1e-12)
    assert table["risk"].isna().all()
    listed = pd.read_csv(results / "tables" / "diverged.csv")
    assert len(listed) == 1 and listed["gamma"].iloc[0] == gamma
    assert f"{bound:.6g}" in listed["reason"].iloc[0]


def test_engines_reject_a_step_size_unstable_for_the_sketch():
    gamma, _seed, bound, spectrum_bound, p = _unstable_sketch()
    assert bound < gamma < spectrum_bound
    schedule = Schedule(gamma, 1000)
    with pytest.raises(ParameterError, match=rf"gamma.*{re.escape(f'{bound:.6g}')}"):
        ExactEngine.from_problem(p).run(schedule)
    with pytest.raises(ParameterError, match=rf"gamma.*{re.escape(f'{bound:.6g}')}"):
        ExactEngine.from_problem(p).run_many([schedule])
    targets, approx = p.sample_targets(4, seed=1)
    with pytest.raises(ParameterError, match=rf"gamma.*{re.escape(f'{bound:.6g}')}"):
        run_sgd(p.mu, targets, approx, p.sigma2, schedule, seed=1)
    with pytest.raises(ParameterError, match="gamma"):
        monte_carlo(p, schedule, 4, seed=1)
    # just below the sketch's bound everything is finite
    ok = ExactEngine.from_problem(p).run(Schedule(0.99 * bound, 1000))
    assert np.isfinite([ok.risk, ok.bias, ok.variance]).all() and ok.risk >= p.sigma2


# ----------------------------------------------------------------------------------------------------------------
# numerical edges: a = 3, M = 1024, d = 16384
# ----------------------------------------------------------------------------------------------------------------

EDGE_A, EDGE_M, EDGE_D = 3.0, 1024, 16384  # M = 4096 takes ~16x longer to build (M²·d): over a minute here


@pytest.fixture(scope="module")
def edge_problem():
    return build_problem(Spectrum("power", EDGE_A, EDGE_D), EDGE_M, 1.0, seed=11)


def test_edge_problem_is_float64_and_well_formed(edge_problem):
    p = edge_problem
    for name in ("mu", "U", "p0"):
        arr = getattr(p, name)
        assert arr.dtype == np.float64, f"{name} is {arr.dtype}"
        assert np.isfinite(arr).all(), name
    assert p.mu.shape == (EDGE_M,) and p.U.shape == (EDGE_M, EDGE_M)
    assert (p.mu > 0).all() and (np.diff(p.mu) <= 0).all()
    assert isinstance(p.approx, float) and np.isfinite(p.approx) and p.approx > 0
    # E Approx ~ M^(1-a) up to a constant (one sketch): within a factor 10 of 1024^-2
    assert 0.1 < p.approx * EDGE_M ** (EDGE_A - 1) < 10, p.approx
    np.testing.assert_allclose(p.U.T @ p.U, np.eye(EDGE_M), atol=1e-10)


def test_edge_initial_error_profile_is_nonnegative(edge_problem):
    p0 = edge_problem.p0
    assert (p0 >= 0).all(), (f"{(p0 < 0).sum()} negative entries of p0, first at j = {np.argmax(p0 < 0)}, "
                             f"min {p0.min():.3g}")


@pytest.mark.parametrize("N", [2000, 10**6, 10**9])
def test_edge_exact_risk_finite_and_nonnegative(edge_problem, N):
    gamma = 0.5 * critical_step_size(edge_problem.mu)
    res = ExactEngine.from_problem(edge_problem).run(Schedule(gamma, N))
    parts = {"risk": res.risk, "approx": res.approx, "bias": res.bias, "variance": res.variance}
    for k, v in parts.items():
        assert isinstance(v, float) and np.isfinite(v) and v >= 0, (k, v)
    assert res.risk == pytest.approx(res.sigma2 + res.approx + res.bias + res.variance, rel=1e-12)
    assert res.risk >= res.sigma2


def test_edge_monte_carlo_matches_exact(edge_problem):
    gamma = 0.5 * critical_step_size(edge_problem.mu)
    schedule = Schedule(gamma, 2000)
    exact = ExactEngine.from_problem(edge_problem).run(schedule)
    mc = monte_carlo(edge_problem, schedule, trials=200, seed=2024, fresh_target=True)
    assert mc.risks.dtype == np.float64 and mc.approx.dtype == np.float64
    assert np.isfinite(mc.risks).all() and (mc.risks >= edge_problem.sigma2).all()
    assert mc.sem > 0
    z = (mc.mean - exact.risk) / mc.sem
    assert abs(z) <= 5, f"Monte Carlo {mc.mean:.8g} ± {mc.sem:.3g} vs exact {exact.risk:.8g} (z = {z:.2f})"


# ----------------------------------------------------------------------------------------------------------------
# provenance
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provenance(shared):
    return json.loads((shared.results / "provenance.json").read_text())


@pytest.mark.workflow
def test_provenance_json(request, shared, provenance):
    assert set(PROVENANCE_KEYS) <= set(provenance), provenance
    head = snapshot_head(request.config)
    assert re.fullmatch(r"[0-9a-f]{40}", head)
    assert provenance["git_commit"] == head
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=shared.workdir,
                                capture_output=True, text=True, check=True).stdout.strip())
    assert provenance["git_dirty"] is dirty
    assert re.fullmatch(r"[0-9a-f]{16}", provenance["config_hash"])
    lock = hashlib.sha256((shared.workdir / "uv.lock").read_bytes()).hexdigest()[:16]
    assert provenance["lock_hash"] == lock
    import importlib.metadata as md

    for pkg in ("numpy", "scipy", "pandas", "pyarrow", "snakemake"):
        assert provenance["versions"][pkg] == md.version(pkg), pkg


@pytest.mark.workflow
def test_every_parquet_table_carries_provenance(shared, provenance):
    parquets = sorted((shared.results / "tables").glob("*.parquet"))
    assert {p.stem for p in parquets} >= set(EXPERIMENT_TABLES)
    for path in parquets:
        meta = pq.read_schema(path).metadata or {}
        assert b"sketchlaw.provenance" in meta, f"{path.name} has no provenance"
        prov = json.loads(meta[b"sketchlaw.provenance"])
        assert {k: prov.get(k) for k in PROVENANCE_KEYS} == {k: provenance[k] for k in PROVENANCE_KEYS}, path.name


@pytest.mark.workflow
def test_index_shows_commit_and_config_hash(shared, provenance):
    page = (shared.results / "index.html").read_text()
    assert provenance["git_commit"] in page
    assert provenance["config_hash"] in page


@pytest.mark.workflow
def test_figures_carry_the_commit(shared, provenance):
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    for nb in NOTEBOOKS:
        png = shared.results / "figures" / f"{nb}.png"
        if Image is not None:
            with Image.open(png) as im:
                text = dict(im.text)
        else:
            text = png_text_chunks(png.read_bytes())
        assert text.get("git_commit") == provenance["git_commit"], (nb, text)
        assert text.get("config_hash") == provenance["config_hash"], (nb, text)
        pdf = (shared.results / "figures" / f"{nb}.pdf").read_bytes()
        assert provenance["git_commit"].encode() in pdf, f"{nb}.pdf metadata lacks the commit"


# ----------------------------------------------------------------------------------------------------------------
# batching jobs per sketch family changes no row
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_file", ["config.yaml", "config/paper.yaml"])
def test_monte_carlo_jobs_batch_families_within_their_draw_budget(config_file):
    from sketchlaw.workflow.grid import MONTECARLO_JOB_DRAWS, family_groups, montecarlo_draws, plan

    jobs = plan(yaml.safe_load((REPO / config_file).read_text()))["montecarlo"]
    groups = family_groups(jobs, max_draws=MONTECARLO_JOB_DRAWS)
    batched = [job for members in groups.values() for job in members]
    assert sorted(map(id, batched)) == sorted(map(id, jobs)), "every Monte Carlo problem in exactly one job"
    families = family_groups(jobs)
    for stem, members in groups.items():
        assert len(family_groups(members)) == 1, f"{stem}: problems of more than one sketch family"
        assert len(members) == 1 or sum(map(montecarlo_draws, members)) <= MONTECARLO_JOB_DRAWS, stem
    if config_file == "config.yaml":  # the default run's families are small: one job each
        assert groups.keys() == families.keys()
    else:  # paper scale: its largest problems each a job of their own
        assert len(groups) > len(families)


def test_monte_carlo_rows_do_not_depend_on_the_batching():
    """A family's Monte Carlo job gives each problem the rows that problem's job alone gives (each point from the seed
    of its own coordinates)."""
    from sketchlaw.workflow.grid import family_groups, job_params, plan
    from sketchlaw.workflow.training import montecarlo_rows, problem_rows

    config = yaml.safe_load((REPO / "tests" / "configs" / "resume.yaml").read_text())
    config["experiments"]["main"]["montecarlo"].update(trials=3, N=[50, 200])
    jobs = plan(config)["montecarlo"]
    members = next(m for m in family_groups(jobs).values() if len(m) > 1)
    params = [job_params(config, job) for job in members]
    together = problem_rows(params, montecarlo_rows, log=lambda _: None)
    alone = pd.concat([problem_rows([p], montecarlo_rows, log=lambda _: None) for p in params], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone, check_exact=True)
    assert len(together) == sum(len(p["points"]) for p in params) and together["mc_mean"].notna().all()
