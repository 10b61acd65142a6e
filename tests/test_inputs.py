"""Bad parameters are rejected with an error naming the parameter and its range; seeds behave."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sketchlaw.errors import ParameterError
from sketchlaw.engine.exact import ExactEngine
from sketchlaw.engine.problem import Problem, build_problem, full_sketch
from sketchlaw.engine.schedules import Schedule, effective_sample_size
from sketchlaw.engine.spectra import Prior, Spectrum


@pytest.mark.parametrize("make,name", [
    (lambda: Spectrum("power", 1.0, 100), "a"),
    (lambda: Spectrum("power", 0.5, 100), "a"),
    (lambda: Spectrum("cubic", 2.0, 100), "spectrum"),
    (lambda: Spectrum("power", 2.0, 0), "d"),
    (lambda: Spectrum("power", 2.0, 100.5), "d"),
    (lambda: Prior(1.0), "b"),
    (lambda: build_problem(Spectrum("power", 2.0, 100), 0, 1.0, 0), "M"),
    (lambda: build_problem(Spectrum("power", 2.0, 100), 101, 1.0, 0), "M"),
    (lambda: build_problem(Spectrum("power", 2.0, 100), 2.5, 1.0, 0), "M"),
    (lambda: build_problem(Spectrum("power", 2.0, 100), 10, -1.0, 0), "sigma2"),
    (lambda: build_problem(Spectrum("power", 2.0, 100), 10, 1.0, -3), "seed"),
    (lambda: Schedule(0.1, 1), "N"),
    (lambda: Schedule(0.1, 1000.5), "N"),
    (lambda: Schedule(0.0, 1000), "gamma"),
    (lambda: Schedule(-0.1, 1000), "gamma"),
    (lambda: Schedule(float("nan"), 1000), "gamma"),
    (lambda: Schedule(0.1, 1000, kind="exponential"), "schedule"),
    (lambda: Schedule(0.1, 1000, log_base="3"), "log_base"),
    (lambda: effective_sample_size(1), "N"),
])
def test_bad_parameters_name_the_parameter_and_range(make, name):
    with pytest.raises(ParameterError) as err:
        make()
    assert err.value.name == name
    assert str(err.value).startswith(f"{name}=") and "allowed" in str(err.value)


def test_divergent_step_size_is_rejected_with_the_bound(small_problem):
    with pytest.raises(ParameterError, match=r"gamma=0\.9 .*0 < gamma < 0\.\d+"):
        ExactEngine.from_problem(small_problem).run(Schedule(0.9, 1000))


def test_same_seed_identical_different_seed_different():
    sp = Spectrum("power", 1.5, 2500)
    p1, p2, p3 = (build_problem(sp, 16, 1.0, s) for s in (4, 4, 5))
    for field in ("mu", "U", "p0"):
        assert np.array_equal(getattr(p1, field), getattr(p2, field))
    assert p1.approx == p2.approx
    assert not np.allclose(p1.mu, p3.mu)
    assert not np.allclose(full_sketch(4, 16, 2500), full_sketch(5, 16, 2500))


def test_sketch_for_smaller_d_is_a_prefix():
    assert np.array_equal(full_sketch(1, 8, 1500), full_sketch(1, 8, 5000)[:, :1500])


def test_problem_roundtrip(tmp_path, small_problem):
    path = tmp_path / "p.npz"
    small_problem.save(path)
    loaded = Problem.load(path)
    assert np.array_equal(loaded.mu, small_problem.mu) and np.array_equal(loaded.p0, small_problem.p0)
    assert loaded.approx == small_problem.approx and loaded.spectrum == small_problem.spectrum
    assert loaded.meta["numpy"] == np.__version__ and loaded.meta["seed"] == small_problem.seed
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_geometric_schedule_phases():
    s = Schedule(0.4, 1000)
    phases = s.phases()
    assert sum(n for _, n in phases) == 1000
    assert len(phases) == int(np.ceil(np.log(1000)))
    assert [g for g, _ in phases] == [0.4 * 2.0 ** -k for k in range(len(phases))]
    steps = s.step_sizes()
    t = np.arange(1, 1001)
    assert np.array_equal(steps, 0.4 * 2.0 ** -np.floor((t - 1) / (1000 / np.log(1000))))
    assert Schedule(0.4, 1000, log_base="2").N_eff == pytest.approx(1000 / np.log2(1000))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sketchlaw.cli", *args], capture_output=True, text=True)


def test_cli_prints_json_for_one_grid_point():
    out = _cli("risk", "--spectrum", "power", "--a", "2", "--M", "16", "--d", "1024", "--N", "5000",
               "--sigma2", "1", "--gamma", "0.1", "--seed", "0", "--engine", "montecarlo", "--trials", "200")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["risk"] == pytest.approx(res["sigma2"] + res["approx"] + res["bias"] + res["variance"])
    assert res["N_eff"] == pytest.approx(5000 / np.log(5000))
    assert abs(res["mc_mean"] - res["risk"]) < 5 * res["mc_sem"]


@pytest.mark.parametrize("args,name", [
    (["--a", "1", "--M", "4", "--d", "64", "--N", "100"], "a"),
    (["--a", "2", "--M", "65", "--d", "64", "--N", "100"], "M"),
    (["--a", "2", "--M", "4", "--d", "64", "--N", "1"], "N"),
    (["--a", "2", "--M", "4", "--d", "64", "--N", "100", "--gamma", "3"], "gamma"),
    (["--a", "2", "--M", "4", "--d", "64", "--N", "100", "--sigma2", "-1"], "sigma2"),
    (["--a", "2", "--M", "4.5", "--d", "64", "--N", "100"], "M"),
])
def test_cli_reports_bad_parameters_without_traceback(args, name):
    out = _cli("risk", *args)
    assert out.returncode != 0
    assert out.stderr.startswith(f"sketchlaw: error: {name}=") and "Traceback" not in out.stderr
