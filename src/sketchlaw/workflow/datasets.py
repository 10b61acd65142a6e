"""The real dataset's jobs (docs/METHODS.md §20): scikit-learn's handwritten digits (1797 images of 8 × 8 pixels,
shipped inside the package: nothing is downloaded) under the Gaussian kernel's feature map, the dataset itself being
the population.

- ``spectrum_rows``: the feature covariance's eigenvalues λ_j and the target's energies λ_j w*_j² per mode, for the
  dataset and for bootstrap resamples of its rows (the fitted degrees' intervals come from their spread; the fit
  step fits them, ``analysis.dataset``).
- ``dataset_rows``: for one Gaussian sketch per M, the exact expected risk of the Gaussian-equivalent model (x ~ N(0, H)
  with the dataset's H and its own target w*, no label noise) at every N, and one-pass SGD on the real sketched
  features (samples drawn with replacement, risk exact on the dataset) by Monte Carlo on a sub-grid.

The target is the digit's value (0 to 9), standardized over the dataset.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from sketchlaw import seeds
from sketchlaw.engine import empirical
from sketchlaw.engine.problem import build_problem, sketch_chunks
from sketchlaw.engine.reuse import run_multipass
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.errors import DivergenceError

DATASETS = ("digits",)
SAMPLES = {"digits": 1797}  # the dataset's size n: its number of modes, the largest admissible M
BOOTSTRAP = 5  # stream tag of the bootstrap resamples (beside seeds.SKETCH ... NAIVE_DATA)


@functools.lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray]:
    """(X, y): the 1797 digit images as rows of 64 pixel intensities in [0, 1], and the standardized digit value."""
    from sklearn.datasets import load_digits  # the bundled copy: no download

    X, t = load_digits(return_X_y=True)
    t = t.astype(float)
    return X / 16.0, (t - t.mean()) / t.std()


@functools.lru_cache(maxsize=1)
def population(name: str = "digits") -> dict:
    """The dataset as a population in the kernel features' eigenbasis: λ, the features Φ (n × n), the target y and
    its coefficients w*, and the kernel's bandwidth ℓ²."""
    X, y = {"digits": digits}[name]()
    lam, V, bandwidth2 = empirical.rbf_kernel_features(X)
    return {"lam": lam, "Phi": empirical.kernel_features(lam, V), "y": y, "w": empirical.kernel_target(lam, V, y),
            "bandwidth2": bandwidth2}


def spectrum_rows(job: dict) -> pd.DataFrame:
    """λ_j, the target's energy λ_j w*_j² and its tail T_j = Σ_{k≥j} λ_k w*_k² per mode j, for the dataset
    (replicate 0) and for ``job["bootstrap"]`` resamples of its rows with replacement (replicates 1, 2, ...; the same
    kernel bandwidth; each resample's own λ and, from its resampled targets, its own energies), with the window of
    modes the degrees are fitted on (``fit_lo``, ``fit_hi``: the config's, carried to the fit with the table)."""
    X, y = {"digits": digits}[job["dataset"]]()
    pop = population(job["dataset"])
    parts = []
    for r in range(int(job["bootstrap"]) + 1):
        if r == 0:
            lam, energy = pop["lam"], pop["lam"] * pop["w"] ** 2
        else:
            idx = seeds.rng(job["seed"], BOOTSTRAP, r).integers(0, len(y), size=len(y))
            lam, V, _ = empirical.rbf_kernel_spectrum(X[idx], pop["bandwidth2"])
            energy = (V.T @ y[idx]) ** 2 / len(y)
        parts.append(pd.DataFrame({"replicate": r, "mode": np.arange(1, len(lam) + 1), "lam": lam, "energy": energy,
                                   "tail_energy": np.cumsum(energy[::-1])[::-1]}))
    return pd.concat(parts, ignore_index=True).assign(experiment=job["experiment"], dataset=job["dataset"],
                                                       bandwidth2=pop["bandwidth2"], fit_lo=int(job["modes"][0]),
                                                       fit_hi=int(job["modes"][1]))


def real_features(problem, Phi: np.ndarray, y: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's sketched features in Σ's eigenbasis, z̃_i = Uᵀ S φ_i (n × M), and the residuals
    ξ_i = y_i − ⟨z̃_i, θ*⟩ of the best sketched predictor: uncorrelated with z̃ over the dataset, not independent of
    it (the reduction of docs/METHODS.md §3 to an independent noise needs Gaussian features)."""
    Z = np.zeros((len(y), problem.M))
    for start, stop, St in sketch_chunks(problem.seed, problem.M, problem.spectrum.d, problem.sketch):
        Z += np.asarray(St.T @ Phi[:, start:stop].T).T
    Z = Z @ problem.U
    return Z, y - Z @ theta


def dataset_rows(job: dict) -> pd.DataFrame:
    """One sketch seed of the dataset experiment, every M: exact risk of the Gaussian-equivalent model at every N and
    real-data one-pass SGD at the Monte Carlo sub-grid (``grid.followup_params``). A γ at or above the sketch's
    stability bound is a row with ``diverged`` true and empty risks; a real-data run that diverges below it (its
    fourth moments are not the Gaussian's) has ``mc_diverged`` true and an empty Monte Carlo mean."""
    from sketchlaw.engine.exact import ExactEngine

    pop = population(job["dataset"])
    spectrum, prior = empirical.EmpiricalSpectrum(pop["lam"]), empirical.EmpiricalPrior(pop["w"] ** 2)
    gamma, rows = job["gamma"], []
    for M in job["M"]:
        problem = build_problem(spectrum, int(M), 0.0, job["seed"], prior, tail="none")
        theta, approx = problem.target(pop["w"])
        bound = critical_step_size(problem.mu)
        stable = gamma < bound
        schedules = [Schedule(gamma, int(N), log_base=job["log_base"]) for N in job["N"]]
        engine = ExactEngine(problem.mu, theta**2, 0.0, approx)
        results = engine.run_many(schedules) if stable else [None] * len(schedules)
        mc_N = set(job["mc_N"]) if M in job["mc_M"] else set()
        data = real_features(problem, pop["Phi"], pop["y"], theta) if mc_N and stable else None
        for sch, res in zip(schedules, results):
            row = {"M": int(M), "N": sch.N, "N_eff": sch.N_eff, "gamma_max": bound, "diverged": not stable,
                   **(res.as_dict() if res is not None else {"risk": np.nan, "bias": np.nan, "variance": np.nan,
                                                             "reducible": np.nan}),
                   "approx": approx, "sigma2": 0.0, "mc_trials": 0, "mc_mean": np.nan, "mc_sem": np.nan,
                   "mc_seed": -1, "mc_diverged": False}
            if sch.N in mc_N and data is not None:
                seed = job["mc_seed"] + sch.N
                try:
                    mc = run_multipass(problem.mu, np.repeat(theta[None], job["trials"], axis=0), approx, 0.0, sch,
                                       len(pop["y"]), seed, data=lambda r: data)
                    row.update(mc.summary(), mc_seed=seed)
                except DivergenceError as err:  # the real features' fourth moments are not the Gaussian's
                    print(f"real-data SGD diverged at M = {M}, N = {sch.N}: {err}", flush=True)
                    row.update(mc_trials=int(job["trials"]), mc_seed=seed, mc_diverged=True)
            rows.append(row)
    df = pd.DataFrame(rows)
    df["diverged"] = df["diverged"].astype(bool)
    return df
