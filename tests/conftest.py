import numpy as np
import pandas as pd
import pytest

from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.spectra import Prior, Spectrum

from .harness import _BACKGROUND, EXPERIMENT_TABLES, SharedRun, shared_run, start_background, stop_background


@pytest.fixture(scope="session")
def small_problem():
    """a = 2, M = 16, d = 2048: cheap enough for thousands of Monte Carlo trials."""
    return build_problem(Spectrum("power", 2.0, 2048), 16, 1.0, seed=3)


def make_problem(a=2.0, M=16, d=2048, sigma2=1.0, seed=0, b=None, kind="power", tail="none"):
    return build_problem(Spectrum(kind, a, d), M, sigma2, seed, Prior(b), tail=tail)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Tiers (make test-fast runs neither workflow nor slow nor slurm tests; make test runs everything):
#   workflow  runs Snakemake jobs (a dry run or --lint is not a workflow run); enforced below
#   slow      takes more than about ten seconds by itself (statistical tests with many trials, big problems)
#   slurm     needs a SLURM scheduler (tests/test_slurm.py starts a local one)
WORKFLOW_FIXTURES = {"tables", "notebook_inputs"}  # and every background run (tests/harness.py: _BACKGROUND)
_CURRENT = pytest.StashKey[object]()


def pytest_runtest_setup(item):
    item.config.stash[_CURRENT] = item


def current_test_runs_workflows(config) -> bool:
    """Whether the running test is marked ``workflow`` (harness.snakemake refuses a real run from any other)."""
    item = config.stash.get(_CURRENT, None)
    return item is None or item.get_closest_marker("workflow") is not None


def pytest_collection_modifyitems(config, items):
    """Every test that uses a finished workflow run carries the ``workflow`` marker (refused otherwise), and the SLURM
    tests run first.

    Run the SLURM tests (tests/test_slurm.py) before everything else; the order within each group is kept.

    They start the local SLURM cluster (scripts/slurm/local_cluster.sh) and leave it running. That matters for every
    later Snakemake start: snakemake-executor-plugin-slurm runs `scontrol show config` when it is imported (each
    Snakemake start, executor or not), and where SLURM is installed but its controller is down that call blocks for
    the full MessageTimeout (~10 s) before failing. The suite starts Snakemake ~50 times (the bad-config cases alone
    32), so leaving the SLURM tests to the end of the alphabet cost several minutes per run on such a machine.
    """
    workflow_fixtures = WORKFLOW_FIXTURES | set(_BACKGROUND)
    unmarked = [item.nodeid for item in items if workflow_fixtures & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("workflow") is None]
    if unmarked:
        raise pytest.UsageError("tests that use a workflow run must be marked @pytest.mark.workflow: "
                                + ", ".join(unmarked))
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


@pytest.fixture(scope="session", autouse=True)
def _workflow_runs_in_background(request, tmp_path_factory):
    """Start, before the first test, the background runs (tests/harness.py: the shared tiny run, the --cores 1 run,
    the degenerate, generalization and rerun configurations) that a selected test needs, the shared run first; kill
    at the end those no test waited for."""
    needed = set().union(*(getattr(item, "fixturenames", ()) for item in request.session.items))
    # the shared run first, then by name (a set's order changes from session to session, and with it the timing)
    for name in sorted(set(_BACKGROUND) & needed, key=lambda n: (n != "shared", n)):
        start_background(request.config, tmp_path_factory, name)
    yield
    stop_background(request.config)


@pytest.fixture(scope="session")
def shared(request, tmp_path_factory) -> SharedRun:
    """The session's run of config/test.yaml (every rule), started by the first test that asks for it."""
    return shared_run(request.config, tmp_path_factory)


@pytest.fixture(scope="session")
def tables(shared) -> dict:
    return {name: pd.read_parquet(shared.results / "tables" / f"{name}.parquet") for name in EXPERIMENT_TABLES}
