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

Finding the pieces costs O(pieces·log N) evaluations of γ_t, not O(N): each bin edge (of the level on a range where
γ_t is monotone, and of the end band) is found by bisection over the integer step index, and the steps around it
are compared one by one, so the pieces are exactly those of grouping every step (tests/test_schedules.py). Up to
N = EXACT_SUMS_MAX = 2²² each piece's Σ γ_t is still summed over its steps in the order of that grouping (the same
bits); beyond, from a few evaluations per piece (Gregory's rule, relative error ~1e-15), so N = 10¹⁰ takes about
as long as N = 10⁶.
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
_WINDOW = 3  # steps either side of each bin edge found by bisection that are compared one by one
EXACT_SUMS_MAX = 2**22  # up to this N each piece's Σ γ_t is summed over its steps (see Schedule._sums_by_steps)
_GREGORY_MIN = 64  # blocks shorter than this are summed step by step (Schedule._sums_closed)
_GAUSS_NODES = 20
_GREGORY = (1 / 12, 1 / 24, 19 / 720, 3 / 160, 863 / 60480, 275 / 24192)  # Gregory's coefficients G_2 ... G_7


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
            cached = self.__dict__.get("_pieces_cache")
            if cached is None:
                cached = tuple(self._pieces())
                object.__setattr__(self, "_pieces_cache", cached)
            return list(cached)
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

    def _level(self, g: np.ndarray) -> np.ndarray:
        """The bin of log(γ_t/γ + ε) of width log(1 + δ) (pieces never cross one)."""
        return np.floor(np.log(g / self.gamma + SMOOTH_FLOOR) / math.log1p(self.rel_tol)).astype(np.int64)

    def _band(self, t: np.ndarray) -> np.ndarray:
        """The bin of log(1 + N − t) of width log(1 + η) (the end cuts)."""
        return np.floor(np.log1p(self.N - t) / math.log1p(self.end_tol)).astype(np.int64)

    def _key(self, t: np.ndarray) -> np.ndarray:
        """One integer per (level, band): a piece is a maximal run of steps with the same key."""
        stride = 1 + int(math.log1p(self.N) / math.log1p(self.end_tol)) + 1
        return self._level(self.exact_step_sizes(t)) * stride + self._band(t)

    def _monotone_segments(self) -> list[tuple[int, int, int]]:
        """(first, last, direction) of the step ranges on which γ_t is monotone (+1 increasing, −1 not increasing):
        all of them for polynomial, power and cosine; the warmup and the rest for wsd."""
        if self.kind == "wsd":
            W, D = math.ceil(self.warmup * self.N), math.ceil(self.decay * self.N)
            up = min(W, self.N - D)
            if up >= 1:
                return [(1, up, 1)] + ([(up + 1, self.N, -1)] if up < self.N else [])
        return [(1, self.N, -1)]

    def _piece_starts(self, search: bool | None = None) -> np.ndarray:
        """The first step of every piece (sorted, starting with 1).

        By search (O(pieces·log N) evaluations): each bin edge of the level on a monotone range and each band edge
        is the first step past it, found by bisection over the integer step index for all edges at once; then the
        steps around each edge found are compared one by one (a few either side), which also catches a level that
        rounding makes flicker at an edge. By scan (every step, in chunks): where the key changes. ``search`` None
        takes the scan when it costs fewer evaluations.
        """
        N = self.N
        segments = self._monotone_segments()
        ends = np.array([[a, b] for a, b, _ in segments], dtype=np.int64)
        end_levels = self._level(self.exact_step_sizes(ends.ravel())).reshape(-1, 2)
        n_edges = int(np.abs(end_levels[:, 1] - end_levels[:, 0]).sum()) + int(self._band(np.array([1]))[0])
        if search is None:
            search = n_edges * (N.bit_length() + 2) + 16 * n_edges < N
        if not search:
            starts = [np.array([1], dtype=np.int64)]
            prev = None
            for c0 in range(0, N, _CHUNK):
                t = np.arange(c0 + 1, min(N, c0 + _CHUNK) + 1)
                k = self._key(t)
                change = np.flatnonzero(np.diff(k)) + 1
                if prev is not None and k[0] != prev:
                    starts.append(t[:1])
                starts.append(t[change])
                prev = k[-1]
            return np.concatenate(starts)
        lo, hi, target, kind = [], [], [], []
        for (a, b, direction), (la, lb) in zip(segments, end_levels):
            if la != lb:  # non-increasing: first t with level < v, v = lb+1..la; increasing: level >= v, v = la+1..lb
                v = np.arange(min(la, lb) + 1, max(la, lb) + 1, dtype=np.int64)
                lo.append(np.full(len(v), a, dtype=np.int64)); hi.append(np.full(len(v), b, dtype=np.int64))
                target.append(v); kind.append(np.full(len(v), direction))
        top = int(self._band(np.array([1]))[0])
        if top > 0:  # bands do not increase: first t with band < v, v = 1..band(1)
            v = np.arange(1, top + 1, dtype=np.int64)
            lo.append(np.ones(len(v), dtype=np.int64)); hi.append(np.full(len(v), N, dtype=np.int64))
            target.append(v); kind.append(np.zeros(len(v), dtype=np.int64))
        found = [np.array([a for a, _, _ in segments], dtype=np.int64)]
        if target:
            lo, hi, target, kind = map(np.concatenate, (lo, hi, target, kind))
            while True:  # invariant: the predicate is false at lo and true at hi
                open_ = hi - lo > 1
                if not open_.any():
                    break
                mid = lo + (hi - lo) // 2
                m, v, kd = mid[open_], target[open_], kind[open_]
                ok = np.empty(len(m), dtype=bool)
                band = kd == 0
                if band.any():
                    ok[band] = self._band(m[band]) < v[band]
                if (~band).any():
                    lev = self._level(self.exact_step_sizes(m[~band]))
                    ok[~band] = np.where(kd[~band] > 0, lev >= v[~band], lev < v[~band])
                idx = np.flatnonzero(open_)
                hi[idx[ok]] = m[ok]
                lo[idx[~ok]] = m[~ok]
            found.append(hi)
        # Every step within _WINDOW of an edge found, compared with its predecessor.
        centre = np.unique(np.concatenate(found))
        t = np.unique((centre[:, None] + np.arange(-_WINDOW, _WINDOW + 1)[None, :]).ravel())
        t = t[(t >= 2) & (t <= N)]
        k = self._key(np.concatenate([t - 1, t]))
        return np.concatenate([[1], t[k[:len(t)] != k[len(t):]]]).astype(np.int64)

    def _pieces(self, search: bool | None = None) -> list[tuple[float, int]]:
        starts = self._piece_starts(search)
        counts = np.diff(np.append(starts, self.N + 1))
        if self.N <= EXACT_SUMS_MAX:
            sums, lows, highs = self._sums_by_steps(starts)
        else:
            sums, lows, highs = self._sums_closed(starts, counts)
        # The mean, kept inside the piece's range (rounding must not lift it above γ, the stability check's value).
        return [(min(max(s / c, lo), hi), int(c)) for s, c, lo, hi in zip(sums, counts.tolist(), lows, highs)]

    def _sums_by_steps(self, starts: np.ndarray):
        """Σ, min and max of γ_t over each piece, every step evaluated, in chunks of _CHUNK steps summed with
        np.add.reduceat and added across chunk edges: the same floating-point operations in the same order as
        grouping step by step, so the step sizes are the same bits whichever way the pieces were found."""
        sums, lows, highs = [], [], []
        for c0 in range(0, self.N, _CHUNK):
            t = np.arange(c0 + 1, min(self.N, c0 + _CHUNK) + 1)
            g = self.exact_step_sizes(t)
            inside = starts[(starts > c0 + 1) & (starts <= t[-1])] - (c0 + 1)
            first = np.concatenate([[0], inside])
            s, lo, hi = np.add.reduceat(g, first), np.minimum.reduceat(g, first), np.maximum.reduceat(g, first)
            if sums and not np.any(starts == c0 + 1):  # a piece running across the chunk boundary
                sums[-1] += s[0]
                lows[-1], highs[-1] = min(lows[-1], lo[0]), max(highs[-1], hi[0])
                s, lo, hi = s[1:], lo[1:], hi[1:]
            sums.extend(s.tolist()); lows.extend(lo.tolist()); highs.extend(hi.tolist())
        return sums, lows, highs

    def _sums_closed(self, starts: np.ndarray, counts: np.ndarray):
        """Σ, min and max of γ_t over each piece without visiting its steps (O(1) evaluations per block): short
        blocks are summed step by step; a long block [a, b] on which γ_t is smooth (a linear stretch of wsd, or
        shorter than its distance to the singularity of the closed form) by Gregory's rule,
        Σ_{t=a}^{b} f(t) = ∫_a^b f + (f(a) + f(b))/2 + Σ_k G_{k+1}(∇^k f(b) + (−1)^k Δ^k f(a)),
        with the integral by Gauss–Legendre quadrature. Relative error ~1e-15 (tests/test_schedules.py)."""
        ends = starts + counts - 1
        whole = self._one_block(starts, ends)  # most pieces are one block: only the others are cut (in Python)
        blocks = [np.stack([starts[whole], ends[whole], counts[whole] < _GREGORY_MIN, np.flatnonzero(whole)], 1)]
        for i in np.flatnonzero(~whole).tolist():
            blocks.append(np.array([(lo_, hi_, by_steps, i) for lo_, hi_, by_steps
                                    in self._smooth_blocks(int(starts[i]), int(ends[i]))], dtype=np.int64))
        blocks = np.concatenate(blocks).astype(np.int64).reshape(-1, 4)
        a, b, short, owner = blocks[:, 0], blocks[:, 1], blocks[:, 2].astype(bool), blocks[:, 3]
        n = b - a + 1
        sums = np.zeros(len(starts))
        if short.any():  # step by step
            ns = n[short]
            t = np.repeat(a[short] - np.cumsum(np.concatenate([[0], ns[:-1]])), ns) + np.arange(ns.sum())
            part = np.add.reduceat(self.exact_step_sizes(t), np.concatenate([[0], np.cumsum(ns)[:-1]]))
            np.add.at(sums, owner[short], part)
        long_ = ~short
        if long_.any():
            a, b = a[long_], b[long_]
            x, w = np.polynomial.legendre.leggauss(_GAUSS_NODES)
            half, mid = 0.5 * (b - a).astype(float), 0.5 * (a + b).astype(float)
            f = self.exact_step_sizes(mid[:, None] + half[:, None] * x[None, :])
            total = half * (f @ w)
            k = np.arange(len(_GREGORY) + 1)
            fa = self.exact_step_sizes(a[:, None] + k[None, :])  # f(a), ..., f(a + K)
            fb = self.exact_step_sizes(b[:, None] - k[None, :])  # f(b), ..., f(b − K)
            total += 0.5 * (fa[:, 0] + fb[:, 0])
            da, db = fa, fb
            for j, G in enumerate(_GREGORY, start=1):
                da, db = np.diff(da, axis=1), -np.diff(db, axis=1)  # Δ^j f(a + ·), ∇^j f(b − ·)
                total += G * (db[:, 0] + (-1) ** j * da[:, 0])
            np.add.at(sums, owner[long_], total)
        # Extremes: γ_t is monotone between the piece's ends and the wsd kinks inside it.
        probe = [starts, ends]
        if self.kind == "wsd":
            W, D = math.ceil(self.warmup * self.N), math.ceil(self.decay * self.N)
            for kink in (W, W + 1, self.N - D, self.N - D + 1):
                probe.append(np.clip(np.full(len(starts), kink), starts, ends))
        vals = self.exact_step_sizes(np.stack(probe))
        return sums.tolist(), vals.min(axis=0).tolist(), vals.max(axis=0).tolist()

    def _one_block(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether each [a, b] is a single block of ``_smooth_blocks`` (the same rules, vectorized)."""
        n = b - a + 1
        if self.kind == "wsd":
            W, D = math.ceil(self.warmup * self.N), math.ceil(self.decay * self.N)
            inside = np.zeros(len(a), dtype=bool)
            for c in {min(W, self.N - D), self.N - D}:
                inside |= (a <= c) & (c < b)
            return (n < _GREGORY_MIN) | ~inside
        if self.kind == "cosine":
            return n <= max(_GREGORY_MIN, self.N // 8)
        near = _GREGORY_MIN * (1.0 + self.power)
        dist = a - (1.0 - self.t0) if self.kind == "polynomial" else self.N + 1.0 - b
        return (n < _GREGORY_MIN) | ((dist >= near) & (n <= np.floor(dist)))

    def _smooth_blocks(self, a: int, b: int) -> list[tuple[int, int, bool]]:
        """[a, b] cut into blocks (first, last, summed step by step): a block shorter than _GREGORY_MIN, or nearer
        to the closed form's singularity than _GREGORY_MIN·(1 + exponent) steps (polynomial: t = 1 − t₀, power:
        t = N + 1), is summed step by step; the others are linear stretches (wsd) or no longer than their distance
        to the singularity (cosine: N/8), where Gregory's rule and the quadrature are accurate."""
        if b - a + 1 < _GREGORY_MIN:
            return [(a, b, True)]
        if self.kind == "wsd":
            W, D = math.ceil(self.warmup * self.N), math.ceil(self.decay * self.N)
            cuts = sorted({c for c in (min(W, self.N - D), self.N - D) if a <= c < b})
            edges = [a] + [c + 1 for c in cuts] + [b + 1]
            return [(lo, hi - 1, hi - lo < _GREGORY_MIN) for lo, hi in zip(edges[:-1], edges[1:])]
        if self.kind == "cosine":
            step = max(_GREGORY_MIN, self.N // 8)
            return [(lo, min(b, lo + step - 1), min(b, lo + step - 1) - lo + 1 < _GREGORY_MIN)
                    for lo in range(a, b + 1, step)]
        near = _GREGORY_MIN * (1.0 + self.power)
        out = []
        if self.kind == "polynomial":  # singular at 1 − t0, left of every step: blocks grow with the distance
            sing = 1.0 - self.t0
            lo = a
            if lo - sing < near:
                hi = min(b, math.floor(sing + near))
                out.append((lo, hi, True))
                lo = hi + 1
            while lo <= b:
                hi = min(b, lo + int(lo - sing) - 1)
                out.append((lo, hi, hi - lo + 1 < _GREGORY_MIN))
                lo = hi + 1
        else:  # power: singular at N + 1, right of every step
            sing = self.N + 1.0
            hi = b
            if sing - hi < near:
                lo = max(a, math.ceil(sing - near))
                out.append((lo, hi, True))
                hi = lo - 1
            while hi >= a:
                lo = max(a, hi - int(sing - hi) + 1)
                out.append((lo, hi, hi - lo + 1 < _GREGORY_MIN))
                hi = lo - 1
            out.reverse()
        return out


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
