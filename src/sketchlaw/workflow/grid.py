"""Experiment grids of the replication workflow: semantic checks and expansion into jobs (no Snakemake here).

The workflow's config.yaml is first validated against ``schemas/config.schema.yaml`` (types, ranges, unknown keys);
``check_config`` then rejects what a schema cannot express (unsorted or duplicate grids, M > d, a divergent γ for the
spectrum, ...), raising ConfigError that names the field and the allowed values. ``plan`` expands a checked config
into problems (one sketch each), exact-engine jobs (one per sketch family, all M and N at once) and Monte Carlo jobs
(one per sketch family too, every (N, γ) of its sub-grid at each of its M, each point with a seed of its own
coordinates).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

from sketchlaw.engine.stability import critical_step_size
from sketchlaw.workflow.registry import EXPERIMENTS, FOLLOWUP_KINDS
from sketchlaw.seeds import coordinate_seed
from sketchlaw.engine.spectra import Spectrum


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field (dotted path) and the allowed values."""

    def __init__(self, field: str, value, allowed: str):
        self.field = field
        super().__init__(f"config field '{field}' = {value!r} is invalid: allowed {allowed}")


def fmt(x) -> str:
    """Canonical text of a grid value, used in file names (1.5 → '1.5', 2.0 → '2', 1e6 → '1000000')."""
    if x is None:
        return "iso"
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


@dataclass(frozen=True)
class ProblemKey:
    """One sketch: spectrum, exponents, truncation d, model size M and sketch seed."""

    spectrum: str
    a: float
    b: float | None
    d: int
    M: int
    seed: int
    tail: str = "mean"
    sketch: str = "gaussian"  # the sketch family (engine.problem.SKETCH_FAMILIES; docs/METHODS.md §19)

    @property
    def family(self) -> str:
        """The part of the stem naming a non-Gaussian sketch family (empty for the paper's Gaussian sketch, so that
        the other experiments' file names are unchanged)."""
        return "" if self.sketch == "gaussian" else f"_k{self.sketch}"

    @property
    def stem(self) -> str:
        return f"{self.spectrum}_a{fmt(self.a)}_b{fmt(self.b)}_d{self.d}_t{self.tail}{self.family}_M{self.M}_s{self.seed}"


@dataclass(frozen=True)
class Job:
    """Work on one problem: exact risks or Monte Carlo at every (N, γ) of ``points``."""

    experiment: str
    problem: ProblemKey
    points: tuple  # ((N, gamma), ...)
    trials: int = 0
    kind: str = "exact"  # exact | montecarlo | baselines | a follow-up kind | dataset | covariates
    coordinates: str = ""  # the covariates experiment's coordinate law (engine.coordinates)

    @property
    def stem(self) -> str:
        return self.problem.stem


# A Monte Carlo job draws trials × Σ N × (M + 1) normal numbers (about 10 ns each on the project's VM: the floor of
# its cost). A sketch family whose problems draw more than this in all is split by M, so that a paper-scale Monte Carlo
# (config/paper.yaml: up to 3.5e11 draws for one problem) stays one problem per job that a cluster can spread, while a
# small one shares a job (and its process start).
MONTECARLO_JOB_DRAWS = 2 * 10**10


def montecarlo_draws(job: Job) -> int:
    """Normal numbers a Monte Carlo job's problem draws: trials × Σ N × (M + 1)."""
    return job.trials * sum(int(N) for N, _ in job.points) * (job.problem.M + 1)


def family_groups(jobs, max_draws: int | None = None) -> dict:
    """Jobs batched per (experiment, sketch family): every M of one spectrum, a, b, tail and seed in one job (exact,
    Monte Carlo, baselines and the follow-ups alike).

    A workflow job starts at a cost of about a second (interpreter, imports, compiled kernels), as much as the exact
    engine or a small Monte Carlo spends on a problem, so one job per problem would mostly pay start-up; a family is
    still small enough to re-run alone, and each of its points keeps the seed of its own coordinates, so the rows do
    not depend on how jobs are batched. With ``max_draws`` (Monte Carlo), a family drawing more than that is cut, in
    order of M, into runs of problems each drawing at most that much (a larger problem alone), stems suffixed with
    their first M. Returns {(experiment, stem): [Job, ...]}.
    """
    groups: dict = {}
    for job in jobs:
        p = job.problem
        stem = f"{p.spectrum}_a{fmt(p.a)}_b{fmt(p.b)}_t{p.tail}{p.family}_s{p.seed}"
        groups.setdefault((job.experiment, stem), []).append(job)
    if max_draws is None:
        return groups
    out: dict = {}
    for (experiment, stem), family in groups.items():
        runs, total = [[]], 0
        for job in family:
            if runs[-1] and total + montecarlo_draws(job) > max_draws:
                runs.append([])
                total = 0
            runs[-1].append(job)
            total += montecarlo_draws(job)
        for run in runs:
            out[(experiment, stem if len(runs) == 1 else f"{stem}_M{run[0].problem.M}")] = run
    return out


def _settings(config: dict, name: str) -> dict:
    """Experiment settings with the defaults filled in."""
    return {**config.get("defaults", {}), **config["experiments"][name]}


