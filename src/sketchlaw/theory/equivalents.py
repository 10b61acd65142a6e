"""Finite-size theory: deterministic equivalents of a Gaussian sketch (docs/METHODS.md §12).

Its approximation error (κ from Σ λ_i/(λ_i + κ) = M), and its spectrum and initial profile, which run through the
exact recursion give the sketched problem's risk without drawing a sketch. These are approximations of the system
measured at finite size, not asymptotic rates (those are ``sketchlaw.theory.rates``); the resolvent continuation is a
compiled kernel, so importing this module loads numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy import optimize

from sketchlaw.engine.spectra import Prior, Spectrum, tail_sums
from sketchlaw.theory.rates import effective_dimension

DE_HEAD = 10**6  # coordinates summed exactly in the deterministic equivalent; the rest by tail sums


def sketch_approx_de(kind: str, a: float, M, b: float | None = None, head: int = DE_HEAD) -> np.ndarray:
    """Deterministic equivalent of E Approx for a Gaussian sketch of the infinite-dimensional spectrum, at each M.

    With κ > 0 solving Σ_i λ_i/(λ_i + κ) = M (the sketch keeps about M "effective" directions),
        E Approx ≈ Σ_i λ_i s_i · κ/(λ_i + κ)          (s_i the prior variances; s = 1 isotropic).
    Coordinates i ≤ head are summed exactly, the rest to second order in λ_i/κ with the exact tail sums.
    This is a finite-M theory, not an asymptotic rate: it reproduces the exact engine's E Approx to within 1 %
    (tests/test_theory.py) and shows why some slopes converge slowly, e.g. for the log power law the slope of
    log Approx against log log M is still −1.16 (a = 2) at M = 10⁶, against the asymptotic −(a − 1) = −1,
    because the sketch's effective cutoff is ≈ M/log M rather than M; for a source condition with b = a + 1 it
    carries a log M factor (M^−a log M), and for b > a + 1 it saturates at M^−a.
    """
    spectrum, prior = Spectrum(kind, a, head), Prior(b)
    lam, s = spectrum.eigenvalues(), prior.variances(spectrum)
    tail = tail_sums(spectrum, prior)
    tail_lam2 = tail_sums(spectrum, Prior())["tau_H2L"]  # Σ_{i>head} λ_i² (isotropic tau_H2L)

    def dof(log_kappa):
        k = np.exp(log_kappa)
        return np.sum(lam / (lam + k)) + tail["tau_H"] / k - tail_lam2 / k**2

    out = []
    for m in np.atleast_1d(np.asarray(M, dtype=float)):
        log_kappa = optimize.brentq(lambda t: dof(t) - m, np.log(lam[-1]) + 2.0, np.log(lam[0]) + 10.0,
                                    xtol=1e-14, rtol=1e-14)
        k = np.exp(log_kappa)
        out.append(np.sum(lam * s * k / (lam + k)) + tail["tau_HL"] - tail["tau_H2L"] / k)
    return np.array(out)


DE_FAR_DECADES = 4     # spacing of the far grid of E Approx's equivalent, in decades of M
DE_FAR_LAST = 56       # its last point, M = 10^56 (the log power law's slopes converge like log log M / log M)
DE_FAR_LOG_KAPPA = -460.0  # and κ ≥ e^-460 ≈ 1e-200 (power law: κ ≂ M^-a), far from underflow


def _approx_de_quadrature(kind: str, a: float, M, b: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(log κ, E Approx) of the deterministic equivalent at each M, on the M = ∞ limit's representation of the
    spectrum (``sketchlaw.engine.limit.LimitModes``: exact head, Gauss–Legendre quadrature in log i, closed-form far
    tail) instead of an exact sum over the first 10⁶ coordinates, so M can be astronomically large.

    The representation must reach far below κ (its far tail is summed to first order in λ/κ), and κ is what is being
    solved for: it is rebuilt out to λ ≤ 1e-8·κ/2 until κ stops moving. Sums are written in log κ so nothing
    underflows. Agrees with ``sketch_approx_de`` to < 1e-6 relative (tests/test_theory.py).
    """
    from sketchlaw.engine.limit import LimitModes, far_tail_energy

    M = np.atleast_1d(np.asarray(M, dtype=float))

    def solve(rep, m):
        log_lam, n = np.log(rep.mu), rep.multiplicity
        log_tau = math.log(far_tail_energy(kind, a, None, rep.x_end))
        dof = lambda t: float(np.sum(n / (1.0 + np.exp(t - log_lam)))) + math.exp(log_tau - t) - m  # noqa: E731
        lo = min(log_tau - math.log(m), float(log_lam.min())) - 1.0  # below it the far tail alone gives dof > m
        return optimize.brentq(dof, lo, float(log_lam.max()) + 10.0, xtol=1e-13, rtol=1e-15)

    rep = LimitModes(kind, a, b, horizon=1.0, frozen_tol=1.0)
    log_kappa = math.inf
    for _ in range(500):  # each pass reaches further down the spectrum; κ settles once the reach passes it
        new = solve(rep, M.max())
        rep = LimitModes(kind, a, b, horizon=1e8 * math.exp(-new), frozen_tol=1.0)
        if abs(new - log_kappa) < 1e-12:
            break
        log_kappa = new
    log_lam, n, s = np.log(rep.mu), rep.multiplicity, rep.p0
    tail = far_tail_energy(kind, a, b, rep.x_end)  # Σ_far λ s: all of it is Approx (λ ≪ κ)
    log_kappas = np.array([solve(rep, m) for m in M])
    approx = [float(np.sum(n * rep.mu * s / (1.0 + np.exp(log_lam - t)))) + tail for t in log_kappas]
    return log_kappas, np.array(approx)


