"""The theorems' rates, exponents and regimes (docs/METHODS.md §12): every asymptotic exponent of the project, once.

Rates hold up to constants that depend only on a (and b); the exponents are what the fits are checked against.
Slopes are signed: the slope of log(R − σ²) against log M is −(a − 1) for the main theorem. Pure numpy: a notebook
that draws a guide line imports this without loading any compiled kernel.

Regimes. SGD that has run for the intrinsic time t = Σ_t γ_t (N_eff·γ for the paper's schedule) has fitted about
k* = t^(1/a) eigendirections. A slope measures one term of the risk only where the other term is negligible; every
window rule keeps the points a factor WINDOW_MARGIN inside the regime it measures:
  the sketch limits nothing    M ≥ margin·t^(1/a)      (the N_eff, N, L slopes)
  the data limit nothing       t ≥ margin·M^a          (the M slopes: k* ≥ margin^(1/a)·M)
  the dataset limits nothing   N ≥ margin·L^(b/a)      (multi-pass SGD: L updates over N samples)
"""

from __future__ import annotations

import math

import numpy as np

WINDOW_MARGIN = 4.0


def fitted_dimension(time, a):
    """k* = t^(1/a): the number of eigendirections SGD has fitted after the intrinsic time t = Σ_t γ_t."""
    return np.asarray(time, dtype=float) ** (1.0 / a)


def effective_dimension(N_eff, gamma, a):
    """k* = (N_eff γ)^(1/a) for the paper's schedule (intrinsic time N_eff·γ)."""
    return fitted_dimension(np.asarray(N_eff, dtype=float) * gamma, a)


def sketch_limits_nothing(M, time, a, margin: float = WINDOW_MARGIN) -> np.ndarray:
    """Mask of the points where the sketch limits nothing: M ≥ margin·t^(1/a)."""
    return np.asarray(M, dtype=float) >= margin * fitted_dimension(time, a)


def data_limits_nothing(M, time, a, margin: float = WINDOW_MARGIN) -> np.ndarray:
    """Mask of the points where the data limit nothing: t ≥ margin·M^a (SGD has fitted every direction of the
    sketch, and R − σ² is the approximation error)."""
    return np.asarray(time, dtype=float) >= margin * np.asarray(M, dtype=float) ** a


def dataset_limits_nothing(N, L, a, b, margin: float = WINDOW_MARGIN) -> np.ndarray:
    """Mask of the numbers of updates L over N fixed samples where reuse costs nothing: L ≤ (N/margin)^(a/b),
    i.e. N ≥ margin·L^(b/a) (relative slack for round-off)."""
    return np.asarray(L, dtype=float) <= (np.asarray(N, dtype=float) / margin) ** (a / b) * (1 + 1e-12)


def rates(M, N_eff, gamma, a, b=None, sigma2=1.0, spectrum="power"):
    """Order-of-magnitude rates (constants set to 1) of Approx, Bias and Var (dict of arrays).

    power (b = a unless given):  Approx ≂ M^(1−b), Bias ≂ (N_eff γ)^((1−b)/a), Var ≂ σ² min(M, k*)/N_eff
    logpower:                    Approx ≂ log^(1−a) M, Bias ≂ log^(1−a)(N_eff γ), Var ≂ σ² γ / log^a(N_eff γ)
    """
    M = np.asarray(M, dtype=float)
    N_eff = np.asarray(N_eff, dtype=float)
    if spectrum == "logpower":
        t = N_eff * gamma
        return {"approx": np.log(M) ** (1 - a), "bias": np.log(t) ** (1 - a),
                "variance": sigma2 * gamma / np.log(t) ** a}
    b = a if b is None else b
    k = effective_dimension(N_eff, gamma, a)
    return {"approx": M ** (1 - b), "bias": (N_eff * gamma) ** ((1 - b) / a),
            "variance": sigma2 * np.minimum(M, k) / N_eff}


def variance_predictor(M, steps_eff, gamma, batch, a):
    """min(M, (T_eff γ)^(1/a))/(B·T_eff): the variance of (mini-batch) SGD over the noise σ_M² = σ² + Approx, up
    to a constant, after T_eff effective steps of size γ with batches of B (B = 1: the Var rate of ``rates``)."""
    steps_eff = np.asarray(steps_eff, dtype=float)
    return np.minimum(M, fitted_dimension(steps_eff * gamma, a)) / (batch * steps_eff)


BATCH_VARIANCE_EXPONENT = 1.0  # the variance is proportional to its predictor (the slope of one against the other)