def settings(config: dict, name: str) -> dict:
    """Experiment settings with the defaults filled in."""
    return _settings(config, name)


def truncation(settings: dict, M: int) -> int:
    """d = max(d_min, d_per_M · M): coordinates beyond d are the mean-field tail (docs/METHODS.md §9, or cut with
    tail: none); d ∝ M keeps the M-slope of Approx a clean power law, (1 − (d/M)^(1−a)) being then a constant factor."""
    return max(int(settings["d_min"]), int(settings["d_per_M"]) * int(M))


def _check_grid(field: str, values, integer=False, minimum=None):
    if not values:
        raise ConfigError(field, values, "a non-empty list")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise ConfigError(field, values, "a list of numbers")
    if integer and any(float(v) != int(v) for v in values):
        raise ConfigError(field, values, "a list of integers")
    if minimum is not None and min(values) < minimum:
        raise ConfigError(field, values, f"values >= {minimum}")
    if len(set(values)) != len(values):
        raise ConfigError(field, values, "distinct values (no duplicates)")
    if list(values) != sorted(values):
        raise ConfigError(field, values, "values sorted in increasing order")


def check_config(config: dict) -> None:
    """Semantic checks beyond the JSON schema; raise ConfigError on the first problem."""
    experiments = config.get("experiments") or {}
    if not experiments:
        raise ConfigError("experiments", experiments, f"at least one of {', '.join(EXPERIMENTS)}")
    for name in experiments:
        if name not in EXPERIMENTS:
            raise ConfigError(f"experiments.{name}", name, f"one of {', '.join(EXPERIMENTS)}")
        s = _settings(config, name)
        at = f"experiments.{name}"
        if EXPERIMENTS[name].kind == "dataset":  # no spectrum family, no a: the data define them
            _check_dataset(at, s)
            continue
        key = EXPERIMENTS[name].grid_key
        if key not in experiments[name]:
            raise ConfigError(f"{at}.{key}", None, f"a grid of {'budgets C = M·N' if key == 'C' else 'sample sizes N'}")
        for key in ("a", "M", "sketch_seeds"):
            _check_grid(f"{at}.{key}", s.get(key), integer=key != "a")
        if any(a <= 1 for a in s["a"]):
            raise ConfigError(f"{at}.a", s["a"], "values > 1")
        if s.get("b") is not None:
            _check_grid(f"{at}.b", s["b"])
            if any(b <= 1 for b in s["b"]):
                raise ConfigError(f"{at}.b", s["b"], "values > 1")
            if s["spectrum"] != "power":
                raise ConfigError(f"{at}.b", s["b"], "only with spectrum 'power'")
        if min(s["M"]) < 1:
            raise ConfigError(f"{at}.M", s["M"], "integers >= 1")
        if s["sigma2"] < 0:
            raise ConfigError(f"{at}.sigma2", s["sigma2"], "a number >= 0")
        grid_N = s.get("N") if EXPERIMENTS[name].kind != "compute" else s.get("C")
        _check_grid(f"{at}.{'C' if EXPERIMENTS[name].kind == 'compute' else 'N'}", grid_N, integer=True, minimum=2)
        for M in s["M"]:
            d = truncation(s, M)
            if M > d:
                raise ConfigError(f"{at}.M", M, f"M <= d = {d}")
        gammas = s["gamma"] if isinstance(s["gamma"], list) else [s["gamma"]]
        if isinstance(s["gamma"], list):
            _check_grid(f"{at}.gamma", gammas)
        for g in gammas:
            if not g > 0:
                raise ConfigError(f"{at}.gamma", g, "a number > 0")
        # The bound of the problem without a sketch: the truncated spectrum, with the trace of every coordinate
        # beyond d when the realized Σ carries it (tail: mean) or when a job runs the d = ∞ problem (the M = ∞
        # limit). A realized sketch has a bound of its own, often lower at small M: a point above it is recorded as
        # diverged (docs/METHODS.md §5), and ``stability_warnings`` says before the run where that is likely.
        for a in s["a"]:
            bound = spectrum_bound(s, a, max(s["M"]), infinite=s["tail"] == "mean" or EXPERIMENTS[name].limit)
            if EXPERIMENTS[name].kind == "stepsize":
                # Nothing would run if every γ diverges even without a sketch (each sketch's own bound decides at
                # run time; points above it are omitted, not run).
                if min(gammas) >= bound:
                    raise ConfigError(f"{at}.gamma", gammas, f"at least one gamma < {bound:.4g} (SGD diverges above "
                                                             f"this for spectrum {s['spectrum']} with a = {a}: "
                                                             f"the experiment would have nothing to run)")
            elif max(gammas) >= bound:
                raise ConfigError(f"{at}.gamma", max(gammas),
                                  f"0 < gamma < {bound:.4g} (SGD diverges above this for spectrum "
                                  f"{s['spectrum']} with a = {a}{_bound_note(s, name)})")
        mc = s.get("montecarlo")
        if mc:
            for key in ("M", "N"):
                _check_grid(f"{at}.montecarlo.{key}", mc[key], integer=True, minimum=1 if key == "M" else 2)
            if not set(mc["M"]) <= set(s["M"]) and EXPERIMENTS[name].kind != "covariates":
                raise ConfigError(f"{at}.montecarlo.M", mc["M"], f"a subset of {at}.M = {s['M']}")
        if EXPERIMENTS[name].kind == "variance":
            ridge = s["ridge"]
            _check_grid(f"{at}.ridge.lambdas", ridge["lambdas"])
        if EXPERIMENTS[name].kind == "sketches":
            _check_sketches(f"{at}.sketches", s.get("sketches"), min(s["M"]))
            _check_sparse_rows(f"{at}.sketches", s)
        for key, owners in FOLLOWUP_KEYS.items():
            if key in experiments[name] and EXPERIMENTS[name].kind not in owners:
                raise ConfigError(f"{at}.{key}", experiments[name][key], f"only in the {' or '.join(owners)} "
                                                                         f"experiment")
        if EXPERIMENTS[name].kind == "covariates":
            _check_covariates(at, s)
        if EXPERIMENTS[name].kind in FOLLOWUP_KINDS:
            _check_followup(EXPERIMENTS[name].kind, at, s)


