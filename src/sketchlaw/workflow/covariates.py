"""The covariates experiment's jobs (docs/METHODS.md §21): covariates x = H^{1/2} z with z of i.i.d. coordinates of
a non-Gaussian law (``engine.coordinates``), where the reduction to M dimensions is no longer exact and
full-dimensional SGD (``engine.naive.naive_sgd``) is the truth.

- ``covariate_rows``: Monte Carlo of full-dimensional SGD for one (law, M, sketch seed) at every N of the grid; the
  Gaussian exact curve on the same sketch is the exact engine's job (``training.exact_rows``), joined to these rows
  by ``with_exact`` when the experiment's table is aggregated.
- ``stability_rows``: on a small d, the step size where the law's d-dimensional fourth-moment recursion and its Monte
  Carlo diverge at a constant step, beside the bounds: the Gaussian one, the fourth-moment formula on the sketched
  spectrum and without a sketch, and the spectral radius of the d-dimensional map.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sketchlaw.engine.coordinates import kurtosis
from sketchlaw.engine.naive import fourth_moment_critical_step, fourth_moment_recursion, naive_sgd
from sketchlaw.engine.problem import build_problem, full_sketch
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.seeds import coordinate_seed

# Step sizes of the Monte Carlo divergence scan, as multiples of the d-dimensional map's bound (``stability_rows``).
SCAN = (0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 1.5, 2.0)
GROWTH = 2.0  # a run diverges when its risk at the last step exceeds GROWTH times its risk halfway


def law_bound(mu: np.ndarray, law: str) -> float:
    """A step size below which SGD on the sketch with spectrum μ is stable for the law: the smaller of the Gaussian
    bound and the fourth-moment formula on μ (the d-dimensional map's bound lies between them: METHODS §21)."""
    return min(critical_step_size(mu), critical_step_size(mu, kurtosis=kurtosis(law)))


def covariate_rows(job: dict) -> pd.DataFrame:
    """Full-dimensional SGD with covariates of the job's coordinate law on its sketch, ``trials`` runs (fresh data
    and w* each) at every N: the geometric schedule differs per N (one run each, seed from the grid coordinates), a
    constant one is run once with a checkpoint at every N. A γ at or above ``law_bound`` is not run (``diverged``)."""
    key, law = job["problem"], job["coordinates"]
    spectrum, prior = Spectrum(key["spectrum"], key["a"], key["d"]), Prior(key["b"])
    bound = law_bound(build_problem(spectrum, key["M"], 0.0, key["seed"], prior, tail="none").mu, law)
    gamma, Ns = job["gamma"], [int(N) for N in job["N"]]
    schedules = [Schedule(gamma, N, job["schedule"], job["log_base"]) for N in Ns]

    def run(schedule, seed, checkpoints=None):
        return naive_sgd(spectrum, key["M"], job["sigma2"], key["seed"], schedule, int(job["trials"]), seed, prior,
                         coordinates=law, checkpoints=checkpoints)

    if not gamma < bound:
        print(f"diverged: gamma = {gamma} >= {bound:.6g}, the stability bound of this sketch for {law}", flush=True)
        risks, seeds = [np.full(int(job["trials"]), np.nan)] * len(Ns), [-1] * len(Ns)
    elif job["schedule"] == "constant":
        seed = coordinate_seed(job["mc_seed"], "checkpoints")
        risks, seeds = list(run(schedules[-1], seed, Ns).T), [seed] * len(Ns)
    else:
        seeds = [coordinate_seed(job["mc_seed"], N) for N in Ns]
        risks = [run(sch, seed) for sch, seed in zip(schedules, seeds)]
    rows = []
    for sch, r, seed in zip(schedules, risks, seeds):
        finite = bool(np.isfinite(r).all())
        stats = {"mc_mean": r.mean(), "mc_std": r.std(ddof=1), "mc_sem": r.std(ddof=1) / np.sqrt(len(r))} \
            if finite else dict.fromkeys(("mc_mean", "mc_std", "mc_sem"), np.nan)
        rows.append({"coordinates": law, "kurtosis": kurtosis(law), "N": sch.N, "N_eff": sch.N_eff,
                     "mc_trials": int(job["trials"]), **stats, "mc_seed": seed, "gamma_max": bound,
                     "diverged": not gamma < bound, "mc_diverged": gamma < bound and not finite})
    return pd.DataFrame(rows)


# The Gaussian exact curve's columns joined to each law's Monte Carlo rows (its bound and flag renamed: the row's own
# are the law's).
EXACT_JOINED = {"risk": "risk", "approx": "approx", "bias": "bias", "variance": "variance", "excess": "excess",
                "reducible": "reducible", "gamma_max": "gamma_max_gaussian", "diverged": "diverged_gaussian"}


def with_exact(mc: pd.DataFrame, exact: pd.DataFrame) -> pd.DataFrame:
    """Each law's Monte Carlo rows beside the Gaussian exact curve on the same sketch (same a, b, M, d, N, γ and seed);
    a row is diverged where either is. The exact curve's points without Monte Carlo follow with ``coordinates``
    empty: the Gaussian exact curve's own grid reaches beyond the Monte Carlo's."""
    keys = ["experiment", "spectrum", "a", "b", "M", "d", "N", "gamma", "sketch_seed"]
    out = mc.merge(exact[keys + list(EXACT_JOINED)].rename(columns=EXACT_JOINED), on=keys, how="left",
                   validate="many_to_one")
    if out["diverged_gaussian"].isna().any():
        raise ValueError("Monte Carlo points without their Gaussian exact counterpart")
    out["diverged"] = out["diverged"].astype(bool) | out["diverged_gaussian"].astype(bool)
    alone = exact.merge(mc[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    alone = alone.loc[alone.pop("_merge").eq("left_only"), [c for c in exact.columns if c in out.columns or
                                                              c in EXACT_JOINED]]
    alone = alone.rename(columns=EXACT_JOINED).assign(coordinates="", diverged=lambda t: t["diverged_gaussian"])
    return pd.concat([out, alone], ignore_index=True) if len(alone) else out


def _diverges(risk_half: float, risk_end: float) -> bool:
    return not (np.isfinite(risk_end) and risk_end <= GROWTH * risk_half)


def stability_rows(job: dict) -> pd.DataFrame:
    """Per (a, b), law and sketch seed on d coordinates and M rows: the bounds (``gamma_gaussian``: the exact engine's,
    κ = 3; ``gamma_kappa``: the fourth-moment formula ``critical_step_size(μ, kurtosis=κ)`` on the sketched spectrum;
    ``gamma_kappa_unsketched``: the same on H; ``gamma_map``: the spectral radius of the d-dimensional map reaching 1)
    and the measured thresholds at a constant step over ``steps`` steps: ``gamma_recursion``, where the exact
    d-dimensional recursion's risk more than doubles over the second half (bisection), and the Monte Carlo scan of
    full-dimensional SGD (``trials`` runs at the step sizes SCAN × gamma_map): ``gamma_mc_stable``, the largest scanned
    step below every diverging one, and ``gamma_mc_diverged``, the smallest diverging one (NaN: none diverged)."""
    d, M, steps, trials, sigma2 = int(job["d"]), int(job["M"]), int(job["steps"]), int(job["trials"]), job["sigma2"]
    rows = []
    for curve in job["curves"]:
        spectrum, prior = Spectrum("power", curve["a"], d), Prior(curve["b"])
        lam = spectrum.eigenvalues()
        for seed in job["sketch_seeds"]:
            S = full_sketch(int(seed), M, d)
            P = S.T @ S
            mu = np.linalg.eigvalsh((S * lam) @ S.T)
            for law in job["coordinates"]:
                kappa = kurtosis(law)

                def recursion_diverges(g):
                    r = fourth_moment_recursion(lam, P, np.diag(prior.variances(spectrum)), sigma2,
                                                Schedule(g, steps, "constant"), kappa, [steps // 2, steps])
                    return _diverges(*r)

                g_map = fourth_moment_critical_step(lam, P, kappa)
                lo, hi = 0.5 * g_map, 2.0 * g_map
                while hi - lo > 1e-3 * hi:
                    mid = 0.5 * (lo + hi)
                    lo, hi = (lo, mid) if recursion_diverges(mid) else (mid, hi)
                scan = []
                for ratio in SCAN:
                    g = ratio * g_map
                    r = naive_sgd(spectrum, M, sigma2, int(seed), Schedule(g, steps, "constant"), trials,
                                  coordinate_seed(job["seed"], curve["a"], law, int(seed), ratio), prior,
                                  coordinates=law, checkpoints=[steps // 2, steps])
                    scan.append((g, _diverges(*r.mean(axis=0))))
                bad = [g for g, div in scan if div]
                ok = [g for g, div in scan if not div and (not bad or g < min(bad))]
                b = curve["a"] if curve["b"] is None else curve["b"]
                rows.append({"experiment": job["experiment"], "a": curve["a"], "b": b, "coordinates": law,
                             "kurtosis": kappa, "d": d, "M": M, "sketch_seed": int(seed), "steps": steps,
                             "trials": trials, "gamma_gaussian": critical_step_size(mu),
                             "gamma_kappa": critical_step_size(mu, kurtosis=kappa),
                             "gamma_kappa_unsketched": critical_step_size(lam, kurtosis=kappa), "gamma_map": g_map,
                             "gamma_recursion": 0.5 * (lo + hi), "gamma_mc_stable": max(ok) if ok else np.nan,
                             "gamma_mc_diverged": min(bad) if bad else np.nan})
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)
