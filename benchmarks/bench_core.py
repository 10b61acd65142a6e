"""Benchmarks of the simulation core, one line per item of issue 13's "Must show" list, numbers to results.json.

    .venv/bin/python benchmarks/bench_core.py            # full run (about 10 minutes on an idle 2-core machine)
    .venv/bin/python benchmarks/bench_core.py --quick    # small sizes (development; not the numbers to quote)

Each printed line is one ratio or rate, measured in this run against its own reference (dgemm, the random draws),
so a loaded machine moves both sides. benchmarks/readme.py renders README.md's performance section from the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from sketchlaw import seeds
from sketchlaw.engine.exact import ExactEngine, warm_up
from sketchlaw.engine.stability import critical_step_size
from sketchlaw.engine.problem import build_problem
from sketchlaw.engine.schedules import Schedule
from sketchlaw.engine.sgd import run_sgd
from sketchlaw.engine.spectra import Spectrum

HERE = Path(__file__).resolve().parent


def timed(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import numba
    import scipy

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "numba": numba.__version__, "platform": platform.platform()}


def dgemm_rate(M, width=1024, repeat=3) -> float:
    """Flop rate of the build's own product shape, (width × M) @ (M × M)."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((width, M)), rng.standard_normal((M, M))
    return 2.0 * width * M * M / timed(lambda: A @ B, repeat)


def build(M, d):
    t = time.perf_counter()
    problem = build_problem(Spectrum("power", 2.0, d), M, 1.0, seed=0)
    return problem, time.perf_counter() - t


def curve_vs_run_many(problem, N, points=20):
    engine = ExactEngine.from_problem(problem)
    gamma = 0.5 * critical_step_size(problem.mu)
    cps = np.unique(np.logspace(2, np.log10(N), points).astype(np.int64))
    t = time.perf_counter()
    curve = engine.run(Schedule(gamma, N), checkpoints=cps)
    t_curve = time.perf_counter() - t
    maps = engine.cache.builds
    engine = ExactEngine.from_problem(problem)  # cold cache: run_many decomposes its step sizes itself
    t = time.perf_counter()
    engine.run_many([Schedule(gamma, int(n)) for n in cps])
    t_many = time.perf_counter() - t
    return {"M": problem.M, "N": N, "points": len(cps), "curve_s": t_curve, "run_many_s": t_many,
            "phase_maps": maps, "final_risk": curve[-1].risk}