def spectrum_bound(s: dict, a: float, M: int, infinite: bool) -> float:
    """The exact stability bound of the unsketched spectrum truncated at d = truncation(s, M), or with the trace of
    every coordinate beyond d (``infinite``: the mean-field tail adds it to the realized Σ, the M = ∞ limit runs
    the d = ∞ problem). The coordinates beyond d are many tiny modes, each with gμ ≪ 1: they enter the secular
    function as g·τ_H/2, represented here by 10⁹ equal modes (their bound is lower only by a relative 1e-9)."""
    from sketchlaw.engine.spectra import Prior, tail_sums

    spectrum = Spectrum(s["spectrum"], a, truncation(s, M))
    mu = spectrum.eigenvalues()
    if not infinite:
        return critical_step_size(mu)
    tau = tail_sums(spectrum, Prior())["tau_H"]
    many = 1e9
    return critical_step_size(np.append(mu, tau / many), np.append(np.ones(mu.size), many))


def _bound_note(s: dict, name: str) -> str:
    if s["tail"] == "mean":
        return ", including the trace of the coordinates beyond d that the mean-field tail adds"
    if EXPERIMENTS[name].limit:
        return ", d = ∞: the M = ∞ limit of the fit runs the untruncated spectrum"
    return ""


def sketch_bound_factor(M: int) -> float:
    """How far below the unsketched bound a sketch's own bound can fall at model size M: (1 + 2/√M)^-2.

    S has entries of variance 1/M, so the top eigenvalue of SHSᵀ fluctuates by O(1/√M) relative and more (at
    M = 1 it is a weighted χ²₁). Over 60 seeds with a = 1.1 … 4 the lowest ratio of a sketch's bound to the
    unsketched one was 0.10 at M = 1, 0.25 at M = 4, 0.48 at M = 8, 0.60 at M = 32, 0.72 at M = 64; this factor is
    about at those lows, so a γ below it is very unlikely to diverge on any sketch."""
    return (1.0 + 2.0 / math.sqrt(M)) ** -2


def stability_warnings(config: dict) -> list[str]:
    """Warnings, before any job runs, for grid points whose γ a realized sketch may well not sustain: γ at or above
    ``sketch_bound_factor(M)`` times the unsketched bound. Such points, if a sketch's bound is indeed below γ, are
    recorded as diverged (not an error; docs/METHODS.md §5). The step-size experiment, which explores γ up to
    divergence by design, is not warned about. Call after ``check_config``."""
    out = []
    for name in config.get("experiments") or {}:
        s = _settings(config, name)
        if EXPERIMENTS[name].kind in ("stepsize", "dataset"):  # the dataset's γ is checked against its own bound
            continue
        gamma = max(_gammas(s))
        for a in s["a"]:
            risky = []
            for M in s["M"]:
                bound = spectrum_bound(s, a, M, infinite=s["tail"] == "mean")
                if gamma >= sketch_bound_factor(M) * bound:
                    risky.append(int(M))
            if risky:
                out.append(f"config field 'experiments.{name}.gamma' = {gamma!r}: at a = {a} and M in {risky} a "
                           f"realized sketch's stability bound may fall below gamma (it fluctuates below the "
                           f"unsketched bound, by up to a factor (1 + 2/sqrt(M))^2); points above their sketch's "
                           f"bound will be recorded as diverged and left out of the fits (a smaller gamma avoids "
                           f"this)")
    return out


# Keys of some experiment kinds only (the schema lists them for every experiment; here they are refused elsewhere).
FOLLOWUP_KEYS = {"schedules": ("schedules",), "claim": ("schedules",), "B": ("batch",), "step_rules": ("batch",),
                 "L": ("reuse",), "trials": ("reuse",), "sketches": ("sketches",),
                 "coordinates": ("covariates",), "stability": ("covariates",)}
REUSE_MAX_BYTES = 2 * 2**30  # one trial's dataset (N samples of M + 1 float64) must fit in this much memory


