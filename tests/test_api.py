"""The engine as a library call (sketchlaw.api): the same numbers as the engine itself, the CLI through it, the
README's examples run as doctests, and the library importable without any optional extra."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import sketchlaw
from sketchlaw import api
from sketchlaw.analysis.compute import locate_optimum
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.limit import limit_curve
from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.spectra import Prior, Spectrum
from sketchlaw.errors import ParameterError

REPO = Path(__file__).resolve().parents[1]


def test_readme_examples_run_as_doctests():
    failed, attempted = doctest.testfile(str(REPO / "README.md"), module_relative=False,
                                         optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted >= 6 and failed == 0


def test_module_docstring_example_runs():
    assert doctest.testmod(api).failed == 0


def test_default_truncation_is_the_workflows():
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())["defaults"]
    assert (api.D_PER_M, api.D_MIN) == (defaults["d_per_M"], defaults["d_min"])
    assert api.dimension(64) == 1024 and api.dimension(1024) == 8192 and api.dimension(64, d=300) == 300


@pytest.mark.parametrize("kind,params,batch", [("geometric", {}, 1), ("constant", {}, 1),
                                               ("cosine", {"final": 0.1}, 1), ("geometric", {}, 4),
                                               ("wsd", {"decay": 0.2}, 2)])
def test_risk_curve_is_the_engines_risk(kind, params, batch):
    """Every row equals the engine run directly on a freshly built problem (no cache), to 1e-12 relative."""
    api.clear_cache()
    table = api.risk_curve(1.5, [16, 32], [300, 3000], b=1.25, sigma2=0.5, gamma=0.2, schedule=kind,
                           schedule_params=params, batch=batch, seeds=[0, 2])
    assert len(table) == 8 and set(table["seed"]) == {0, 2} and set(table["M"]) == {16, 32}
    for row in table.itertuples():
        p = build_problem(Spectrum("power", 1.5, 1024), row.M, 0.5, row.seed, Prior(1.25), tail="mean")
        r = ExactEngine(p.mu, p.p0, 0.5, p.approx, batch=batch).run(Schedule(0.2, row.N // batch, kind, **params))
        assert row.updates == row.N // batch and row.B == batch
        for col, want in r.as_dict().items():
            assert getattr(row, col) == pytest.approx(want, rel=1e-12, abs=1e-300), col
        assert row.risk == pytest.approx(row.sigma2 + row.approx + row.bias + row.variance, rel=1e-14)


def test_a_second_call_reuses_the_sketches_and_phase_maps():
    api.clear_cache()
    first = api.risk_curve(2.0, 32, [1000, 10000], sigma2=1.0)
    maps = next(iter(api._MAPS.values()))
    builds = maps.builds
    second = api.risk_curve(2.0, 32, [1000, 10000], sigma2=0.25)  # σ² only: same sketch, same maps
    assert len(api._PROBLEMS) == 1 and maps.builds == builds
    assert np.allclose(second["bias"], first["bias"], rtol=1e-12)
    assert not np.allclose(second["variance"], first["variance"])
    api.clear_cache()  # the rescaled kept run is the engine's own run at that σ²
    fresh = api.risk_curve(2.0, 32, [1000, 10000], sigma2=0.25)
    for col in ("risk", "bias", "variance", "variance_from_noise", "variance_from_approx"):
        assert np.allclose(second[col], fresh[col], rtol=1e-13, atol=0), col


def test_unstable_step_size_is_refused_naming_the_bound():
    from sketchlaw.engine.stability import critical_step_size

    bounds = [critical_step_size(api.problem(2.0, 32, seed=s).mu) for s in (0, 1)]
    bound = api.stability_bound(2.0, 32, seeds=[0, 1])
    assert bound == min(bounds) and bounds[0] != bounds[1]
    with pytest.raises(ParameterError) as err:
        api.risk_curve(2.0, 32, 1000, gamma=1.01 * bound, seeds=[0, 1])
    assert err.value.name == "gamma" and f"{bound:.6g} (the exact stability bound" in str(err.value)
    assert len(api.risk_curve(2.0, 32, 1000, gamma=0.99 * bound, seeds=[0, 1])) == 2


def test_limit_risk_curve_is_the_engines_limit():
    got = api.limit_risk_curve(2.0, [100, 1000, 10000], b=1.5, sigma2=0.5, gamma=0.2)
    want = limit_curve("power", 2.0, 1.5, 0.5, 0.2, [100, 1000, 10000])
    for col in ("N", "N_eff", "bias", "variance", "excess"):
        assert np.allclose(got[col], want[col], rtol=1e-12, atol=0), col
    assert np.allclose(got["risk"], 0.5 + want["excess"], rtol=1e-14)
    again = api.limit_risk_curve(2.0, [100, 1000, 10000], b=1.5, sigma2=2.0, gamma=0.2)  # σ² alone: no new run
    assert np.array_equal(again["bias"], got["bias"]) and np.allclose(again["variance"], 4 * got["variance"])


def test_compute_optimal_locates_the_minimum_of_the_exact_risk_between_grid_points():
    grid = [8, 16, 32, 64, 128]
    best = api.compute_optimal(2.0, 2e5, grid, seeds=[0, 1])
    table = api.risk_curve(2.0, grid, [int(round(2e5 / m)) for m in grid], seeds=[0, 1])
    on_budget = table[table["N"] == (2e5 / table["M"]).round().astype(int)]
    means = on_budget.groupby("M")["reducible"].mean()
    assert np.allclose(best.curve["reducible"], means.to_numpy(), rtol=1e-14, atol=0)
    assert best.M_grid_best == means.idxmin() and 8 < best.M_grid_best < 128  # interior: both extremes lose
    located = locate_optimum(means.index, means.to_numpy(), np.ones(len(means), bool))  # the compute experiment's
    assert best.interior and best.M_star == located["M_star"] and best.N_star == pytest.approx(2e5 / best.M_star)
    assert best.risk_star == pytest.approx(1.0 + located["reducible_star"], rel=1e-14)
    assert 1.0 < best.risk_star <= 1.0 + means.min()  # the parabola's vertex, at or below its three points
    assert best.log_M_error == pytest.approx(np.log(2) / 2) and best.log_R_error == 0.0
    with pytest.raises(ParameterError, match="C="):
        api.compute_optimal(2.0, 3.0, grid)
    edge = api.compute_optimal(2.0, 2e5, [64, 128, 256], seeds=[0, 1])  # the least risk at the smallest M
    assert not edge.interior and edge.M_star == edge.M_grid_best == 64 and np.isnan(edge.log_M_error)


@pytest.mark.slow
def test_the_located_optimum_is_the_finer_grids_minimum_within_its_error():
    """On a grid of factor 2 the located M* lands within its bound of the minimum on a grid 4× finer, much nearer
    than the coarse grid's own minimum."""
    coarse = api.compute_optimal(2.0, 1e6, [16, 32, 64, 128, 256], seeds=[0, 1])
    fine = api.compute_optimal(2.0, 1e6, sorted({int(round(32 * 2 ** (k / 4))) for k in range(13)}), seeds=[0, 1])
    miss = abs(np.log(coarse.M_star / fine.M_grid_best))
    assert miss <= coarse.log_M_error and miss < 0.5 * abs(np.log(coarse.M_grid_best / fine.M_grid_best))


