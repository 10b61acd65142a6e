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


def test_local_and_slurm_tables_identical(tmp_path):
    out = tmp_path / "check"
    out.mkdir()
    # ~40 min on a loaded 2-CPU machine (local run ~11 min, SLURM run ~28 min): generous bounds
    proc = subprocess.run([str(CHECK), "config/test.yaml"], cwd=ROOT, capture_output=True, text=True,
                          timeout=2 * 3600 + 600, env={**env(), "CHECK_OUT": str(out), "CHECK_TIMEOUT": "3600"})
    skip_or_fail(proc, "check_identical.sh")
    ids = re.search(r"SLURM job ids \((\d+)\): ([\d ]+)", proc.stdout)
    assert ids and int(ids.group(1)) > 0, proc.stdout
    assert "OK: every file under tables/ is byte-identical" in proc.stdout
    tables = sorted(p.name for p in (out / "tree" / "results-slurm" / "tables").iterdir())
    assert any(t.endswith(".csv") for t in tables) and any(t.endswith(".parquet") for t in tables), tables


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
