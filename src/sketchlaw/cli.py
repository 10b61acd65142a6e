"""Command line: ``sketchlaw risk`` evaluates one grid point and prints JSON.

    sketchlaw risk --spectrum power --a 2 --M 64 --d 4096 --N 100000 --sigma2 1 --gamma 0.1 --seed 0
    sketchlaw risk ... --engine montecarlo --trials 200      # adds the Monte Carlo mean and standard error
"""

from __future__ import annotations

import argparse
import json
import sys

from sketchlaw.errors import DivergenceError, ParameterError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sketchlaw", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("risk", help="expected risk (and optionally Monte Carlo) at one grid point, as JSON")
    r.add_argument("--spectrum", default="power", help="power | logpower")
    r.add_argument("--a", type=float, required=True, help="spectrum exponent a > 1")
    r.add_argument("--b", type=float, default=None, help="source-condition exponent b > 1 (default: isotropic prior)")
    r.add_argument("--M", type=float, required=True, help="sketch size (model parameters), 1 <= M <= d")
    r.add_argument("--d", type=float, required=True, help="truncation dimension of the data")
    r.add_argument("--N", type=float, required=True, help="number of SGD steps (samples), N >= 2")
    r.add_argument("--sigma2", type=float, default=1.0, help="label noise variance σ² >= 0")
    r.add_argument("--gamma", type=float, default=0.1, help="initial step size γ > 0")
    r.add_argument("--schedule", default="geometric", help="geometric | constant")
    r.add_argument("--log-base", default="e", help="base of the log in N_eff = N / log N: e | 2 | 10")
    r.add_argument("--seed", type=float, default=0, help="sketch seed (integer >= 0)")
    r.add_argument("--tail", default="mean", help="coordinates beyond d: mean (mean-field, the paper's d = ∞) | none")
    r.add_argument("--engine", default="exact", help="exact | montecarlo (montecarlo also reports exact)")
    r.add_argument("--trials", type=float, default=1000, help="Monte Carlo trials")
    r.add_argument("--mc-seed", type=float, default=0, help="Monte Carlo data seed")
    return p


def risk_point(args) -> dict:
    from sketchlaw.errors import check_int
    from sketchlaw.engine.exact import ExactEngine
    from sketchlaw.engine.stability import critical_step_size
    from sketchlaw.engine.problem import build_problem
    from sketchlaw.engine.schedules import Schedule
    from sketchlaw.engine.sgd import monte_carlo
    from sketchlaw.engine.spectra import Prior, Spectrum

    if args.engine not in ("exact", "montecarlo"):
        raise ParameterError("engine", args.engine, "one of exact, montecarlo")
    spectrum = Spectrum(args.spectrum, args.a, check_int("d", args.d, minimum=1))
    schedule = Schedule(args.gamma, check_int("N", args.N, minimum=2), args.schedule, args.log_base)
    problem = build_problem(spectrum, check_int("M", args.M, minimum=1), args.sigma2,
                            check_int("seed", args.seed, minimum=0), Prior(args.b), tail=args.tail)
    out = {"spectrum": spectrum.kind, "a": spectrum.a, "b": args.b, "M": problem.M, "d": spectrum.d,
           "N": schedule.N, "N_eff": schedule.N_eff, "gamma": schedule.gamma, "schedule": schedule.kind,
           "seed": problem.seed, "tail": args.tail, "gamma_max": critical_step_size(problem.mu)}
    out.update(ExactEngine.from_problem(problem).run(schedule).as_dict())
    if args.engine == "montecarlo":
        mc = monte_carlo(problem, schedule, check_int("trials", args.trials, minimum=2),
                         check_int("mc-seed", args.mc_seed, minimum=0))
        out.update(mc.summary())
    return out


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = risk_point(args)
    except (ParameterError, DivergenceError) as err:
        print(f"sketchlaw: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
