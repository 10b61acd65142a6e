"""Step-size schedules, represented as constant-step phases [(γ_ℓ, n_ℓ), ...].

The paper's schedule (PAPER.md §2.3): γ_t = γ · 2^-⌊(t-1)/K⌋ with K = N_eff = N / log N. The log base is not
stated in the paper; it is an option here (default: natural log, ``log_base="e"``). The last phase may be partial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ParameterError, check_int, check_real

LOG_BASES = {"e": math.e, "2": 2.0, "10": 10.0}
SCHEDULES = ("geometric", "constant")


def effective_sample_size(N: int, log_base: str = "e") -> float:
    """N_eff = N / log N (the phase length of the geometric schedule)."""
    N = check_int("N", N, minimum=2)
    if str(log_base) not in LOG_BASES:
        raise ParameterError("log_base", log_base, f"one of {', '.join(LOG_BASES)}")
    return N / math.log(N, LOG_BASES[str(log_base)])


@dataclass(frozen=True)
class Schedule:
    """A step-size schedule for N one-pass SGD steps starting at step size gamma."""

    gamma: float
    N: int
    kind: str = "geometric"
    log_base: str = "e"

    def __post_init__(self):
        object.__setattr__(self, "gamma", check_real("gamma", self.gamma, gt=0.0))
        object.__setattr__(self, "N", check_int("N", self.N, minimum=2))
        if self.kind not in SCHEDULES:
            raise ParameterError("schedule", self.kind, f"one of {', '.join(SCHEDULES)}")
        object.__setattr__(self, "log_base", str(self.log_base))
        if self.log_base not in LOG_BASES:
            raise ParameterError("log_base", self.log_base, f"one of {', '.join(LOG_BASES)}")
        if self.kind == "geometric" and self.N_eff < 1:
            raise ParameterError("N", self.N, "large enough that N / log N >= 1")

    @property
    def N_eff(self) -> float:
        """N / log N; for the constant schedule also reported as N / log N so axes stay comparable."""
        return effective_sample_size(self.N, self.log_base)

    def phases(self) -> list[tuple[float, int]]:
        """[(step size, number of steps)] in order; the lengths add up to N.

        Steps t-1 in [ℓK, (ℓ+1)K) have step γ/2^ℓ, i.e. ceil((ℓ+1)K) - ceil(ℓK) steps per phase.
        """
        if self.kind == "constant":
            return [(self.gamma, self.N)]
        K = self.N_eff
        out, ell, done = [], 0, 0
        while done < self.N:
            end = min(self.N, math.ceil((ell + 1) * K))
            if end > done:
                out.append((self.gamma * 2.0 ** -ell, end - done))
            done, ell = end, ell + 1
        return out

    def step_sizes(self):
        """Per-step γ_t as a numpy array of length N (for tests and the naive reference)."""
        import numpy as np

        return np.concatenate([np.full(n, g) for g, n in self.phases()])
