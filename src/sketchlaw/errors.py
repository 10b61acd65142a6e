"""Errors raised on bad input: each names the offending parameter and its allowed range."""

from __future__ import annotations

import numbers


class ParameterError(ValueError):
    """A parameter is outside its allowed range; ``str(err)`` names the parameter and the range."""

    def __init__(self, name: str, value, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name}={value!r} is invalid: allowed {allowed}")


class DivergenceError(ArithmeticError):
    """SGD diverges (expected second moment grows without bound, or iterates became non-finite)."""


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as int, or raise ParameterError if it is not an integer in [minimum, maximum]."""
    allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (
        f" and <= {maximum}" if maximum is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer() and not isinstance(value, bool):
            value = int(value)
        else:
            raise ParameterError(name, value, allowed)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParameterError(name, value, allowed)
    return value


def check_real(name: str, value, *, gt: float | None = None, ge: float | None = None,
               lt: float | None = None) -> float:
    """Return ``value`` as a finite float, or raise ParameterError naming the allowed open/closed range."""
    parts = []
    if gt is not None:
        parts.append(f"> {gt}")
    if ge is not None:
        parts.append(f">= {ge}")
    if lt is not None:
        parts.append(f"< {lt}")
    allowed = "a finite real number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(name, value, allowed)
    v = float(value)
    if not (v == v and abs(v) != float("inf")):
        raise ParameterError(name, value, allowed)
    if (gt is not None and not v > gt) or (ge is not None and not v >= ge) or (lt is not None and not v < lt):
        raise ParameterError(name, value, allowed)
    return v