def test_theory_is_exported_from_the_theory():
    import importlib

    rates = importlib.import_module("sketchlaw.theory.rates")
    assert sketchlaw.rates is rates.rates and sketchlaw.exponents is rates.exponents


def _cli(*args):
    out = subprocess.run([sys.executable, "-m", "sketchlaw.cli", "risk", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("extra,kind,params,batch", [
    ([], "geometric", {}, 1),
    (["--schedule", "cosine", "--schedule-param", "final=0.1", "--batch", "2"], "cosine", {"final": 0.1}, 2),
])
def test_cli_prints_the_apis_numbers(extra, kind, params, batch):
    res = _cli("--a", "1.5", "--b", "2", "--M", "32", "--N", "4000", "--sigma2", "0.3", "--gamma", "0.15",
               "--seed", "1", *extra)
    row = api.risk_curve(1.5, 32, 4000, b=2.0, sigma2=0.3, gamma=0.15, schedule=kind, schedule_params=params,
                         batch=batch, seeds=[1]).iloc[0]
    assert res["d"] == 1024 and res["batch"] == batch and res["schedule"] == kind
    for col in api.RESULT_COLUMNS + ("N_eff", "gamma_max"):
        assert res[col] == pytest.approx(row[col], rel=1e-12), col


def test_library_imports_without_the_optional_extras():
    """What `pip install .` gives (the core dependencies) is enough for the API: a run with every optional extra's
    top-level package made unimportable still computes a curve."""
    extras = ("snakemake", "papermill", "nbformat", "jupyter", "ipywidgets", "voila", "selenium", "matplotlib",
              "seaborn", "yaml", "jsonschema", "IPython", "ipykernel")
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {extras!r}:
            raise ImportError('blocked optional extra: ' + name)
sys.meta_path.insert(0, Block())
import sketchlaw
print(len(sketchlaw.risk_curve(a=2.0, M=16, N=[100, 1000])))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "2", out.stderr
    core = {"numpy", "scipy", "pandas", "pyarrow", "tqdm", "numba"}
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {d.split(">")[0].split("=")[0].split("<")[0] for d in deps} == core
