"""The M → ∞ limit of the sketched model: one-pass SGD on the unsketched, infinite-dimensional problem.

As M → ∞ (with d = ∞) the sketch resolves every direction SGD can reach, Approx → 0, and the expected risk
recursion of ``sketchlaw.engine.exact`` becomes the one of the original problem: modes μ_i = λ_i (i = 1, 2, ...),
p_i(0) = s_i (the prior variance: 1 isotropic, i^-b/λ_i under a source condition), noise σ². The theorem's N_eff
term (Bias + Var at M = ∞) is this limit. The infinite sum over i is represented in three parts:

1. head: modes i = 1..K exactly (multiplicity 1), with an Euler–Maclaurin end correction (below);
2. body: the continuum i ≥ K + ½ by Gauss–Legendre quadrature in u = log i, ``nodes_per_octave`` nodes on each
   octave [x₀2^k, x₀2^(k+1)], x₀ = K + ½. A node at x with weight w_u stands for w_u·x modes of eigenvalue λ(x) and
   prior variance s(x) (an ExactEngine mode of multiplicity w_u·x). The recursion couples modes only through the
   scalar Σ_k μ_k p_k, and every p(λ, t) is a smooth function of λ, so the quadrature of that sum is the only
   approximation; the octaves run out to x_end, the first octave end with 2λ(x_end)·T ≤ ``frozen_tol``
   (T = Σ_t γ_t, the schedule's total step of the longest N): beyond it no mode moves by more than frozen_tol;
3. far tail x > x_end, in closed form: its modes hardly move (2λT ≤ frozen_tol), so to first order in λT they add
   τ_far − 2T·τ₂,far to the excess, with τ_far = ∫_{x_end}^∞ λ(x)s(x) dx and τ₂,far = ∫_{x_end}^∞ λ(x)²s(x) dx
   (λs = x^-b, λ²s = x^-(a+b) for the power law; log power law by quadrature in log x). The constant τ_far also
   drives the other modes exactly as label noise of variance τ_far would (the modes couple only through
   Σ_k μ_k p_k), so with V₁ the engine's variance at unit noise:
       bias = B_engine + τ_far·(1 + V₁) − 2T·τ₂,far,     variance = σ²·V₁.
   Neglected: second order in frozen_tol (decay); the far tail's own variance, the energy its modes pick up,
   p_i ← d_i p_i + γ_t²λ_i(E_{t−1} + σ²) with d_i ≤ 1 and E the whole excess, which adds
       Σ_far λ_i² · Σ_t γ_t²(E_{t−1} + σ²) ≤ γ_max·T·(E_max + σ²)·τ₂,λ ≤ (frozen_tol/2)·γ_max·(E_max + σ²)·Σ_far λ_i
   (τ₂,λ = ∫_{x_end}^∞ λ² dx ≤ λ(x_end)·Σ_far λ_i; the noise a mode picks up scales with its λ_i, not with its
   prior energy, so τ_far does not bound it: for b > a it is smaller than Σ_far λ_i; ``tail_variance_bound``);
   and the effect of its decay on the other modes (≤ frozen_tol·τ_far·γ tr H).
   Why a closed form rather than more quadrature nodes: the engine deflates modes whose rank-one weight √n·μ is
   below ~1e-14 (it then drops their coupling to the others), and the energy such frozen modes carry acts on the
   others as noise over all N steps; here that energy is carried exactly instead.

Sum to integral: Σ_{i>K} f(i) = ∫_{K+½}^∞ f(x) dx + f'(K+½)/24 + O(f'''), and f'(K+½) ≈ f(K+1) − f(K); the head
carries this as multiplicity 23/24 on mode K and an extra mode K + 1 of multiplicity 1/24 (all weights stay
positive), which leaves an error O(f'''(K)) ~ K^-3 relative to a mode's own term.

Discretization error (tests/test_limit.py): doubling the head to 2000 and the nodes per octave to 16 changes the
excess by at most 3.6e-7 relative (a = 1.5, 2, 3 with b = 1.25, 1.5, 2 and isotropic; N = 10² … 10¹⁰; geometric and
constant schedules); the head alone (500 → 2000) by < 1e-9, so ``head=500`` is a safe 2.5× faster choice. Moving the
head's end across k* = (γN_eff)^(1/a) changes local slopes by < 1e-6 (no kink). Precision floor: the engine's
deflation drops couplings below ~eps relative per step, so errors grow like eps·Σ_t γ_t; local slopes drift by
~1e-4 at Σ_t γ_t ≳ 1e11 (constant schedule N ≳ 10¹², geometric N ≳ 10¹³).

Convergence of the local slope (measured, γ = 0.1, σ² = 1). Geometric schedule, slope against N_eff:
- bias: the deviation from −(b − 1)/a decays as a power, ∝ N_eff^(−(a−1)/a) (per decade ×2.1, 3.1, 3.8, 4.4 for
  a = 1.5, 2, 2.5, 3, whatever b), i.e. the correction is relative (γN_eff)^(−(a−1)/a) ~ 1/k*^(a−1);
- bias + variance, source b < a: the variance/bias ratio falls as N_eff^(−(a−b)/a), which then dominates the
  deviation (×1.8–1.9, 2.7, 3.3 per decade for a = 2, 2.5, 3 at b = 1.5);
- bias + variance, isotropic (b = a): variance and bias have the same exponent, so the deviation follows the bias,
  plus a log-periodic ripple of the variance (the geometric schedule has ⌈log N⌉ phases, the last partial) of
  ±1e-4 (a = 2), ±3e-4 (a = 2.5), ±1e-3 (a = 3) that does not decay.
Constant schedule: bias + variance tends to the variance floor (slope → 0); the bias's slope against N converges
to −(b − 1)/a as a power (a = 2: ×10 per decade), but against N_eff = N/log N it is off by ≈ −(b − 1)/(a log N), a
1/log N convergence that comes from the axis alone.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import integrate

from sketchlaw.errors import ParameterError, check_int, check_real
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import SPECTRA

HEAD = 1000
NODES_PER_OCTAVE = 8
FROZEN_TOL = 1e-6


def eigenvalue(kind: str, a: float, x) -> np.ndarray:
    """λ(x) at real index x ≥ 1: x^-a (power) or 1/(x log^a(x + 1)) (log power), as in ``spectra.Spectrum``."""
    x = np.asarray(x, dtype=float)
    if kind == "power":
        return x ** -a
    return 1.0 / (x * np.log1p(x) ** a)


def prior_variance(kind: str, a: float, b: float | None, x) -> np.ndarray:
    """s(x): 1 for the isotropic prior, x^-b/λ(x) under the source condition E[λ_i w_i²] = i^-b."""
    x = np.asarray(x, dtype=float)
    if b is None:
        return np.ones_like(x)
    return x ** -b / eigenvalue(kind, a, x)


def far_tail_energy(kind: str, a: float, b: float | None, x_end: float, power: int = 1) -> float:
    """∫_{x_end}^∞ λ(x)^power s(x) dx (power 1: the prior energy of the modes the limit engine keeps frozen;
    power 2: the rate at which that energy starts to decay, d/dT = −2·this)."""
    if kind == "power" or b is not None:
        e = (a if b is None else b) + (power - 1) * a  # λ^power·s = x^-e (power law), x^-b·λ^(power−1) (source)
        if kind == "power":
            return x_end ** (1.0 - e) / (e - 1.0)

    def integrand(u):  # x·λ^power·s in u = log x (dx = x du), in logs so nothing overflows
        log_x_lam = -a * math.log(u + math.log1p(math.exp(-u)))  # log(x·λ(x)) = −a·log log(1 + x)
        log_s = 0.0 if b is None else (1.0 - b) * u - log_x_lam
        return math.exp(power * log_x_lam + (1 - power) * u + log_s)

    val, _ = integrate.quad(integrand, math.log(x_end), np.inf, epsabs=0, epsrel=1e-12, limit=500)
    return val


def total_step(schedule: Schedule) -> float:
    """T = Σ_t γ_t: the 'time' a schedule runs for (a mode of eigenvalue λ decays as ≈ exp(−2λT))."""
    return float(sum(g * n for g, n in schedule.phases()))


class LimitModes:
    """The weighted modes (μ, p(0), multiplicity) of the M → ∞ problem and its frozen far-tail energy.

    Built for a horizon T (the largest total step it will be run for); see the module docstring for the method.
    """

    def __init__(self, kind: str, a: float, b: float | None, horizon: float, head: int = HEAD,
                 nodes_per_octave: int = NODES_PER_OCTAVE, frozen_tol: float = FROZEN_TOL):
        if kind not in SPECTRA:
            raise ParameterError("spectrum", kind, f"one of {', '.join(SPECTRA)}")
        self.kind, self.a = kind, check_real("a", a, gt=1.0)
        self.b = None if b is None else check_real("b", b, gt=1.0)
        self.head = check_int("head", head, minimum=2)
        self.nodes_per_octave = check_int("nodes_per_octave", nodes_per_octave, minimum=1)
        self.horizon = check_real("horizon", horizon, gt=0.0)
        self.frozen_tol = check_real("frozen_tol", frozen_tol, gt=0.0)
        self._engine = None

        K = self.head
        idx = np.arange(1, K + 2, dtype=float)
        n_head = np.ones(K + 1)
        n_head[K - 1], n_head[K] = 23.0 / 24.0, 1.0 / 24.0  # Euler–Maclaurin end correction (module docstring)

        x0 = K + 0.5
        t, w = np.polynomial.legendre.leggauss(self.nodes_per_octave)
        octave = math.log(2.0)
        u_nodes, u_weights = [], []
        k = 0
        while True:
            lo = math.log(x0) + k * octave
            u_nodes.append(lo + 0.5 * octave * (t + 1.0))
            u_weights.append(0.5 * octave * w)
            k += 1
            x_end = x0 * 2.0 ** k
            if 2.0 * float(eigenvalue(kind, a, x_end)) * self.horizon <= self.frozen_tol:
                break
        x = np.exp(np.concatenate(u_nodes))
        n_body = np.concatenate(u_weights) * x

        pos = np.concatenate([idx, x])
        self.index = pos
        self.multiplicity = np.concatenate([n_head, n_body])
        self.mu = eigenvalue(kind, a, pos)
        self.p0 = prior_variance(kind, a, self.b, pos)
        self.x_end = x_end
        self.octaves = k
        self.tail_energy = far_tail_energy(kind, a, self.b, x_end)
        self.tail_decay = far_tail_energy(kind, a, self.b, x_end, power=2)
        self.tail_trace = far_tail_energy(kind, a, None, x_end)  # Σ_far λ_i (s = 1)
        self.tail_trace2 = far_tail_energy(kind, a, None, x_end, power=2)  # Σ_far λ_i²

    def __len__(self) -> int:
        return len(self.mu)

    def initial_excess(self) -> float:
        """Σ_i λ_i s_i as represented (head + quadrature + far tail): the excess risk at N = 0."""
        return float(np.dot(self.multiplicity, self.mu * self.p0)) + self.tail_energy

    def tail_variance_bound(self, schedule, sigma2: float, excess_max: float) -> float:
        """Upper bound on what ``run`` leaves out as the far tail's own variance after ``schedule``: the energy
        its frozen modes pick up, Σ_far λ_i² Σ_t γ_t²(E_{t−1} + σ²) ≤ γ_max·T·(excess_max + σ²)·Σ_far λ_i²,
        with excess_max a bound on the whole excess E_t along the run (module docstring). Within the horizon this
        is at most (frozen_tol/2)·γ_max·(excess_max + σ²)·Σ_far λ_i."""
        gmax = max(g for g, _ in schedule.phases())
        return gmax * total_step(schedule) * (excess_max + sigma2) * self.tail_trace2

    def engine(self) -> ExactEngine:
        """The exact engine of the represented modes at unit noise (``with_tail`` adds the far tail and σ²), built
        once: σ² enters only ``with_tail``, so kept modes rerun at another σ² reuse every phase map."""
        if self._engine is None:
            self._engine = ExactEngine(self.mu, self.p0, 1.0, 0.0, multiplicity=self.multiplicity)
        return self._engine

    def with_tail(self, schedule: Schedule, result, sigma2: float) -> dict:
        """Bias and variance of the M = ∞ problem after ``schedule``, from the unit-noise ``engine()``'s result for
        it: the far tail added in closed form (module docstring), the variance scaled by σ²."""
        if total_step(schedule) > self.horizon * (1 + 1e-12):
            raise ParameterError("schedules", "longer than the horizon", f"total step <= {self.horizon:.6g}")
        v1 = result.variance
        tail = self.tail_energy * (1.0 + v1) - 2.0 * total_step(schedule) * self.tail_decay
        return {"bias": result.bias + tail, "variance": sigma2 * v1}

    def run(self, schedules, sigma2: float) -> list[dict]:
        """Bias and variance after each schedule of the paper's kinds (one ``ExactEngine.run_many`` call, which
        shares the phases of equal step size), far tail included."""
        schedules = list(schedules)
        return [self.with_tail(s, r, sigma2) for s, r in zip(schedules, self.engine().run_many(schedules))]


def limit_curve(spectrum: str, a: float, b: float | None, sigma2: float, gamma: float, N_grid,
                schedule: str = "geometric", log_base: str = "e", head: int = HEAD,
                nodes_per_octave: int = NODES_PER_OCTAVE, frozen_tol: float = FROZEN_TOL) -> pd.DataFrame:
    """Expected excess risk of one-pass SGD at M = ∞ (no sketch, d = ∞) along an N grid: columns N, N_eff, bias,
    variance, excess (= bias + variance; the risk is σ² + excess, Approx = 0).

    spectrum "power" (λ_i = i^-a) or "logpower" (λ_i = i^-1 log^-a(i + 1)); b None (isotropic prior, s_i = 1) or
    the source exponent (s_i = i^-b/λ_i); schedule and log_base as in ``sketchlaw.engine.schedules.Schedule``. The modes
    are those of ``LimitModes`` (exact head of ``head`` modes, Gauss–Legendre quadrature in log i over octaves,
    closed-form frozen far tail), built once for the largest N, and all N are run in one ``ExactEngine.run_many``
    call (phases with the same step size are decomposed once).
    """
    sigma2 = check_real("sigma2", sigma2, ge=0.0)
    Ns = [int(round(float(n))) for n in np.atleast_1d(N_grid)]
    schedules = [Schedule(gamma, n, schedule, log_base) for n in Ns]
    horizon = max(total_step(s) for s in schedules)
    modes = LimitModes(spectrum, a, b, horizon, head, nodes_per_octave, frozen_tol)
    rows = modes.run(schedules, sigma2)
    df = pd.DataFrame({"N": Ns, "N_eff": [s.N_eff for s in schedules],
                       "bias": [r["bias"] for r in rows], "variance": [r["variance"] for r in rows]})
    df["excess"] = df["bias"] + df["variance"]
    return df


FAR_DECADES = 4      # spacing of the far grid, in decades of N
FAR_LAST = 56        # its last point, N = 10^56 (the far tail's closed form is validated up to there; see tests)


def far_grid(N_max: float) -> list[int]:
    """N = 10^k beyond an experiment's grid, k = ⌊log10 N_max⌋ + 4, + 8, … ≤ 56: where the exact M = ∞ limit is
    run to see where its local slope is heading (the N_eff rows' extrapolation; docs/METHODS.md §14)."""
    first = int(math.floor(math.log10(float(N_max)))) + FAR_DECADES
    return [10**k for k in range(first, FAR_LAST + 1, FAR_DECADES)]
