import numpy as np
import pytest

from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.spectra import Prior, Spectrum


@pytest.fixture(scope="session")
def small_problem():
    """a = 2, M = 16, d = 2048: cheap enough for thousands of Monte Carlo trials."""
    return build_problem(Spectrum("power", 2.0, 2048), 16, 1.0, seed=3)


def make_problem(a=2.0, M=16, d=2048, sigma2=1.0, seed=0, b=None, kind="power", tail="none"):
    return build_problem(Spectrum(kind, a, d), M, sigma2, seed, Prior(b), tail=tail)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_collection_modifyitems(config, items):
    """Run the SLURM tests (tests/test_slurm.py) before everything else; the order within each group is kept.

    They start the local SLURM cluster (scripts/slurm/local_cluster.sh) and leave it running. That matters for every
    later Snakemake start: snakemake-executor-plugin-slurm runs `scontrol show config` when it is imported (each
    Snakemake start, executor or not), and where SLURM is installed but its controller is down that call blocks for
    the full MessageTimeout (~10 s) before failing. The suite starts Snakemake ~50 times (the bad-config cases alone
    32), so leaving the SLURM tests to the end of the alphabet cost several minutes per run on such a machine.
    """
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


@pytest.fixture(scope="session", autouse=True)
def _serial_workflow_run_in_background(request, tmp_path_factory):
    """When a selected test needs the --cores 1 run of config/test.yaml (tests/test_reproducibility.py), start it
    before the first test: it uses one core for a few minutes, which the SLURM tests (waiting for their scheduler
    most of the time) and the single-threaded unit tests leave idle. Killed at the end if no test waited for it."""
    if not any("serial" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield
        return
    from .test_reproducibility import start_serial_run, stop_serial_run

    start_serial_run(request.config, tmp_path_factory)
    yield
    stop_serial_run(request.config)
