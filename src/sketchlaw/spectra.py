"""Data spectra λ_i of H = diag(λ_1, ..., λ_d) and Gaussian priors on the true parameter w*.

Paper notation (PAPER.md §2.1, §4): x ~ N(0, H), y = <x, w*> + ε.
- power law        λ_i = i^-a,                   a > 1
- log power law    λ_i = i^-1 · log^-a(i + 1),   a > 1
Priors, diagonal in H's eigenbasis: w*_i ~ N(0, s_i) independently, with
- isotropic  s_i = 1                 (the main theorem; E[λ_i w_i²] = λ_i)
- source     s_i = i^-b / λ_i        (source condition E[λ_i w_i²] = i^-b, b > 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError, check_int, check_real

SPECTRA = ("power", "logpower")


@dataclass(frozen=True)
class Spectrum:
    """A spectrum truncated to dimension d (the paper's x is infinite-dimensional; PAPER.md §9)."""

    kind: str
    a: float
    d: int

    def __post_init__(self):
        if self.kind not in SPECTRA:
            raise ParameterError("spectrum", self.kind, f"one of {', '.join(SPECTRA)}")
        object.__setattr__(self, "a", check_real("a", self.a, gt=1.0))
        object.__setattr__(self, "d", check_int("d", self.d, minimum=1))

    def eigenvalues(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """λ_i for i = start+1, ..., stop (1-based index i; defaults to the whole spectrum)."""
        stop = self.d if stop is None else stop
        i = np.arange(start + 1, stop + 1, dtype=np.float64)
        if self.kind == "power":
            return i ** -self.a
        return 1.0 / (i * np.log(i + 1.0) ** self.a)

    def trace(self) -> float:
        """tr H of the truncated spectrum."""
        return float(np.sum(self.eigenvalues()))


@dataclass(frozen=True)
class Prior:
    """Gaussian prior w* ~ N(0, diag(s)); b=None is the isotropic prior N(0, I)."""

    b: float | None = None

    def __post_init__(self):
        if self.b is not None:
            object.__setattr__(self, "b", check_real("b", self.b, gt=1.0))

    @property
    def name(self) -> str:
        return "isotropic" if self.b is None else "source"

    def variances(self, spectrum: Spectrum, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Prior variances s_i of w*_i for i = start+1, ..., stop."""
        stop = spectrum.d if stop is None else stop
        if self.b is None:
            return np.ones(stop - start)
        i = np.arange(start + 1, stop + 1, dtype=np.float64)
        return i ** -self.b / spectrum.eigenvalues(start, stop)