def _check_followup(kind: str, at: str, s: dict) -> None:
    """The follow-up experiments' own checks (docs/METHODS.md §18): what would leave them nothing to run or crash
    a job is refused here, naming the field."""
    from sketchlaw.workflow.followups import STEP_RULES, claim_stability_bound, schedule_label, schedule_spec_error

    if isinstance(s["gamma"], list):
        raise ConfigError(f"{at}.gamma", s["gamma"], "a single step size (a number) for this experiment")
    if s["spectrum"] != "power":
        raise ConfigError(f"{at}.spectrum", s["spectrum"], "'power' (the follow-ups' theory and the unsketched "
                                                           "claim are for λ_i = i^-a)")
    if kind == "schedules":
        specs = s.get("schedules") or []
        if not specs:
            raise ConfigError(f"{at}.schedules", specs, "a non-empty list of schedules")
        labels = []
        for i, spec in enumerate(specs):
            for N in (min(s["N"]), max(s["N"])):
                err = schedule_spec_error(spec, float(max(_gammas(s))), int(N), float(s["a"][0]))
                if err is not None:
                    raise ConfigError(f"{at}.schedules[{i}].{err.name}", err.value, f"{err.allowed} (at N = {N})")
            labels.append(schedule_label(spec, s["a"][0]))
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ConfigError(f"{at}.schedules", dup, "distinct schedules (no duplicates)")
        claim = s.get("claim")
        if claim:
            _check_grid(f"{at}.claim.N", claim.get("N"), integer=True, minimum=16)
            if len(claim["N"]) < 2:  # its local slopes need two N (the claim job raised after starting)
                raise ConfigError(f"{at}.claim.N", claim["N"], "at least two sample sizes (the comparison's local "
                                                               "slopes)")
            for a in s["a"]:
                for b in (s.get("b") or [None]):
                    bound = claim_stability_bound(a, b, float(s["gamma"]), int(max(claim["N"])))
                    if float(s["gamma"]) >= bound:
                        raise ConfigError(f"{at}.gamma", s["gamma"], f"0 < gamma < {bound:.4g} (the stability bound "
                                                                     f"of the unsketched problem of the claim, a = {a})")
    elif kind == "batch":
        _check_grid(f"{at}.B", s.get("B"), integer=True, minimum=1)
        for N in s["N"]:
            if not any(B <= N / 2 for B in s["B"]):
                raise ConfigError(f"{at}.B", s["B"], f"at least one B <= N/2 = {N / 2:g} (T = N/B >= 2 updates) "
                                                     f"for every N of {at}.N")
        if 1 not in s["B"]:
            raise ConfigError(f"{at}.B", s["B"], "a grid that includes B = 1 (the reference of the critical "
                                                 "batch size)")
        rules = s.get("step_rules") or []
        if not rules or len(set(rules)) != len(rules) or not set(rules) <= set(STEP_RULES):
            raise ConfigError(f"{at}.step_rules", rules, f"distinct values among {', '.join(STEP_RULES)}")
    elif kind == "reuse":
        _check_grid(f"{at}.L", s.get("L"), integer=True, minimum=2)
        for N in s["N"]:
            size = 8 * int(N) * (max(s["M"]) + 1)
            if size > REUSE_MAX_BYTES:
                raise ConfigError(f"{at}.N", N, f"N·(M + 1)·8 bytes <= {REUSE_MAX_BYTES / 2**30:g} GiB (one "
                                                f"trial's dataset; here {size / 2**30:.3g} GiB at M = {max(s['M'])})")
        if s.get("b") is None:
            raise ConfigError(f"{at}.b", None, "a list of source exponents b (the reuse theory is stated for b)")


def _check_sketches(field: str, labels, M_min: int) -> None:
    """The sketch families of a sketches block: distinct labels of ``engine.problem.SKETCH_FAMILIES``, a sparse
    family's s nonzeros per column at most the smallest M."""
    from sketchlaw.engine.problem import check_sketch
    from sketchlaw.errors import ParameterError

    if not labels or len(set(labels)) != len(labels):
        raise ConfigError(field, labels, "a non-empty list of distinct sketch families")
    for label in labels:
        try:
            check_sketch(label, M_min)
        except ParameterError as err:
            raise ConfigError(field, label, err.allowed) from None


STABILITY_MAX_D = 48  # the d-dimensional map's bound costs O(d⁶) per evaluation (naive.fourth_moment_critical_step)


