"""Benchmarks of the simulation core against the naive reference, in one process (ratios, not timed tests).

    .venv/bin/python benchmarks/bench_core.py            # everything (the M = 4096, d = 2^18 build takes minutes)
    .venv/bin/python benchmarks/bench_core.py --quick    # skip the two largest cases

Prints one line per measurement and a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from sketchlaw import seeds
from sketchlaw.exact import ExactEngine
from sketchlaw.problem import build_problem, full_sketch
from sketchlaw.schedules import Schedule
from sketchlaw.sgd import run_sgd
from sketchlaw.spectra import Spectrum


def timed(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def sgd_per_step(M=256, d=16384, trials=16, steps=200):
    """Per-step time of naive full-dimensional SGD vs reduced Monte Carlo (same trials, same steps)."""
    spectrum = Spectrum("power", 2.0, d)
    problem = build_problem(spectrum, M, 1.0, seed=0)
    S, lam = full_sketch(0, M, d), spectrum.eigenvalues()
    gen = seeds.rng(0, seeds.NAIVE_DATA)
    W = gen.standard_normal((trials, d))

    def naive():  # the textbook loop: draw x ~ N(0, H), form Sx, y = <x, w*> + ε, update v
        v = np.zeros((trials, M))
        for _ in range(steps):
            x = gen.standard_normal((trials, d)) * np.sqrt(lam)
            y = np.einsum("rd,rd->r", x, W) + gen.standard_normal(trials)
            z = x @ S.T
            v -= (0.1 * (np.einsum("rm,rm->r", z, v) - y))[:, None] * z

    targets, approx = problem.sample_targets(trials, seed=1)
    sched = Schedule(0.1, steps * 50, kind="constant")
    t_naive = timed(naive) / steps
    t_reduced = timed(lambda: run_sgd(problem.mu, targets, approx, 1.0, sched, seed=2)) / sched.N
    return {"M": M, "d": d, "trials": trials, "naive_s_per_step": t_naive, "reduced_s_per_step": t_reduced,
            "ratio": t_naive / t_reduced}


def exact_stepping(M=1024, steps=2000):
    problem = build_problem(Spectrum("power", 2.0, 32 * M), M, 1.0, seed=0)
    engine = ExactEngine.from_problem(problem)
    sched = Schedule(0.1, steps, kind="constant")
    t = timed(lambda: engine.run(sched, method="step"), repeat=2)
    return {"M": M, "steps": steps, "mode_steps_per_s": M * steps / t}


def exact_curve(M, N, d, points=20):
    t0 = time.perf_counter()
    problem = build_problem(Spectrum("power", 2.0, d), M, 1.0, seed=0)
    t_build = time.perf_counter() - t0
    engine = ExactEngine.from_problem(problem)
    cps = np.unique(np.logspace(2, np.log10(N), points).astype(np.int64))
    t0 = time.perf_counter()
    curve = engine.run(Schedule(0.1, N), checkpoints=cps)
    t_curve = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid = engine.run_many([Schedule(0.1, int(n)) for n in cps])
    t_grid = time.perf_counter() - t0
    return {"M": M, "N": N, "d": d, "build_s": t_build, "curve_checkpoints_s": t_curve, "n_grid_s": t_grid,
            "points": len(cps), "final_risk": curve[-1].risk, "grid_final_risk": grid[-1].risk}


def build_peak_memory(M, d):
    """Peak resident memory of building one problem, in a fresh process (MB)."""
    code = (f"import resource,time; from sketchlaw.problem import build_problem; from sketchlaw.spectra import Spectrum;"
            f"t=time.perf_counter(); build_problem(Spectrum('power', 2.0, {d}), {M}, 1.0, seed=0);"
            f"print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"M": M, "d": d, "seconds": float(out[0]), "peak_rss_MB": int(out[1]) / 1024,
            "dense_S_would_need_MB": M * d * 8 / 2**20}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip M = 4096 cases")
    args = ap.parse_args(argv)
    out = {}
    out["sgd_per_step"] = r = sgd_per_step()
    print(f"SGD per step, M={r['M']}, d={r['d']}, {r['trials']} trials: naive {r['naive_s_per_step'] * 1e6:.0f} µs, "
          f"reduced {r['reduced_s_per_step'] * 1e6:.1f} µs, ratio {r['ratio']:.0f}x (goal >= 100x)", flush=True)
    out["exact_stepping"] = r = exact_stepping()
    print(f"exact recursion, stepping: {r['mode_steps_per_s']:.3g} mode-steps/s at M={r['M']}", flush=True)
    out["curve_1024"] = r = exact_curve(1024, 10**7, 32 * 1024)
    print(f"exact risk curve M=1024, N=1e7 ({r['points']} checkpoints): {r['curve_checkpoints_s']:.2f} s "
          f"(goal <= 5 s); the same {r['points']} N as separate schedules: {r['n_grid_s']:.2f} s; "
          f"build {r['build_s']:.1f} s", flush=True)
    if not args.quick:
        out["curve_4096"] = r = exact_curve(4096, 10**8, 16 * 4096)
        print(f"exact risk curve M=4096, N=1e8 ({r['points']} checkpoints): {r['curve_checkpoints_s']:.2f} s "
              f"(goal <= 30 s); as separate schedules {r['n_grid_s']:.2f} s; build {r['build_s']:.1f} s", flush=True)
        out["build_memory"] = r = build_peak_memory(4096, 2**18)
        print(f"build M=4096, d=2^18: peak RSS {r['peak_rss_MB']:.0f} MB (goal <= 2048 MB; a dense S alone would "
              f"take {r['dense_S_would_need_MB']:.0f} MB), {r['seconds']:.0f} s", flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