def sketch_approx_de_far(kind: str, a: float, M_max: float, b: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(M, E Approx) of the deterministic equivalent from the grid's largest M out to M = 10^56 every 4 decades
    (or, for the power law, while κ ≳ 1e-200): where the finite-size theory's own slope is heading (the M rows'
    extrapolation, docs/METHODS.md §14). At least five points: the grid shrinks to ×4 steps when the reach is short."""
    M_max = float(M_max)
    last = DE_FAR_LAST * math.log(10.0)
    if kind == "power":
        last = min(last, -DE_FAR_LOG_KAPPA / a)  # κ ≈ M^-a (up to a constant of order 1)
    step = DE_FAR_DECADES * math.log(10.0)
    if last - math.log(M_max) < 4 * step:
        step = max((last - math.log(M_max)) / 4, math.log(4.0))
    M = M_max * np.exp(step * np.arange(5 if step <= math.log(4.0) else int((last - math.log(M_max)) // step) + 1))
    return M, _approx_de_quadrature(kind, a, M, b)[1]


# The sums may be reassociated ('reassoc' only: no other fast-math liberty), so LLVM runs them in SIMD lanes: ~4x
# faster than in-order sums (benchmarks/bench_core.py --only resolvent), which differ from these by rounding (~1e-14
# relative). The lane order is fixed by the compiled code, so a run repeats bit for bit on a machine, cached or not.
@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _resolvent_sums(count_w, lam, energy_w, k):
    """One pass over the modes: df(κ) = Σ c_i/(λ_i + κ) with c_i = n_i λ_i, its derivative, E(κ) = Σ e_i/(λ_i + κ)
    and its derivative. 1/(λ_i + κ) is taken as conj(w)/|w|² after scaling w = λ_i + κ by 1/(|Re w| + |Im w|), so
    |w|² neither overflows nor underflows whatever the scale of κ (down to ~1e-200 on the far grid), without a
    branch that would keep the loop from being vectorized."""
    kr, ki = k.real, k.imag
    df_r = df_i = ddf_r = ddf_i = e_r = e_i = de_r = de_i = 0.0
    for i in range(lam.shape[0]):
        wr = lam[i] + kr
        c = 1.0 / (abs(wr) + abs(ki))
        x, y = wr * c, ki * c
        r = c / (x * x + y * y)
        inv_r, inv_i = x * r, -y * r  # 1/w
        q_r, q_i = count_w[i] * inv_r, count_w[i] * inv_i
        df_r += q_r
        df_i += q_i
        ddf_r -= q_r * inv_r - q_i * inv_i  # −q/w
        ddf_i -= q_r * inv_i + q_i * inv_r
        s_r, s_i = energy_w[i] * inv_r, energy_w[i] * inv_i
        e_r += s_r
        e_i += s_i
        de_r -= s_r * inv_r - s_i * inv_i
        de_i -= s_r * inv_i + s_i * inv_r
    return complex(df_r, df_i), complex(ddf_r, ddf_i), complex(e_r, e_i), complex(de_r, de_i)


# Newton's last step on κ: once a step is below this relative size, the next iterate's error is of its square
# (~1e-14), and df and E there follow from their derivatives to that order, without one more pass over the modes.
NEWTON_LAST_STEP = 1e-7


@njit(cache=True, error_model="numpy")
def _resolvent_densities(lam_w, lam, energy_w, M, mu, rel_eta):
    """Counting and energy densities at z = μ + i·rel_eta·μ along the grid ``mu`` (decreasing, uniform in log μ): κ(z)
    solving −z = κ(1 − df(κ)/M) on the branch Im κ < 0 (the Stieltjes transform (1/M) tr(Σ − z)⁻¹ = 1/κ has positive
    imaginary part), by Newton's method with continuation along z, each point started from the cubic through the last
    four converged κ (one Newton step then usually suffices: ``NEWTON_LAST_STEP``); a point where Newton does not
    converge is left out (zero) and the continuation restarts from κ = −z. Returns (counts, energy) =
    (M·Im(1/κ)/π, Im Σ e_i/(λ_i + κ)/π)."""
    counts = np.zeros(mu.shape[0])
    energy = np.zeros(mu.shape[0])
    count_w = lam_w * lam
    k = complex(-mu[0], -1e-3 * mu[0])
    k1, k2, k3, k4 = k, k, k, k  # the last converged κ, most recent first
    behind = 0  # how many of them are consecutive grid points
    for idx in range(mu.shape[0]):
        z = complex(mu[idx], rel_eta * mu[idx])
        if behind >= 4:
            guess = 4.0 * k1 - 6.0 * k2 + 4.0 * k3 - k4
        elif behind == 3:
            guess = 3.0 * (k1 - k2) + k3
        elif behind == 2:
            guess = 2.0 * k1 - k2
        else:
            guess = k
        if guess.imag < 0:
            k = guess
        done = False
        for _ in range(100):
            df, ddf, e, de = _resolvent_sums(count_w, lam, energy_w, k)
            step = (-k + k * df / M - z) / (-1.0 + (df + k * ddf) / M)
            k_new = k - step
            if abs(step) <= NEWTON_LAST_STEP * abs(k) and k_new.imag < 0:
                df -= ddf * step
                e -= de * step
                k = k_new
                done = True
                break
            if k_new.imag > 0:  # stay on the physical branch
                k_new = complex(k_new.real, 0.5 * k.imag)
            k = k_new
        if not done:
            df, _d, e, _de = _resolvent_sums(count_w, lam, energy_w, k)
        if abs(-k * (1.0 - df / M) - z) > 1e-8 * abs(z) or k.imag >= 0:
            k = -z  # not converged: leave this point out, restart the continuation
            behind = 0
            continue
        counts[idx] = M * (1.0 / k).imag / np.pi
        energy[idx] = e.imag / np.pi
        k4, k3, k2, k1 = k3, k2, k1, k
        behind += 1
    return counts, energy


def warm_up() -> None:
    """Compile (or load from numba's cache) the deterministic equivalents' kernels on a tiny input (as
    ``sketchlaw.engine.exact.warm_up`` does for the engine's)."""
    lam = np.array([1.0, 0.5, 0.25])
    _resolvent_densities(np.ones(3), lam, lam**2, 2.0, np.array([0.8, 0.4]), 0.01)


def sketched_modes_de(kind: str, a: float, M: int, b: float | None = None, grid_step: float = 0.002,
                      cell: int = 10, head_factor: int = 8):
    """Deterministic equivalent of the sketched problem's modes: weighted modes (μ_k, p_k(0), n_k) standing for the
    M eigenvalues μ_j of Σ = SHSᵀ (S Gaussian with N(0, 1/M) entries, d = ∞) and their initial error profile p_j(0),
    plus the deterministic equivalent of E Approx. Returns (mu, p0, multiplicity, approx).

    Method. Σ's nonzero spectrum is that of the sample covariance Ĥ = H^(1/2) SᵀS H^(1/2) of M Gaussian samples, whose
    resolvent has the deterministic equivalent Ĥ(Ĥ − z)⁻¹ ≍ H(H + κ)⁻¹ with κ(z) solving −z = κ(1 − df(κ)/M),
    df(κ) = Σ_i λ_i/(λ_i + κ). Hence
        counting measure  Σ_j δ(μ − μ_j):            (1/M) tr(Σ − z)⁻¹ ≍ 1/κ(z),
        energy measure    Σ_j μ_j² p_j(0) δ(μ − μ_j):  tr((Σ − z)⁻¹ S H Λ_w H Sᵀ) ≍ Σ_i λ_i² s_i/(λ_i + κ(z))
    (the second by the push-through identity; at z = 0 it gives E Approx = Σ_i λ_i s_i κ₀/(λ_i + κ₀), as
    ``sketch_approx_de``). Their densities are (1/π) Im of these at z = μ + iη. They are evaluated on a grid in
    log μ of step ``grid_step`` with η = grid_step·μ (a Poisson smoothing of relative width equal to the grid step,
    which shifts smooth functionals of the spectrum by O(grid_step²) only) and each grid cell becomes one mode:
    n_k = density of counts × cell width, p_k(0) = (energy density × cell width)/(μ_k² n_k). The infinite sums over i
    use the limit engine's representation (``sketchlaw.engine.limit.LimitModes``: exact head of ``head_factor``·M modes,
    where κ can come close to −λ_i; Gauss–Legendre quadrature in log i beyond; the far tail to first order in λ/κ).
    κ is followed by Newton's method from above the spectrum downwards. The modes are a theory: no sketch is drawn.
    """
    from sketchlaw.engine.limit import LimitModes, far_tail_energy

    head = max(math.ceil(head_factor * M), 64)
    # the quadrature must reach λ ≪ κ₀ (found on a short representation first): run it out to λ ≤ 1e-8·κ₀/2
    rep = LimitModes(kind, a, b, horizon=1.0, head=head, nodes_per_octave=8, frozen_tol=1.0)
    kappa0 = _kappa_from(rep.mu, rep.multiplicity, M)
    rep = LimitModes(kind, a, b, horizon=1e8 / kappa0, head=head, nodes_per_octave=8, frozen_tol=1.0)
    lam, n, s = rep.mu, rep.multiplicity, rep.p0
    lam_w = n.copy()
    energy_w = n * lam**2 * s  # n_i λ_i² s_i
    # the far tail (λ ≪ |κ|): Σ λ/(λ+κ) ≈ τ/κ, Σ λ²s/(λ+κ) ≈ τ₂/κ; append it as one mode of tiny λ carrying both
    tau = far_tail_energy(kind, a, None, rep.x_end)  # Σ_far λ
    lam_far = far_tail_energy(kind, a, None, rep.x_end, power=2) / tau  # Σ_far λ² / Σ_far λ
    lam = np.append(lam, lam_far)
    lam_w = np.append(lam_w, tau / lam_far)
    energy_w = np.append(energy_w, rep.tail_decay)
    kappa0 = _kappa_from(lam, lam_w, M)
    far_energy = far_tail_energy(kind, a, b, rep.x_end)  # Σ_far λ s: the far tail is all Approx (λ ≪ κ₀)
    approx = float(np.sum((energy_w / lam * kappa0 / (lam + kappa0))[:-1])) + far_energy  # Σ λ s κ/(λ+κ)

    top = float(lam[0] + np.sum(lam_w * lam) / M)
    logmu = np.arange(np.log(4.0 * top), np.log(1e-3 * kappa0), -grid_step)
    mu = np.exp(logmu)

    def densities(rel_eta):
        return _resolvent_densities(lam_w, lam, energy_w, float(M), mu, rel_eta)

    # Poisson smoothing of width η biases the densities by O(η), inside the support and in the Cauchy tails
    # outside it (whose second moment diverges); Richardson extrapolation in η removes that first-order term.
    c1, e1 = densities(grid_step)
    c2, e2 = densities(grid_step / 2)
    counts, energy = np.maximum(2 * c2 - c1, 0.0), np.maximum(2 * e2 - e1, 0.0)
    width = mu * grid_step
    n_k = counts * width
    c_k = energy * width  # c_j = μ_j² p_j(0): T(z) = Σ_j c_j/(μ_j − z), Im T = −Σ_i λ_i² s_i Im κ/|λ_i + κ|² > 0
    # lump ``cell`` grid points into one mode: its count, its mean μ, its bias energy Σ c/μ
    edges = np.arange(0, len(mu), cell)
    n_c = np.add.reduceat(n_k, edges)
    mu_c = np.add.reduceat(n_k * mu, edges) / n_c
    e_c = np.add.reduceat(c_k / mu, edges)
    keep = (n_c > 1e-12 * M) & (e_c > 0)
    mu_c, n_c, e_c = mu_c[keep], n_c[keep], e_c[keep]
    return mu_c, e_c / (mu_c * n_c), n_c, approx


def _kappa_from(lam, lam_w, M):
    """κ₀ > 0 solving Σ_i n_i λ_i/(λ_i + κ₀) = M (n_i the multiplicities in ``lam_w``)."""
    f = lambda t: float(np.sum(lam_w * lam / (lam + np.exp(t)))) - M  # noqa: E731
    return float(np.exp(optimize.brentq(f, np.log(lam.min()) - 5, np.log(lam.max()) + 10, xtol=1e-14)))


def sketched_excess_de(kind: str, a: float, b: float | None, M: int, sigma2: float, gamma: float, N_grid,
                       schedule: str = "geometric", log_base: str = "e", **modes_options):
    """Finite-M theory of the N_eff direction: deterministic-equivalent bias and variance of the sketched model
    along the step-size schedule. DataFrame with columns N, N_eff, bias, variance, excess, approx.

    The modes of ``sketched_modes_de`` (the deterministic equivalent of the sketched spectrum {μ_j} and initial
    profile {p_j(0)}, no sketch drawn) are run through the exact per-mode recursion as weighted modes
    (``ExactEngine`` with multiplicities), with noise σ² + E Approx (E Approx from the same κ₀): bias from p(0)
    without noise, variance from 0 with that noise. All N in one ``run_many`` call.
    """
    import pandas as pd

    from sketchlaw.engine.exact import ExactEngine
    from sketchlaw.engine.schedules import Schedule

    mu, p0, n, approx = sketched_modes_de(kind, a, M, b, **modes_options)
    schedules = [Schedule(gamma, int(round(float(x))), schedule, log_base) for x in np.atleast_1d(N_grid)]
    rows = ExactEngine(mu, p0, sigma2, approx, multiplicity=n).run_many(schedules)
    df = pd.DataFrame({"N": [s.N for s in schedules], "N_eff": [s.N_eff for s in schedules],
                       "bias": [r.bias for r in rows], "variance": [r.variance for r in rows]})
    df["excess"] = df["bias"] + df["variance"]
    df["approx"] = approx
    return df


# The compute frontier's equivalent evaluates the risk at many sizes: a coarser spectral grid than the default (the
# risk moves by < 5e-4 relative, tests/test_frontier.py), cells of one grid point, and a head of 2M exact modes.
FRONTIER_MODES = {"grid_step": 0.02, "cell": 1, "head_factor": 2}


def frontier_de(kind: str, a: float, b: float | None, sigma2: float, gamma: float, budgets, M_min: float,
                M_max: float, schedule: str = "geometric", log_base: str = "e", per_octave: int = 6):
    """The continuous compute-optimal frontier of the deterministic equivalent: for each budget C, the real M that
    minimizes the equivalent's R − σ² at N = round(C/M) (``sketched_modes_de`` run through the exact recursion, as
    ``sketched_excess_de``, plus its E Approx). DataFrame with columns compute, M_star, N_star, reducible_star,
    interior, k_star (the effective dimension (γ N_eff)^(1/a) at N*: where M* stands against it tells the regime of
    the balance, docs/METHODS.md §14), evaluations.

    The equivalent is a smooth function of a real M, up to a ripple of relative size ~1e-4 at N ~ 10³ (N = C/M is
    rounded to whole steps, and the schedule's phases too) that fades as N grows. It is evaluated on the log grid
    M_min·2^(k/per_octave) up to M_max, only where needed: budgets are taken in increasing order, each starting from
    the previous optimum and stepping downhill to the grid minimum; a cubic spline of log(R − σ²) in log M through
    three grid points on each side is then minimized between the minimum's neighbours. Interpolation error: halving
    the spacing moves M* by < 1e-3 relative where N* ≳ 10⁴ (tests/test_frontier.py); at N* ~ 10³ the ripple, on a
    curve this flat at its minimum, moves it by up to a few per cent (the smallest budgets, below every fit's window).
    A minimum on the grid's ends is not interior (M_star is then that end)."""
    import pandas as pd
    from scipy.interpolate import CubicSpline

    from sketchlaw.engine.exact import ExactEngine
    from sketchlaw.engine.schedules import Schedule

    log_M = math.log(M_min) + np.arange(int(math.floor(math.log2(M_max / M_min) * per_octave + 1e-9)) + 1) \
        * math.log(2.0) / per_octave
    engines: dict[int, ExactEngine] = {}
    values: dict[tuple, float] = {}

    def reducible(k: int, C: float) -> float:
        if (k, C) not in values:
            if k not in engines:
                mu, p0, n, approx = sketched_modes_de(kind, a, math.exp(log_M[k]), b, **FRONTIER_MODES)
                engines[k] = ExactEngine(mu, p0, sigma2, approx, multiplicity=n)
            N = int(round(C / math.exp(log_M[k])))
            values[(k, C)] = engines[k].run(Schedule(gamma, N, schedule, log_base)).risk - sigma2 if N >= 2 \
                else math.inf
        return values[(k, C)]

    rows, k = [], 0
    last = len(log_M) - 1
    for C in sorted(float(c) for c in budgets):
        while k < last and reducible(k + 1, C) < reducible(k, C):
            k += 1
        while k > 0 and reducible(k - 1, C) < reducible(k, C):
            k -= 1
        row = {"compute": C, "M_star": math.exp(log_M[k]), "reducible_star": reducible(k, C), "interior": False}
        if 0 < k < last and math.isfinite(reducible(k + 1, C)):
            ks = [j for j in range(k - 3, k + 4) if 0 <= j <= last and math.isfinite(reducible(j, C))]
            spline = CubicSpline(log_M[ks], np.log([reducible(j, C) for j in ks]))
            best = optimize.minimize_scalar(spline, bounds=(log_M[k - 1], log_M[k + 1]), method="bounded",
                                            options={"xatol": 1e-10})
            row.update(M_star=math.exp(best.x), reducible_star=math.exp(float(best.fun)), interior=True)
        row["N_star"] = C / row["M_star"]
        N_eff = Schedule(gamma, max(2, int(round(row["N_star"]))), schedule, log_base).N_eff
        row["k_star"] = float(effective_dimension(N_eff, gamma, a))
        row["evaluations"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows, columns=["compute", "M_star", "N_star", "reducible_star", "interior", "k_star",
                                       "evaluations"])