def many_pieces(problem, pieces, N):
    """A cosine-shaped schedule of ``pieces`` distinct constant steps (issue #11's shapes), as an explicit list."""
    engine = ExactEngine.from_problem(problem)
    g0 = 0.5 * critical_step_size(problem.mu)
    k = np.arange(pieces)
    steps = g0 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * k / pieces)))
    lengths = np.full(pieces, N // pieces)
    phases = list(zip(steps.tolist(), lengths.tolist()))
    t = time.perf_counter()
    engine.run_phases(phases)
    return {"M": problem.M, "pieces": pieces, "N": int(lengths.sum()), "seconds": time.perf_counter() - t,
            "phase_maps": engine.cache.builds}


def schedule_pieces(N_values=(10**6, 10**8, 10**10), reference_N=10**6, gamma=0.1):
    """Turning a cosine schedule into constant pieces (Schedule._pieces, a fresh Schedule each time so nothing is
    cached) at each N, against scanning every step's key at reference_N (search=False, the method it replaced)."""
    rows = []
    for N in N_values:
        t = timed(lambda: Schedule(gamma, N, "cosine")._pieces(), repeat=3)
        rows.append({"N": N, "seconds": t, "pieces": len(Schedule(gamma, N, "cosine")._pieces())})
    scan = timed(lambda: Schedule(gamma, reference_N, "cosine")._pieces(search=False), repeat=3)
    return {"rows": rows, "reference_N": reference_N, "scan_s": scan}


def stepping(M=1024, steps=20000):
    mu = np.arange(1, M + 1, dtype=float) ** -2.0
    engine = ExactEngine(mu, np.ones(M), 1.0, 0.1)
    sch = Schedule(0.5 * critical_step_size(mu), steps, kind="constant")
    engine.run(Schedule(sch.gamma, 10, kind="constant"), method="step")
    t = timed(lambda: engine.run(sch, method="step"), repeat=3)
    return {"M": M, "steps": steps, "mode_steps_per_s": M * steps / t}


def build_rate(M, ratio=32):
    d = ratio * M
    rate = dgemm_rate(M)
    problem, t = build(M, d)
    flops = 3.0 * M * M * d  # syrk M²d + gemm 2M²d (the eigendecomposition is timed but not counted)
    return problem, {"M": M, "d": d, "seconds": t, "flop_rate": flops / t, "dgemm_rate": rate,
                     "fraction": flops / t / rate}


def build_in_subprocess(M, d):
    """Time and peak resident memory of one build in a fresh process (ru_maxrss, MB)."""
    code = ("import resource,time; from sketchlaw.engine.problem import build_problem; from sketchlaw.engine.spectra import Spectrum;"
            f"t=time.perf_counter(); build_problem(Spectrum('power', 2.0, {d}), {M}, 1.0, seed=0);"
            "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"M": M, "d": d, "seconds": float(out[0]), "peak_rss_MB": int(out[1]) / 1024,
            "dense_S_MB": M * d * 8 / 2**20}


def monte_carlo_vs_draws(M=256, trials=16, steps=20000, dtype=np.float64):
    """Per-step time of reduced Monte Carlo against drawing the same random numbers alone (same blocks, same run)."""
    spectrum = Spectrum("power", 2.0, 32 * M)
    problem = build_problem(spectrum, M, 1.0, seed=0)
    targets, approx = problem.sample_targets(trials, seed=1)
    sch = Schedule(0.5 * critical_step_size(problem.mu), steps, kind="constant")
    sqrt_mu, noise_sd = np.sqrt(problem.mu), np.sqrt(1.0 + approx)

    def draws():  # what run_sgd draws, block by block (its block size)
        from sketchlaw.engine.sgd import _STEP_BLOCK_BYTES

        block = max(1, _STEP_BLOCK_BYTES // (8 * trials * (M + 1)))
        for b, start in enumerate(range(0, steps, block)):
            n = min(block, steps - start)
            gen = seeds.rng(2, seeds.SGD_DATA, b)
            Z = gen.standard_normal((n, trials, M), dtype=dtype)
            Z *= sqrt_mu.astype(dtype)
            gen.standard_normal((n, trials), dtype=dtype) * noise_sd

    t_mc = timed(lambda: run_sgd(problem.mu, targets, approx, 1.0, sch, seed=2, dtype=dtype), repeat=2) / steps
    t_draw = timed(draws, repeat=2) / steps
    return {"M": M, "trials": trials, "dtype": np.dtype(dtype).name, "mc_s_per_step": t_mc,
            "draws_s_per_step": t_draw, "ratio": t_mc / t_draw}


@njit(error_model="numpy")
def _in_order_sums(lam_w, lam, energy_w, k):
    """df, its derivative, E and its derivative summed mode after mode (no reassociation: one chain per sum)."""
    df = ddf = energy = denergy = 0j
    kr, ki = k.real, k.imag
    for i in range(lam.shape[0]):
        wr = lam[i] + kr
        norm = wr * wr + ki * ki
        inv = complex(wr / norm, -ki / norm) if 1e-290 < norm < 1e290 else 1.0 / complex(wr, ki)
        q = lam_w[i] * lam[i] * inv
        df += q
        ddf -= q * inv
        s = energy_w[i] * inv
        energy += s
        denergy -= s * inv
    return df, ddf, energy, denergy


@njit(error_model="numpy")
def _plain_continuation(lam_w, lam, energy_w, M, mu, rel_eta):
    """The reference for ``equivalents._resolvent_densities``: in-order sums over the modes; each point started from
    the previous κ, Newton run to a step below 1e-13·|κ|, then one more pass for the densities at the converged κ."""
    counts = np.zeros(mu.shape[0])
    energy = np.zeros(mu.shape[0])
    k = complex(-mu[0], -1e-3 * mu[0])
    for idx in range(mu.shape[0]):
        z = complex(mu[idx], rel_eta * mu[idx])
        for _ in range(100):
            df, ddf, _e, _de = _in_order_sums(lam_w, lam, energy_w, k)
            step = (-k + k * df / M - z) / (-1.0 + (df + k * ddf) / M)
            k_new = k - step
            if k_new.imag > 0:
                k_new = complex(k_new.real, 0.5 * k.imag)
            k = k_new
            if abs(step) <= 1e-13 * abs(k):
                break
        df, _d, e, _de = _in_order_sums(lam_w, lam, energy_w, k)
        if abs(-k * (1.0 - df / M) - z) > 1e-8 * abs(z) or k.imag >= 0:
            k = -z
            continue
        counts[idx] = M * (1.0 / k).imag / np.pi
        energy[idx] = e.imag / np.pi
    return counts, energy


def resolvent(cases=(("power", 2.0, 2048, {}), ("power", 1.5, 8192, "frontier"))):
    """The deterministic equivalent's continuation against the plain one on the same inputs (those of
    ``sketched_modes_de``): time of both Richardson passes, the ratio, and the largest relative difference."""
    from sketchlaw.theory import equivalents as eq

    rows = []
    for kind, a, M, options in cases:
        options = eq.FRONTIER_MODES if options == "frontier" else options
        captured, kernel = [], eq._resolvent_densities
        eq._resolvent_densities = lambda *args: captured.append(args) or kernel(*args)
        try:
            eq.sketched_modes_de(kind, a, M, None, **options)
        finally:
            eq._resolvent_densities = kernel
        _plain_continuation(*captured[0][:4], captured[0][4][:8], captured[0][5])  # compile outside the timing
        t_new = timed(lambda: [kernel(*args) for args in captured])
        t_ref = timed(lambda: [_plain_continuation(*args) for args in captured])
        diff = 0.0
        for args in captured:
            for x, y in zip(kernel(*args), _plain_continuation(*args)):
                diff = max(diff, float(np.max(np.abs(x - y)) / np.max(np.abs(y))))
        rows.append({"kind": kind, "a": a, "M": M, "grid_step": options.get("grid_step", 0.002),
                     "points": int(captured[0][4].shape[0]), "modes": int(captured[0][1].shape[0]),
                     "seconds": t_new, "reference_s": t_ref, "ratio": t_ref / t_new, "max_rel_diff": diff})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for development")
    ap.add_argument("--output", type=Path, default=None,
                    help="results file (default benchmarks/results.json; --quick: benchmarks/out/results-quick.json)")
    ap.add_argument("--only", default=None,
                    help="comma-separated measurements to run alone (build_rate, curve, pieces, stepping, build_memory, "
                         "schedule_pieces, monte_carlo, resolvent); curve and pieces build build_rate's problem first")
    args = ap.parse_args(argv)
    quick = args.quick
    only = set(args.only.split(",")) if args.only else None

    def want(name):
        return only is None or name in only

    warm_up()  # load the compiled kernels from numba's cache before any timing
    M_big = 1024 if quick else 4096
    N_big = 10**7 if quick else 10**8
    pieces = 100 if quick else 1000
    out = {"quick": quick, "machine": machine(), "load_average_start": os.getloadavg(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def say(line):
        print(line, flush=True)
        out.setdefault("lines", []).append(line)

    if want("build_rate") or want("curve") or want("pieces"):
        problem, r = build_rate(M_big)
        out["build_rate"] = r
        say(f"build M={r['M']}, d={r['d']} (d/M = 32): {r['seconds']:.1f} s, {r['flop_rate'] / 1e9:.1f} GFLOP/s = "
            f"{r['fraction']:.2f} of this run's dgemm rate {r['dgemm_rate'] / 1e9:.1f} GFLOP/s (goal >= 0.70)")
        if want("curve"):
            out["curve"] = r = curve_vs_run_many(problem, N_big)
            say(f"exact curve M={r['M']}, N={r['N']:.0e}, {r['points']} checkpoints: {r['curve_s']:.2f} s "
                f"({r['phase_maps']} phase maps; goal <= 10 s, 5 s) vs run_many over the same {r['points']} N: "
                f"{r['run_many_s']:.2f} s, ratio curve/run_many {r['curve_s'] / r['run_many_s']:.2f} (goal <= 1)")
        if want("pieces"):
            out["pieces"] = r = many_pieces(problem, pieces, N_big)
            say(f"schedule of {r['pieces']} distinct constant pieces, M={r['M']}, N={r['N']:.0e}: {r['seconds']:.1f} s "
                f"(goal <= 60 s, 30 s at 1000 pieces and M = 4096)")
        del problem
    if want("stepping"):
        out["stepping"] = r = stepping()
        say(f"exact stepping at M={r['M']}: {r['mode_steps_per_s']:.3g} mode-steps/s (goal >= 3e8, 5e8)")
    if not quick and want("build_memory"):
        out["build_memory"] = r = build_in_subprocess(4096, 2**18)
        say(f"build M={r['M']}, d=2^18 in a fresh process: peak RSS {r['peak_rss_MB']:.0f} MB (goal <= 2048 MB; "
            f"a dense S alone: {r['dense_S_MB']:.0f} MB), {r['seconds']:.0f} s")
        out["build_8192"] = r = build_in_subprocess(8192, 8 * 8192)
        say(f"build M={r['M']}, d={r['d']} (the paper config's largest M, d = 8M): {r['seconds']:.0f} s, "
            f"peak RSS {r['peak_rss_MB']:.0f} MB")
    if want("schedule_pieces"):
        out["schedule_pieces"] = r = schedule_pieces()
        times = ", ".join(f"N={x['N']:.0e} {x['seconds'] * 1e3:.0f} ms ({x['pieces']} pieces)" for x in r["rows"])
        say(f"cosine schedule into constant pieces: {times} (goal: flat in N) vs every step scanned at "
            f"N={r['reference_N']:.0e}: {r['scan_s'] * 1e3:.0f} ms, ratio search/scan at N={r['reference_N']:.0e} "
            f"{r['rows'][0]['seconds'] / r['scan_s']:.2f}")
    if want("monte_carlo"):
        for dtype in (np.float64, np.float32):
            out[f"monte_carlo_{np.dtype(dtype).name}"] = r = monte_carlo_vs_draws(dtype=dtype,
                                                                                 steps=5000 if quick else 20000)
            say(f"Monte Carlo ({r['dtype']} draws) M={r['M']}, {r['trials']} trials: {r['mc_s_per_step'] * 1e6:.1f} "
                f"µs per step vs its draws alone {r['draws_s_per_step'] * 1e6:.1f} µs: ratio {r['ratio']:.2f} "
                f"(goal <= 1.5)")
    if want("resolvent"):
        out["resolvent"] = rows = resolvent()
        for r in rows:
            say(f"deterministic equivalent's continuation, {r['kind']} a={r['a']:g} M={r['M']} ({r['points']} points, "
                f"{r['modes']} modes, grid step {r['grid_step']:g}): {r['seconds']:.2f} s vs the plain continuation "
                f"{r['reference_s']:.2f} s, ratio {r['ratio']:.2f}; densities differ by at most {r['max_rel_diff']:.1e} "
                f"relative")
    out["load_average_end"] = os.getloadavg()
    path = args.output or (HERE / "out" / ("results-quick.json" if quick else "results-only.json") if quick or only
                           else HERE / "results.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