def _check_covariates(at: str, s: dict) -> None:
    """The covariates experiment's checks (docs/METHODS.md §21): full-dimensional SGD runs the d truncated
    coordinates themselves (tail none), its theory is the power law's, every law is one of ``engine.coordinates`` and
    γ lies below each law's fourth-moment bound of the unsketched spectrum (a realized sketch's own is checked when
    it runs: ``covariates.law_bound``)."""
    from sketchlaw.engine.coordinates import kurtosis
    from sketchlaw.errors import ParameterError

    if s["spectrum"] != "power":
        raise ConfigError(f"{at}.spectrum", s["spectrum"], "'power' (the rows' theory is stated for λ_i = i^-a)")
    if s["tail"] != "none":
        raise ConfigError(f"{at}.tail", s["tail"], "'none' (full-dimensional SGD runs the d coordinates themselves)")
    if isinstance(s["gamma"], list):
        raise ConfigError(f"{at}.gamma", s["gamma"], "a single step size (a number) for this experiment")
    mc = s.get("montecarlo")
    if not mc:
        raise ConfigError(f"{at}.montecarlo", mc, "a montecarlo block {trials, M, N}: the Monte Carlo's grid (M "
                                                  "may lie outside the Gaussian exact curve's)")
    if not set(mc["N"]) <= set(s["N"]):
        raise ConfigError(f"{at}.montecarlo.N", mc["N"], f"a subset of {at}.N = {s['N']}")
    laws = s.get("coordinates")
    if not laws or len(set(laws)) != len(laws):
        raise ConfigError(f"{at}.coordinates", laws, "a non-empty list of distinct coordinate laws")
    kappas = {}
    for law in laws:
        try:
            kappas[law] = kurtosis(law)
        except ParameterError as err:
            raise ConfigError(f"{at}.coordinates", law, err.allowed) from None
    for a in s["a"]:
        lam = Spectrum("power", a, truncation(s, max(covariate_M(s)))).eigenvalues()
        for law, kappa in kappas.items():
            bound = critical_step_size(lam, kurtosis=kappa)
            if not s["gamma"] < bound:
                raise ConfigError(f"{at}.gamma", s["gamma"], f"0 < gamma < {bound:.4g} (the fourth-moment bound of "
                                                             f"the unsketched spectrum for {law}, κ = {kappa:g}, "
                                                             f"a = {a})")
    stab = s.get("stability")
    if stab:
        if not 2 <= stab["M"] <= stab["d"] <= STABILITY_MAX_D:
            raise ConfigError(f"{at}.stability", stab, f"2 <= M <= d <= {STABILITY_MAX_D}")


def covariate_M(s: dict) -> list[int]:
    """Every M of the covariates experiment: the Gaussian exact curve's grid and the Monte Carlo's."""
    return sorted({int(M) for M in s["M"]} | {int(M) for M in s["montecarlo"]["M"]})


def covariate_problems(s: dict):
    """The covariates experiment's sketches with their N: (ProblemKey, Ns) per (a, b, M, seed), Gaussian sketches of
    the spectrum cut at d (tail none). The Gaussian exact curve runs on the block's M × N and on every Monte Carlo
    point (its twin), nowhere else: a Monte Carlo M below the block's adds no point at the block's largest N, so the
    exact curve's window slopes stay on the block's grid."""
    mc = s["montecarlo"]
    for a, b in itertools.product(s["a"], s.get("b") or [None]):
        for M in covariate_M(s):
            Ns = sorted(({int(N) for N in s["N"]} if M in s["M"] else set())
                        | ({int(N) for N in mc["N"]} if M in mc["M"] else set()))
            for seed in s["sketch_seeds"]:
                yield ProblemKey(s["spectrum"], float(a), None if b is None else float(b), truncation(s, M), int(M),
                                 int(seed), "none"), Ns


def _check_sparse_rows(field: str, s: dict) -> None:
    """A sparse sign sketch can leave a row of S empty (CountSketch: M rows, one nonzero per column); with no
    mean-field tail S H Sᵀ is then singular and the job would fail. Its pattern is cheap to draw (O(d·s)), so every
    (M, sketch seed) is checked here and refused naming the field."""
    from sketchlaw.engine.problem import check_sketch, sketch_chunks

    if s["tail"] != "none":  # the tail adds (τ_H/M)·I: positive definite whatever the pattern
        return
    for label in s["sketches"]:
        if check_sketch(label, min(s["M"]))[0] != "sparse":
            continue
        for M in s["M"]:
            for seed in s["sketch_seeds"]:
                hit = set()
                for _, _, St in sketch_chunks(int(seed), int(M), truncation(s, M), label):
                    hit.update(St.indices.tolist())
                if len(hit) < M:
                    raise ConfigError(field, label, f"a family whose sketch has no empty row: at M = {M}, sketch seed "
                                                    f"{seed}, {label} leaves {M - len(hit)} of its rows empty with "
                                                    f"d = {truncation(s, M)} and tail none (S H Sᵀ singular; a larger "
                                                    f"d_per_M or d_min, or tail: mean)")


# The dataset's step sizes: every sample's kernel features have ‖φ_i‖² = k(x_i, x_i) = 1, so tr H = 1, and the
# sufficient condition γ(2μ_max + tr Σ) < 2 of docs/METHODS.md §5 holds below 2/3 for the unsketched problem (each
# sketch's own bound is checked when it runs).
DATASET_GAMMA_BOUND = 2.0 / 3.0


