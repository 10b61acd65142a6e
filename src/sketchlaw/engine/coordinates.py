"""Coordinate laws of the covariates beyond the Gaussian (docs/METHODS.md §21): x = H^{1/2} z with z of i.i.d.
coordinates of mean 0 and variance 1, so that E[xxᵀ] = H for every law and only the fourth moment κ = E z_i⁴ moves
(κ = 3 for the Gaussian).

| label | z_i | κ |
|---|---|---|
| ``gaussian`` | N(0, 1) | 3 |
| ``rademacher`` | ±1 | 1 |
| ``student<ν>`` | t_ν·√((ν − 2)/ν), ν > 4 (finite fourth moment) | 3 + 6/(ν − 4) |
| ``bernoulli<p>`` | B·g/√p, B ~ Bernoulli(p), g ~ N(0, 1), 0 < p ≤ 1 (sparse: Bernoulli–Gaussian) | 3/p |
"""

from __future__ import annotations

import re

import numpy as np

from sketchlaw.errors import ParameterError

_PATTERN = re.compile(r"^(gaussian|rademacher|student([0-9]+(?:\.[0-9]+)?)|bernoulli(0?\.[0-9]+|1(?:\.0+)?))$")


def coordinate_law(label: str) -> tuple[str, float]:
    """(kind, parameter) of a law's label: ('gaussian', 0), ('rademacher', 0), ('student', ν), ('bernoulli', p)."""
    m = _PATTERN.match(str(label))
    if not m:
        raise ParameterError("coordinates", label, "one of gaussian, rademacher, student<ν> (ν > 4), "
                                                   "bernoulli<p> (0 < p <= 1)")
    if m.group(2):
        nu = float(m.group(2))
        if not nu > 4:
            raise ParameterError("coordinates", label, "student<ν> with ν > 4 (a finite fourth moment)")
        return "student", nu
    if m.group(3):
        p = float(m.group(3))
        if not 0 < p <= 1:
            raise ParameterError("coordinates", label, "bernoulli<p> with 0 < p <= 1")
        return "bernoulli", p
    return m.group(1), 0.0


def kurtosis(label: str) -> float:
    """κ = E z⁴ of the law (unit variance)."""
    kind, q = coordinate_law(label)
    return {"gaussian": 3.0, "rademacher": 1.0}.get(kind) or (3.0 + 6.0 / (q - 4.0) if kind == "student" else 3.0 / q)


def draw(gen: np.random.Generator, shape, label: str = "gaussian") -> np.ndarray:
    """Coordinates z of the law, unit variance; the Gaussian's are ``gen.standard_normal(shape)`` itself (the same
    stream as before laws existed)."""
    kind, q = coordinate_law(label)
    if kind == "gaussian":
        return gen.standard_normal(shape)
    if kind == "rademacher":
        return 2.0 * gen.integers(0, 2, size=shape) - 1.0
    if kind == "student":
        return gen.standard_t(q, size=shape) * np.sqrt((q - 2.0) / q)
    return gen.standard_normal(shape) * (gen.random(shape) < q) / np.sqrt(q)