def exponents(kind: str, a: float, b: float | None = None, sigma2: float = 1.0) -> dict[str, float]:
    """Theory slopes by variable for an experiment's theory key (the registry's ``Experiment.theory``).

    main / source: slopes of log(R − σ²) against log M and log N_eff. M: −min(b − 1, a) (b = a for the isotropic
      prior): a Gaussian sketch resolves the leading directions only up to its effective regularization κ ≂ M^−a,
      so the slope saturates at −a for b > a + 1; at b = a + 1 the rate is M^−a log M, not a power, and the slope
      is omitted. N_eff (the M = ∞ limit's Bias + Var): Bias ≂ N_eff^−(b−1)/a and Var ≂ σ² N_eff^−(a−1)/a, so the
      slower of the two wins: −(min(a, b) − 1)/a with noise, −(b − 1)/a without (σ² = 0).
    logpower: slopes of log(R − σ²) against log log M and log log N_eff: −(a − 1) each.
    compute: the minimum of R − σ² over M at a budget C = M·N (``compute_exponents``).
    reuse: multi-pass SGD over a fixed dataset, while the dataset limits nothing (``dataset_limits_nothing``): the
      M term of the source condition, and the N_eff term against the number of updates L.
    batch: the variance against its predictor (``variance_predictor``): 1.
    """
    b = a if b is None else b
    if kind in ("main", "source"):
        out = {"M": -min(b - 1.0, a)} if not np.isclose(b, a + 1.0) else {}
        out["N_eff"] = -(min(a, b) - 1.0) / a if sigma2 > 0 else -(b - 1.0) / a
        return out
    if kind == "logpower":
        return {"log_M": -(a - 1.0), "log_N_eff": -(a - 1.0)}
    if kind == "compute":
        return compute_exponents(a, b, sigma2)
    if kind == "reuse":
        source = exponents("source", a, b, sigma2)
        return {k: v for k, v in (("M", source.get("M", math.nan)), ("L", source["N_eff"]))}
    if kind == "batch":
        return {"variance_predictor": BATCH_VARIANCE_EXPONENT}
    raise KeyError(f"no theory exponents for {kind!r}")


def schedule_exponent(kind: str, default_phases: bool, against: str, a: float, b: float | None = None) -> float:
    """The slope of R − σ² where the literature states one for a step-size schedule (b ≤ a): the paper's geometric
    decay (its own phase length) against N_eff and the power decay to zero against N, both −(b − 1)/a; NaN for every
    other schedule, variable or b > a."""
    b = a if b is None else b
    stated = (kind == "geometric" and default_phases and against == "N_eff") or (kind == "power" and against == "N")
    return -(b - 1.0) / a if stated and b <= a else math.nan


def power_decay_exponent(a: float) -> float:
    """q = 2a − 1 of the power decay to zero γ(1 − t/N)^q: the shape the functional-scaling-law analyses of one-pass
    SGD on a power-law spectrum find optimal (used when a schedule spec gives no q)."""
    return 2.0 * a - 1.0


def compute_exponents(a: float, b: float | None = None, sigma2: float = 1.0) -> dict[str, float]:
    """Exponents of the compute-optimal frontier, M* ∝ C^e, N* = C/M* ∝ C^(1−e), R* − σ² ∝ C^r (up to log factors:
    ``frontier_coordinates``), from the balance of the rates' terms at N = C/M (docs/METHODS.md §12). With
    α = min(b − 1, a) the exponent of Approx ≂ M^−α (b = a: isotropic prior):
      b ≤ a, σ² > 0    Approx against Bias (the variance, of the same order as Bias at b = a, is smaller):
                       e = 1/(a + 1), r = −(b − 1)/(a + 1);
      b > a, σ² > 0    Bias now decays faster than Var ≂ σ² M/N_eff, and Approx meets Var: e = 1/(α + 2),
                       r = −α/(α + 2) (the optimum has M* below k*, so Var is σ²M/N_eff);
      σ² = 0           Approx against Bias for every b: e = (b − 1)/(a² + b − 1) when α = a (b > a + 1), else
                       1/(a + 1); r = −α·e.
    At b = a + 1 Approx is M^−a log M, not a power: no exponents (empty)."""
    b = a if b is None else b
    if np.isclose(b, a + 1.0):
        return {}
    alpha = min(b - 1.0, a)
    if sigma2 > 0 and b > a:
        e = 1.0 / (alpha + 2.0)
    elif alpha == a:
        e = (b - 1.0) / (a * a + b - 1.0)
    else:
        e = 1.0 / (a + 1.0)
    return {"M_star": e, "N_star": 1.0 - e, "reducible_star": -alpha * e}


def frontier_coordinates(variable: str, a: float, C, b: float | None = None, sigma2: float = 1.0):
    """(x, factor) in which the compute-optimal law is a pure power, y / factor ∝ x^e (docs/METHODS.md §12). N_eff =
    N/log N puts log C beside C in every balance of ``compute_exponents``, so M* and R* − σ² ∝ (C/log C)^e: x =
    C/log C and factor 1; N* = C/M* ∝ C^(1−e)·(log C)^e: x = C and the log factor divided out."""
    C = np.asarray(C, dtype=float)
    if variable == "N_star":
        e = compute_exponents(a, b, sigma2).get("M_star", math.nan)
        return C, np.log(C) ** e
    return C / np.log(C), np.ones_like(C)


def ols_variance(noise, M, N):
    """Exact E‖v̂ − v*‖²_Σ of least squares on N Gaussian samples of M sketched features (Wishart identity):
    noise · M / (N − M − 1) for N > M + 1, with noise = σ² + Approx; infinite otherwise."""
    M = np.asarray(M, dtype=float)
    N = np.asarray(N, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(N > M + 1, noise * M / (N - M - 1), np.inf)
