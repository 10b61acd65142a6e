import numpy as np
import pytest

from sketchlaw.problem import build_problem
from sketchlaw.spectra import Prior, Spectrum


@pytest.fixture(scope="session")
def small_problem():
    """a = 2, M = 16, d = 2048: cheap enough for thousands of Monte Carlo trials."""
    return build_problem(Spectrum("power", 2.0, 2048), 16, 1.0, seed=3)


def make_problem(a=2.0, M=16, d=2048, sigma2=1.0, seed=0, b=None, kind="power", tail="none"):
    return build_problem(Spectrum(kind, a, d), M, sigma2, seed, Prior(b), tail=tail)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