def _check_dataset(at: str, s: dict) -> None:
    """The real-dataset experiment's checks (docs/METHODS.md §20)."""
    from sketchlaw.workflow.datasets import SAMPLES

    for key in ("M", "N", "sketch_seeds"):
        _check_grid(f"{at}.{key}", s.get(key), integer=True, minimum={"M": 1, "N": 2, "sketch_seeds": 0}[key])
    n = SAMPLES[s["dataset"]]
    if max(s["M"]) > n:
        raise ConfigError(f"{at}.M", max(s["M"]), f"M <= {n} (the dataset's number of samples, hence of modes)")
    if isinstance(s["gamma"], list) or not 0 < s["gamma"] < DATASET_GAMMA_BOUND:
        raise ConfigError(f"{at}.gamma", s["gamma"], f"a single step size 0 < gamma < {DATASET_GAMMA_BOUND:.4g}")
    lo, hi = s["modes"]
    if not 1 <= lo < hi <= n // 2 or hi < 2 * lo:
        raise ConfigError(f"{at}.modes", s["modes"], f"[first, last] mode of the degree fits with 1 <= first, "
                                                     f"last >= 2·first, last <= {n // 2}")
    mc = s.get("montecarlo")
    if mc:
        for key in ("M", "N"):
            _check_grid(f"{at}.montecarlo.{key}", mc[key], integer=True, minimum=1 if key == "M" else 2)
        for key in ("M", "N"):
            if not set(mc[key]) <= set(s[key]):
                raise ConfigError(f"{at}.montecarlo.{key}", mc[key], f"a subset of {at}.{key} = {s[key]}")


def dataset_key(s: dict, M: int, seed: int) -> ProblemKey:
    """The problem of one sketch of the dataset (its name as the spectrum, its size as d; no a, b or tail)."""
    from sketchlaw.workflow.datasets import SAMPLES

    return ProblemKey(s["dataset"], 0.0, None, SAMPLES[s["dataset"]], int(M), int(seed), "none")


def sketch_families(s: dict) -> list[str]:
    """The sketch families an experiment's problems are drawn from: its ``sketches`` list, else the paper's Gaussian."""
    return list(s.get("sketches") or ["gaussian"])


def _gammas(s) -> list:
    return list(s["gamma"]) if isinstance(s["gamma"], list) else [s["gamma"]]


def _plan_followup(config: dict, name: str, problems: dict, followups: list) -> None:
    """Problems and jobs of a follow-up experiment: exact kinds (schedules, batch) one job per problem, reuse one
    Monte Carlo job per (problem, N), with its own seed (``followup_params``); ``followup_groups`` batches them."""
    s = _settings(config, name)
    kind = EXPERIMENTS[name].kind
    for a in s["a"]:
        for b in (s.get("b") or [None]):
            for M in s["M"]:
                for seed in s["sketch_seeds"]:
                    key = ProblemKey(s["spectrum"], float(a), None if b is None else float(b), truncation(s, M),
                                     int(M), int(seed), s["tail"])
                    problems[key.stem] = key
                    if kind == "reuse":
                        for N in s["N"]:
                            followups.append(Job(name, key, ((int(N), float(s["gamma"])),), int(s["trials"]),
                                                 kind=kind))
                    else:
                        followups.append(Job(name, key, tuple((int(N), float(s["gamma"])) for N in s["N"]),
                                             kind=kind))


def followup_groups(jobs) -> dict:
    """{(experiment, stem): [Job, ...]}: follow-up jobs batched per sketch family (``family_groups``; a reuse job per
    (problem, N) inside), each covariates job alone (stem: its problem and coordinate law)."""
    groups: dict = {}
    for job in jobs:
        if job.kind == "covariates":  # one job per (law, M, sketch seed): every N
            groups[(job.experiment, f"{job.problem.stem}_z{job.coordinates}")] = [job]
    groups.update(family_groups([j for j in jobs if j.kind != "covariates"]))
    return groups


def plan(config: dict) -> dict:
    """Expand a checked config: {"problems": {stem: ProblemKey}, "exact": [Job], "montecarlo": [Job],
    "baselines": [Job], "followups": [Job]} (baselines: least squares and ridge for the variance experiment;
    followups: the schedules, batch and reuse experiments' jobs)."""
    problems, exact, mc, baselines, followups = {}, [], [], [], []
    for name, experiment in EXPERIMENTS.items():
        if name not in (config.get("experiments") or {}):
            continue
        kind = experiment.kind
        if kind in FOLLOWUP_KINDS:
            _plan_followup(config, name, problems, followups)
            continue
        if kind == "dataset":  # one job per sketch seed: every M, the exact curves and the real-data Monte Carlo
            s = _settings(config, name)
            for seed in s["sketch_seeds"]:
                for M in s["M"]:
                    key = dataset_key(s, M, seed)
                    problems[key.stem] = key
                    followups.append(Job(name, key, tuple((int(N), float(s["gamma"])) for N in s["N"]),
                                         int((s.get("montecarlo") or {}).get("trials", 0)), kind=kind))
            continue
        if kind == "covariates":  # the Gaussian exact curve per sketch, and Monte Carlo per (law, M, sketch seed)
            s = _settings(config, name)
            sgd = s["montecarlo"]
            for key, Ns in covariate_problems(s):
                problems[key.stem] = key
                exact.append(Job(name, key, tuple((N, float(s["gamma"])) for N in Ns)))
                if key.M in sgd["M"]:
                    points = tuple((int(N), float(s["gamma"])) for N in sgd["N"])
                    followups += [Job(name, key, points, int(sgd["trials"]), kind=kind, coordinates=law)
                                  for law in s["coordinates"]]
            continue
        s = _settings(config, name)
        for a, b, sketch in itertools.product(s["a"], s.get("b") or [None], sketch_families(s)):
            for M in s["M"]:
                for seed in s["sketch_seeds"]:
                    key = ProblemKey(s["spectrum"], float(a), None if b is None else float(b),
                                     truncation(s, M), int(M), int(seed), s["tail"], sketch)
                    problems[key.stem] = key
                    if kind == "compute":
                        Ns = sorted({int(round(C / M)) for C in s["C"] if round(C / M) >= 2})
                    else:
                        Ns = [int(N) for N in s["N"]]
                    montecarlo = s.get("montecarlo")
                    if montecarlo and M in montecarlo["M"]:  # every Monte Carlo point gets its exact twin
                        Ns = sorted(set(Ns) | {int(N) for N in montecarlo["N"]})
                    points = tuple((N, float(g)) for g in _gammas(s) for N in Ns)
                    exact.append(Job(name, key, points))
                    if kind == "variance":
                        baselines.append(Job(name, key, tuple((N, float(s["gamma"])) for N in Ns),
                                             trials=int(s["ridge"]["trials"]), kind="baselines"))
                    if montecarlo and M in montecarlo["M"]:  # batched per sketch family (``family_groups``)
                        mc.append(Job(name, key, tuple((int(N), float(g)) for N in montecarlo["N"] for g in _gammas(s)),
                                      trials=int(montecarlo["trials"]), kind="montecarlo"))
    return {"problems": problems, "exact": exact, "montecarlo": mc, "baselines": baselines, "followups": followups}


