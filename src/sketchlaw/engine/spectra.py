"""Data spectra λ_i of H = diag(λ_1, ..., λ_d) and Gaussian priors on the true parameter w*.

Notation (docs/METHODS.md §2): x ~ N(0, H), y = <x, w*> + ε.
- power law        λ_i = i^-a,                   a > 1
- log power law    λ_i = i^-1 · log^-a(i + 1),   a > 1
Priors, diagonal in H's eigenbasis: w*_i ~ N(0, s_i) independently, with
- isotropic  s_i = 1                 (the main theorem; E[λ_i w_i²] = λ_i)
- source     s_i = i^-b / λ_i        (source condition E[λ_i w_i²] = i^-b, b > 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sketchlaw.errors import ParameterError, check_int, check_real

SPECTRA = ("power", "logpower")


@dataclass(frozen=True)
class Spectrum:
    """A spectrum truncated to dimension d (the paper's x is infinite-dimensional; docs/METHODS.md §9)."""

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


def tail_sums(spectrum: Spectrum, prior: Prior) -> dict[str, float]:
    """Sums over the coordinates the truncation drops, i > d (to infinity):
    tau_H = Σ λ_i, tau_HL = Σ λ_i s_i (prior energy of w* in the tail), tau_H2L = Σ λ_i² s_i.

    Power laws use the Hurwitz zeta function (exact); the log power law uses Euler–Maclaurin with the integral
    computed by quadrature in log x (error far below 1e-10 relative for d >= 16).
    """
    from scipy import integrate, special  # imported here: only problem building needs them

    a, d = spectrum.a, spectrum.d
    if spectrum.kind == "power":
        if prior.b is None:
            return {"tau_H": float(special.zeta(a, d + 1)), "tau_HL": float(special.zeta(a, d + 1)),
                    "tau_H2L": float(special.zeta(2 * a, d + 1))}
        b = prior.b
        return {"tau_H": float(special.zeta(a, d + 1)), "tau_HL": float(special.zeta(b, d + 1)),
                "tau_H2L": float(special.zeta(a + b, d + 1))}
    if prior.b is not None:
        raise ParameterError("b", prior.b, "None (isotropic prior) for the log power law")

    def lam(x):
        return 1.0 / (x * np.log(x + 1.0) ** a)

    def log1pexp(u):  # log(e^u + 1) without overflow
        return u + np.log1p(np.exp(-u))

    # Integrands in u = log x (dx = x du), written so that nothing overflows for large u.
    lam_du = lambda u: log1pexp(u) ** -a  # noqa: E731  (λ(x)·x)
    lam2_du = lambda u: np.exp(-u) * log1pexp(u) ** (-2 * a)  # noqa: E731  (λ(x)²·x)

    def euler_maclaurin(f, f_du):
        x0 = d + 1.0
        integral, _ = integrate.quad(f_du, np.log(x0), np.inf, epsabs=0, epsrel=1e-12, limit=500)
        h = 1e-3 * x0
        deriv = (f(x0 + h) - f(x0 - h)) / (2 * h)
        return integral + f(x0) / 2 - deriv / 12

    tau = euler_maclaurin(lam, lam_du)
    return {"tau_H": tau, "tau_HL": tau, "tau_H2L": euler_maclaurin(lambda x: lam(x) ** 2, lam2_du)}
