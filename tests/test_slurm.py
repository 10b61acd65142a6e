"""Scale-out tests on a real (local, single-node) SLURM cluster: `pytest -m slurm tests/test_slurm.py`.

The cluster comes from scripts/slurm/local_cluster.sh (root, Debian packages); where it cannot be
started the scripts exit 77 and these tests skip with the scripts' message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "scripts" / "slurm" / "local_cluster.sh"
CHECK = ROOT / "scripts" / "slurm" / "check_identical.sh"
PROFILE = ROOT / "profiles" / "slurm"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SKIP = 77


def env() -> dict:
    e = dict(os.environ)
    # each SLURM job starts snakemake twice: cache bytecode (else ~14 s per start instead of ~4 s)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e.setdefault("PYTHONPYCACHEPREFIX", "/tmp/sketchlaw-pycache")
    return e


def skip_or_fail(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode == SKIP:
        pytest.skip(f"{what}: {(proc.stderr or proc.stdout).strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"{what} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=600)
    skip_or_fail(proc, "local SLURM cluster")


SLURM_CONFIG = "tests/configs/slurm.yaml"
# check_identical.sh builds these (paths relative to each run's results directory): the fit needs every table of the
# config, so the whole simulate/analyse part of the workflow runs; notebooks and the report (localrules, never
# submitted) are left to the config/test.yaml runs of test_workflow.py.
SLURM_TARGETS = ("tables/main.parquet", "tables/variance.parquet", "tables/exponents.csv")
SLURM_TABLES = {"main.parquet", "main.csv", "variance.parquet", "variance.csv", "exponents.csv", "exponents.md",
                "exponent_forms.csv", "fit_diagnostics.parquet", "compute_frontier.csv", "diverged.csv",
                "main_limit.parquet", "main_limit.csv", "fits"}  # fits/: each experiment's own fit
# every rule that is not a localrule must have gone through sbatch (log: .../slurm_logs/rule_<rule>/... or
# .../slurm_logs/group_<group>_<rule>/...)
SUBMITTED_RULES = ("train_exact", "train_montecarlo", "train_baselines", "train_limit", "aggregate", "fit")


def test_local_and_slurm_tables_identical(tmp_path):
    out = tmp_path / "check"
    out.mkdir()
    # tests/configs/slurm.yaml: ~20 s locally, a few minutes through SLURM on a loaded 2-CPU machine
    proc = subprocess.run([str(CHECK), SLURM_CONFIG, *SLURM_TARGETS], cwd=ROOT, capture_output=True, text=True,
                          timeout=2 * 1800 + 600, env={**env(), "CHECK_OUT": str(out), "CHECK_TIMEOUT": "1800"})
    skip_or_fail(proc, "check_identical.sh")
    ids = re.search(r"SLURM job ids \((\d+)\): ([\d ]+)", proc.stdout)
    assert ids and int(ids.group(1)) > 0, proc.stdout
    assert "OK: every file under tables/ is byte-identical" in proc.stdout
    slurm_log = (out / "slurm.log").read_text()
    submitted = set(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/slurm_logs/(?:rule|group_\w+?_grp)_(\w+)/",
                               slurm_log))
    assert submitted == set(SUBMITTED_RULES), f"rules submitted to SLURM: {sorted(submitted)}"
    # group submissions packed several jobs each (group-components in profiles/slurm): fewer sbatch calls than jobs
    stats = re.search(r"Job stats:\n(.*?)\n\s*\n", slurm_log, re.S)
    assert stats, slurm_log[:3000]
    planned = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", stats.group(1), re.M))
    assert int(ids.group(1)) < sum(int(planned[r]) for r in SUBMITTED_RULES), (ids.group(0), planned)
    for name in ("local", "slurm"):
        tables = {p.name for p in (out / "tree" / f"results-{name}" / "tables").iterdir()}
        assert tables == SLURM_TABLES, (name, sorted(tables))


TOY = """\
rule all:
    input: "ok.txt"

rule small:
    output: "ok.txt"
    shell: "echo ok > {output}"

rule boom:
    output: "boom.txt"
    shell: "echo 'boom: failing on purpose' >&2; exit 3"
"""


def run_toy(workdir: Path, *args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    (workdir / "Snakefile").write_text(TOY)
    t0 = time.monotonic()
    proc = subprocess.run([str(SNAKEMAKE), "--profile", str(PROFILE), *args], cwd=workdir, capture_output=True,
                          text=True, timeout=timeout, env=env())
    return proc, time.monotonic() - t0


def test_impossible_resource_request_fails_fast(cluster, tmp_path):
    """More memory than the node has: sbatch rejects it, snakemake must stop with an error, not wait."""
    proc, seconds = run_toy(tmp_path, "ok.txt", "--set-resources", "small:mem_mb=100000000")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert seconds < 120, f"took {seconds:.0f} s"
    assert "Error in rule small" in output, output
    assert "Requested node configuration is not available" in output, output
    assert re.search(r"Complete log\(s\): \S+\.snakemake\.log", output), output
    assert not (tmp_path / "ok.txt").exists()


def test_failing_job_is_reported_with_its_slurm_log(cluster, tmp_path):
    """A job that fails inside SLURM is seen as FAILED via squeue; the error names its SLURM log."""
    proc, seconds = run_toy(tmp_path, "boom.txt")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert seconds < 240, f"took {seconds:.0f} s"
    assert "Error in rule boom" in output, output
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", output), output
    log = re.search(r"log: (\S+/slurm_logs/rule_boom/\d+\.log)", output)
    assert log, output
    assert "boom: failing on purpose" in Path(log.group(1)).read_text()