def n_eff(N: int, log_base: str) -> float:
    base = {"e": math.e, "2": 2.0, "10": 10.0}[str(log_base)]
    return N / math.log(N, base)


def job_params(config: dict, job: Job) -> dict:
    """Everything a training script needs for ``job``, as plain data (a change re-runs exactly the affected jobs).

    The prior: isotropic (w* ~ N(0, I), for which E[λ_i w_i²] = i^-a, recorded as b = a) unless a source exponent b
    is given; the compute experiment records each N = round(C / M) with its nominal budget C; the step-size
    experiment omits γ above a sketch's own stability bound (every other experiment refuses them: see
    ``training.stable_points``); Monte Carlo seeds derive from the grid coordinates, never from job order.
    """
    s = _settings(config, job.experiment)
    p = job.problem
    prior = "isotropic" if p.b is None else "source"
    b = p.a if (p.b is None and p.spectrum == "power") else p.b
    columns = {"experiment": job.experiment, "spectrum": p.spectrum, "a": p.a,
               "b": float("nan") if b is None else b, "prior": prior, "M": p.M, "d": p.d,
               "schedule": s["schedule"], "sigma2": float(s["sigma2"]), "sketch_seed": p.seed,
               **({"sketch": p.sketch} if "sketches" in s else {})}
    return {"problem": asdict(p), "points": [list(pt) for pt in job.points], "sigma2": float(s["sigma2"]),
            "schedule": s["schedule"],
            "log_base": s["log_base"], "columns": columns, "trials": job.trials,
            "drop_unstable": EXPERIMENTS[job.experiment].kind == "stepsize",
            "nested": EXPERIMENTS[job.experiment].kind == "compute",
            "lambdas": s.get("ridge", {}).get("lambdas", []),
            "compute_of_N": {str(int(round(C / p.M))): int(C) for C in s.get("C", [])},
            "mc_seed": coordinate_seed(job.experiment, p.stem, *[x for pt in job.points for x in pt]),
            # a Monte Carlo point's stream depends on its own coordinates only, not on the job that runs it
            **({"point_seeds": [coordinate_seed(job.experiment, p.stem, *pt) for pt in job.points]}
               if job.kind == "montecarlo" else {})}


def followup_params(config: dict, job: Job) -> dict:
    """Everything a follow-up job needs (``training.followup_rows``), as plain data. The Monte Carlo seed of a reuse
    job derives from its grid coordinates (experiment, problem, N), never from job order; its trials share it, so
    every L of one job sees the same datasets and w* (common random numbers)."""
    s = _settings(config, job.experiment)
    p = job.problem
    columns = {"experiment": job.experiment, "spectrum": p.spectrum, "a": p.a,
               "b": p.a if p.b is None else p.b, "prior": "isotropic" if p.b is None else "source", "M": p.M,
               "d": p.d, "gamma": float(s["gamma"]), "sigma2": float(s["sigma2"]), "sketch_seed": p.seed}
    out = {"problem": asdict(p), "kind": job.kind, "columns": columns, "sigma2": float(s["sigma2"]), "gamma": float(s["gamma"]),
           "a": p.a, "b": p.b, "N": [int(N) for N, _ in job.points], "log_base": s["log_base"]}
    if job.kind == "schedules":
        out["specs"] = [dict(spec) for spec in s["schedules"]]
    elif job.kind == "batch":
        out.update(B=[int(B) for B in s["B"]], step_rules=list(s["step_rules"]))
    elif job.kind == "dataset":
        mc = s.get("montecarlo") or {"M": [], "N": [], "trials": 0}
        columns = {"experiment": job.experiment, "dataset": s["dataset"], "M": p.M, "d": p.d,
                   "gamma": float(s["gamma"]), "sketch_seed": p.seed}
        out.update(columns=columns, dataset=s["dataset"], seed=p.seed, M=[p.M], mc_M=[int(M) for M in mc["M"]],
                   mc_N=[int(N) for N in mc["N"]], trials=int(mc["trials"]),
                   mc_seed=coordinate_seed(job.experiment, p.stem))
    elif job.kind == "covariates":
        out.update(columns={**columns, "coordinates": job.coordinates}, coordinates=job.coordinates,
                   trials=int(job.trials), schedule=s["schedule"],
                   mc_seed=coordinate_seed(job.experiment, p.stem, job.coordinates))
    else:  # reuse
        out.update(L=[int(L) for L in s["L"]], trials=int(job.trials),
                   mc_seed=coordinate_seed(job.experiment, p.stem, *[x for pt in job.points for x in pt]))
    return out


