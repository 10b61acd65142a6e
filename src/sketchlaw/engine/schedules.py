"""Step-size schedules, represented as constant-step phases [(γ_ℓ, n_ℓ), ...].

The paper's schedule (docs/METHODS.md §2; log base: §16): γ_t = γ · 2^-⌊(t-1)/K⌋ with K = N_eff = N / log N. The log base is not
stated in the paper; it is an option here (default: natural log, ``log_base="e"``). The last phase may be partial.

Other kinds (t = 1, ..., N counts updates; γ is always the largest step size, which the stability check uses):

- ``geometric`` with other phase lengths: K = N_eff / ``phase_factor`` (halving c times as often), or
  K = N / ``n_phases`` (a given number of halvings). The step sizes stay γ·2^-ℓ.
- ``polynomial``: γ_t = γ / (1 + (t − 1)/t₀)^p  (p = ``power``, t₀ = ``t0``; γ_1 = γ).
- ``power``: decay to zero over the horizon, γ_t = γ (1 − (t − 1)/N)^q (q = ``power``), the shape the
  functional-scaling-law analyses find optimal.
- ``cosine``: γ_t = γ_min + (γ − γ_min)(1 + cos(π (t − 1)/N))/2, γ_min = ``final`` · γ.
- ``wsd`` (warmup–stable–decay): linear warmup γ t / W over the first W = ⌈``warmup`` · N⌉ steps, constant γ, then a
  linear decay to zero over the last D = ⌈``decay`` · N⌉ steps, γ_t = γ (N − t + 1)/(D + 1) (the last step is γ/(D+1)).

The smooth kinds are run as piecewise constant: steps are grouped into maximal runs whose values of
log(γ_t/γ + ε) fall in one bin of width log(1 + δ), δ = ``rel_tol``, ε = SMOOTH_FLOOR = 1e-4 (so γ varies by a
relative δ within a piece while γ_t ≫ εγ, and by at most ≈ δεγ below), and each piece's step size is the mean of
γ_t over its steps, which keeps the intrinsic time Σ γ_t exact. Near the end the pieces are also cut where log(1 + N − t) crosses a multiple
of log(1 + η), η = ``end_tol``, so a piece at distance r from the last step is at most ≈ ηr long: a mode that
relaxes within a piece remembers only the last pieces, and there it sees them averaged over many steps, which keeps
the discretization error second order (without the end cuts it is first order in δ). The error left is the
noise injection's Σ γ_t² − n·mean(γ)² ≈ n·mean(γ)²·δ²/12 per piece: relative error of the excess risk
≈ δ²/12 (measured 1e-5 at δ = 1e-2, up to 1.1e-6 at δ = 2e-3, below 1e-6 at the default δ = 1e-3 for every kind,
a and b tested; tests/test_schedules.py). Pieces: at most ≈ log(1/ε)/δ + log(N)/η (≈ 9500 at the defaults and
N = 1e6; never more than N). Each piece longer than 4M steps costs a phase decomposition (O(M²)), shorter ones
are stepped (O(M) per step). ``exact_step_sizes()`` gives the undiscretized γ_t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sketchlaw.errors import ParameterError, check_int, check_real

LOG_BASES = {"e": math.e, "2": 2.0, "10": 10.0}
PIECEWISE = ("geometric", "constant")
SMOOTH = ("polynomial", "power", "cosine", "wsd")
SCHEDULES = PIECEWISE + SMOOTH
DEFAULT_REL_TOL = 1e-3
DEFAULT_END_TOL = 0.05
SMOOTH_FLOOR = 1e-4  # below SMOOTH_FLOOR·γ the pieces have absolute (not relative) tolerance ≈ δ·SMOOTH_FLOOR·γ
_CHUNK = 2**20  # steps evaluated at once when grouping a smooth schedule into pieces (memory O(chunk))


def effective_sample_size(N: int, log_base: str = "e") -> float:
    """N_eff = N / log N (the phase length of the geometric schedule)."""
    N = check_int("N", N, minimum=2)
    if str(log_base) not in LOG_BASES:
        raise ParameterError("log_base", log_base, f"one of {', '.join(LOG_BASES)}")
    return N / math.log(N, LOG_BASES[str(log_base)])


@dataclass(frozen=True)
class Schedule:
    """A step-size schedule for N SGD updates starting at (or peaking at) step size gamma.

    The first four fields are the paper's; the rest parameterize the other kinds (see the module docstring) and are
    ignored by kinds that do not use them.
    """

    gamma: float
    N: int
    kind: str = "geometric"
    log_base: str = "e"
    phase_factor: float = 1.0
    n_phases: int | None = None
    power: float = 1.0
    t0: float = 1.0
    final: float = 0.0
    warmup: float = 0.0
    decay: float = 0.1
    rel_tol: float = DEFAULT_REL_TOL
    end_tol: float = DEFAULT_END_TOL

    def __post_init__(self):
        object.__setattr__(self, "gamma", check_real("gamma", self.gamma, gt=0.0))
        object.__setattr__(self, "N", check_int("N", self.N, minimum=2))
        if self.kind not in SCHEDULES:
            raise ParameterError("schedule", self.kind, f"one of {', '.join(SCHEDULES)}")
        object.__setattr__(self, "log_base", str(self.log_base))
        if self.log_base not in LOG_BASES:
            raise ParameterError("log_base", self.log_base, f"one of {', '.join(LOG_BASES)}")
        object.__setattr__(self, "phase_factor", check_real("phase_factor", self.phase_factor, gt=0.0))
        if self.n_phases is not None:
            object.__setattr__(self, "n_phases", check_int("n_phases", self.n_phases, minimum=1, maximum=self.N))
        object.__setattr__(self, "power", check_real("power", self.power, gt=0.0))
        object.__setattr__(self, "t0", check_real("t0", self.t0, gt=0.0))
        object.__setattr__(self, "final", check_real("final", self.final, ge=0.0, lt=1.0))
        object.__setattr__(self, "warmup", check_real("warmup", self.warmup, ge=0.0, lt=1.0))
        object.__setattr__(self, "decay", check_real("decay", self.decay, gt=0.0))
        if self.warmup + self.decay > 1.0:
            raise ParameterError("decay", self.decay, f"a fraction with warmup + decay <= 1 (warmup={self.warmup})")
        object.__setattr__(self, "rel_tol", check_real("rel_tol", self.rel_tol, gt=0.0, lt=1.0))
        object.__setattr__(self, "end_tol", check_real("end_tol", self.end_tol, gt=0.0, lt=1.0))
        if self.kind == "geometric" and self.phase_length < 1:
            raise ParameterError("N", self.N, "large enough that the geometric phase length is >= 1")

    @property
    def N_eff(self) -> float:
        """N / log N; for the other schedules also reported as N / log N so axes stay comparable."""
        return effective_sample_size(self.N, self.log_base)

    @property
    def phase_length(self) -> float:
        """K of the geometric schedule: N_eff / phase_factor, or N / n_phases."""
        return self.N / self.n_phases if self.n_phases is not None else self.N_eff / self.phase_factor

    @property
    def label(self) -> str:
        """A short name that tells the schedule's parameters apart (for tables and legends)."""
        if self.kind == "geometric":
            if self.n_phases is not None:
                return f"geometric ({self.n_phases} phases)"
            return "geometric" if self.phase_factor == 1.0 else f"geometric (K = N_eff/{self.phase_factor:g})"
        if self.kind == "polynomial":
            return f"polynomial (p = {self.power:g}, t0 = {self.t0:g})"
        if self.kind == "power":
            return f"power decay to 0 (q = {self.power:g})"
        if self.kind == "cosine":
            return "cosine" if self.final == 0 else f"cosine (to {self.final:g} gamma)"
        if self.kind == "wsd":
            return f"WSD (warmup {self.warmup:g}, decay {self.decay:g})"
        return self.kind

    def phases(self) -> list[tuple[float, int]]:
        """[(step size, number of steps)] in order; the lengths add up to N.

        Geometric: steps t-1 in [ℓK, (ℓ+1)K) have step γ/2^ℓ, i.e. ceil((ℓ+1)K) - ceil(ℓK) steps per phase.
        """
        if self.kind == "constant":
            return [(self.gamma, self.N)]
        if self.kind in SMOOTH:
            return self._pieces()
        K = self.phase_length
        out, ell, done = [], 0, 0
        while done < self.N:
            end = min(self.N, math.ceil((ell + 1) * K))
            if end > done:
                out.append((self.gamma * 2.0 ** -ell, end - done))
            done, ell = end, ell + 1
        return out

    def step_sizes(self):
        """Per-step γ_t as run (smooth kinds: piecewise constant) as a numpy array of length N."""
        return np.concatenate([np.full(n, g) for g, n in self.phases()])

    def exact_step_sizes(self, t=None) -> np.ndarray:
        """The undiscretized γ_t at steps t (default 1, ..., N)."""
        t = np.arange(1, self.N + 1, dtype=float) if t is None else np.asarray(t, dtype=float)
        g, N = self.gamma, self.N
        if self.kind == "constant":
            return np.full(t.shape, g)
        if self.kind == "geometric":
            return g * 2.0 ** -np.floor((t - 1) / self.phase_length)
        if self.kind == "polynomial":
            return g * (1.0 + (t - 1) / self.t0) ** -self.power
        if self.kind == "power":
            return g * (1.0 - (t - 1) / N) ** self.power
        if self.kind == "cosine":
            return g * (self.final + (1.0 - self.final) * 0.5 * (1.0 + np.cos(np.pi * (t - 1) / N)))
        W, D = math.ceil(self.warmup * N), math.ceil(self.decay * N)  # wsd
        out = np.full(t.shape, g)
        if W:
            out = np.where(t <= W, g * (t / W), out)
        return np.where(t > N - D, g * ((N - t + 1) / (D + 1)), out)

    def _pieces(self) -> list[tuple[float, int]]:
        delta = self.rel_tol
        width, end_width = math.log1p(delta), math.log1p(self.end_tol)
        sums, counts, bins, lows, highs = [], [], [], [], []
        for start in range(0, self.N, _CHUNK):
            t = np.arange(start + 1, min(self.N, start + _CHUNK) + 1)
            g = self.exact_step_sizes(t)
            level = np.floor(np.log(g / self.gamma + SMOOTH_FLOOR) / width).astype(np.int64)
            band = np.floor(np.log1p(self.N - t) / end_width).astype(np.int64)
            k = level * (1 + int(math.log1p(self.N) / end_width) + 1) + band  # one key per (level, band)
            first = np.concatenate([[0], np.flatnonzero(np.diff(k)) + 1])
            s, c, b = np.add.reduceat(g, first), np.diff(np.append(first, len(g))), k[first]
            lo, hi = np.minimum.reduceat(g, first), np.maximum.reduceat(g, first)
            if bins and bins[-1] == b[0]:  # a piece running across the chunk boundary
                sums[-1] += s[0]; counts[-1] += int(c[0])
                lows[-1], highs[-1] = min(lows[-1], lo[0]), max(highs[-1], hi[0])
                s, c, b, lo, hi = s[1:], c[1:], b[1:], lo[1:], hi[1:]
            sums.extend(s.tolist()); counts.extend(int(x) for x in c); bins.extend(b.tolist())
            lows.extend(lo.tolist()); highs.extend(hi.tolist())
        # The mean, kept inside the piece's range (rounding must not lift it above γ, the stability check's value).
        return [(min(max(s / c, lo), hi), c) for s, c, lo, hi in zip(sums, counts, lows, highs)]


@dataclass(frozen=True)
class PhaseSchedule:
    """A schedule given by its phases [(γ, n), ...] directly (e.g. one phase per step, to step a schedule exactly)."""

    phase_list: tuple

    def __post_init__(self):
        phases = tuple((check_real("gamma", float(g), gt=0.0), check_int("n", int(n), minimum=1))
                       for g, n in self.phase_list)
        if not phases:
            raise ParameterError("phase_list", self.phase_list, "at least one (step size, count) pair")
        object.__setattr__(self, "phase_list", phases)

    @classmethod
    def per_step(cls, step_sizes) -> "PhaseSchedule":
        return cls(tuple((float(g), 1) for g in np.asarray(step_sizes, dtype=float)))

    kind = "phases"

    @property
    def gamma(self) -> float:
        return max(g for g, _ in self.phase_list)

    @property
    def N(self) -> int:
        return sum(n for _, n in self.phase_list)

    def phases(self) -> list[tuple[float, int]]:
        return list(self.phase_list)

    def step_sizes(self) -> np.ndarray:
        return np.concatenate([np.full(n, g) for g, n in self.phase_list])
