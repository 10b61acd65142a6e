"""A finite dataset as the population: its feature map's spectrum and its target's coefficients (docs/METHODS.md §20).

The n samples x_1, ..., x_n of a dataset are the population: a sample is one of them drawn uniformly (with
replacement), and every risk is the exact mean over the n. A kernel k(x, x') on the dataset gives n features per sample
(kernel PCA): with K/n = V diag(λ) Vᵀ, the features of sample i are φ_i = √n·V_i·diag(λ)^{1/2}, so that their
covariance (1/n) Σ_i φ_i φ_iᵀ = diag(λ) = H in its eigenbasis, and a target y ∈ ℝⁿ is exactly y_i = ⟨φ_i, w*⟩ with
w*_j = (Vᵀy)_j / √(nλ_j) whenever K is positive definite (no label noise: σ² = 0). Its energy per mode is
λ_j w*_j² = (Vᵀy)_j² / n. Its Gaussian equivalent is x ~ N(0, H) with the same target: the same second moments.

``EmpiricalSpectrum`` and ``EmpiricalPrior`` give ``problem.build_problem`` this spectrum and a prior with variances
s_j = w*_j² (the target's own profile), so a sketched problem of the dataset is built like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sketchlaw.errors import ParameterError


@dataclass(frozen=True, eq=False)
class EmpiricalSpectrum:
    """The eigenvalues λ_1 ≥ ... ≥ λ_d of a dataset's feature covariance (the ``Spectrum`` interface)."""

    lam: np.ndarray = field(repr=False)
    kind: str = "empirical"

    def __post_init__(self):
        lam = np.asarray(self.lam, dtype=float)
        if lam.ndim != 1 or not len(lam) or not (lam > 0).all():
            raise ParameterError("lam", "an array", "a non-empty vector of positive eigenvalues")
        object.__setattr__(self, "lam", lam)

    @property
    def d(self) -> int:
        return len(self.lam)

    def eigenvalues(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.lam[start:self.d if stop is None else stop]


@dataclass(frozen=True, eq=False)
class EmpiricalPrior:
    """A prior w*_j ~ N(0, s_j) with the variances of a given target's coefficients (the ``Prior`` interface)."""

    s: np.ndarray = field(repr=False)
    name: str = "empirical"

    def variances(self, spectrum, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.asarray(self.s, dtype=float)[start:spectrum.d if stop is None else stop]


def rbf_kernel_spectrum(X: np.ndarray, bandwidth2: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(λ, V, ℓ²): the eigendecomposition K/n = V diag(λ) Vᵀ (λ decreasing) of the Gaussian kernel
    K_ij = exp(−‖x_i − x_j‖² / (2ℓ²)) on the rows of X, with ℓ² the median squared distance between the rows (a scale
    set by the data alone) unless given. A resample with repeated rows has K singular: its zero modes are kept."""
    X = np.asarray(X, dtype=float)
    n = len(X)
    sq = np.einsum("ij,ij->i", X, X)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0)
    if bandwidth2 is None:
        bandwidth2 = float(np.median(D2[np.triu_indices(n, 1)]))
    lam, V = np.linalg.eigh(np.exp(-D2 / (2.0 * bandwidth2)) / n)
    return lam[::-1].copy(), V[:, ::-1].copy(), bandwidth2


def rbf_kernel_features(X: np.ndarray, bandwidth2: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """``rbf_kernel_spectrum``, refusing eigenvalues at or below n·ε·λ_1: K must be positive definite for the target
    to be exactly representable (a dataset with repeated rows is not a population of distinct samples)."""
    lam, V, bandwidth2 = rbf_kernel_spectrum(X, bandwidth2)
    n = len(lam)
    if not lam[-1] > n * np.finfo(float).eps * lam[0]:
        raise ParameterError("bandwidth2", bandwidth2, f"a kernel that is positive definite on the data "
                                                       f"(smallest eigenvalue {lam[-1]:.3g})")
    return lam, V, bandwidth2


def kernel_target(lam: np.ndarray, V: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The target's coefficients w* in the kernel features' eigenbasis: y_i = ⟨φ_i, w*⟩ exactly (module docstring)."""
    n = len(y)
    return (V.T @ np.asarray(y, dtype=float)) / np.sqrt(n * lam)


def kernel_features(lam: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The n × n matrix of features φ_i = √n·V_i·diag(λ)^{1/2} (row i: sample i in H's eigenbasis)."""
    return np.sqrt(len(lam)) * V * np.sqrt(lam)


def tail_energy(lam: np.ndarray, w: np.ndarray) -> np.ndarray:
    """T_j = Σ_{k≥j} λ_k w_k²: the target's energy beyond mode j (T_j ≂ j^{1−b} under a source condition of degree
    b; cumulated, so much smoother than the single modes' energies)."""
    return np.cumsum((lam * w**2)[::-1])[::-1]