def spectrum_params(config: dict, name: str) -> dict:
    """The dataset's spectrum and target energies with their bootstrap resamples (``datasets.spectrum_rows``)."""
    s = _settings(config, name)
    return {"experiment": name, "dataset": s["dataset"], "bootstrap": int(s["bootstrap"]), "modes": list(s["modes"]),
            "seed": coordinate_seed(name, s["dataset"], "bootstrap")}


def stability_params(config: dict, name: str) -> dict:
    """The covariates experiment's stability thresholds (``covariates.stability_rows``): every (a, b) and law on the
    block's small d and M, on its first sketch seed."""
    s = _settings(config, name)
    stab = s["stability"]
    return {"experiment": name, "curves": _curves(s), "coordinates": list(s["coordinates"]), "d": int(stab["d"]),
            "M": int(stab["M"]), "steps": int(stab["steps"]), "trials": int(stab["trials"]),
            "sketch_seeds": [int(s["sketch_seeds"][0])], "sigma2": float(s["sigma2"]),
            "seed": coordinate_seed(name, "stability")}


def claim_params(config: dict, name: str) -> dict:
    """The unsketched schedule comparison (``followups.schedule_claim``) of a schedules block: every (a, b) over
    the claim's N grid, for the paper's geometric decay and the power decay to zero with q = 2a − 1."""
    s = _settings(config, name)
    return {"experiment": name, "curves": _curves(s), "N": [int(N) for N in s["claim"]["N"]],
            "gamma": float(s["gamma"]), "sigma2": float(s["sigma2"])}


def finite_params(config: dict, name: str) -> dict:
    """The finite-size theory of a schedules block's window rows (``followups.schedule_finite``): every (a, b) at
    the block's largest M over its N grid."""
    s = _settings(config, name)
    return {"experiment": name, "spectrum": s["spectrum"], "curves": _curves(s), "M": int(max(s["M"])),
            "N": [int(N) for N in s["N"]], "gamma": float(s["gamma"]), "sigma2": float(s["sigma2"]),
            "specs": [dict(spec) for spec in s["schedules"]], "log_base": s["log_base"]}


FRONTIER_FAR_DECADES = 4  # budgets beyond the grid's largest, for the frontier's finite-size theory to run on
FRONTIER_M_FACTOR = 16    # and sizes up to this factor above the grid's largest M


def frontier_params(config: dict, name: str) -> dict:
    """The continuous frontier of the deterministic equivalent (``equivalents.frontier_de``) of a compute block:
    every (a, b) at the block's budgets and at one budget per decade up to FRONTIER_FAR_DECADES beyond, over sizes
    from the grid's smallest M to FRONTIER_M_FACTOR times its largest (where its own slopes head, for the
    extrapolation: docs/METHODS.md §14)."""
    s = _settings(config, name)
    budgets = sorted(float(C) for C in s["C"])
    far = budgets[-1] * 10.0 ** np.arange(1, FRONTIER_FAR_DECADES + 1)
    return {"experiment": name, "spectrum": s["spectrum"], "curves": _curves(s), "budgets": budgets + list(far),
            "M_min": float(min(s["M"])), "M_max": float(FRONTIER_M_FACTOR * max(s["M"])),
            "gamma": float(s["gamma"]), "sigma2": float(s["sigma2"]), "schedule": s["schedule"],
            "log_base": s["log_base"]}


def _curves(s: dict) -> list[dict]:
    return [{"a": float(a), "b": None if b is None else float(b)} for a in s["a"] for b in (s.get("b") or [None])]


def limit_params(config: dict, name: str) -> dict:
    """The M = ∞ limit curves an experiment's N_eff slopes need, one per (a, b) over the experiment's N grid, and the
    deterministic equivalent at the largest M (the finite-size theory of the N_eff window slopes)."""
    s = _settings(config, name)
    curves = [{"a": float(a), "b": float(a if b is None else b)} for a in s["a"] for b in (s.get("b") or [None])]
    return {"spectrum": s["spectrum"], "curves": curves, "N": [int(N) for N in s["N"]], "gamma": float(s["gamma"]),
            "M_window": int(max(s["M"])),
            "sigma2": float(s["sigma2"]), "schedule": s["schedule"], "log_base": s["log_base"], "experiment": name}
