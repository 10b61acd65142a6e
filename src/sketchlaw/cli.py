"""Command line: ``sketchlaw risk`` evaluates one grid point and prints JSON (through ``sketchlaw.api``).

    sketchlaw risk --spectrum power --a 2 --M 64 --d 4096 --N 100000 --sigma2 1 --gamma 0.1 --seed 0
    sketchlaw risk ... --schedule cosine --schedule-param final=0.1 --batch 4   # any schedule kind, mini-batches
    sketchlaw risk ... --engine montecarlo --trials 200      # adds the Monte Carlo mean and standard error
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from sketchlaw.errors import DivergenceError, ParameterError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sketchlaw", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("risk", help="expected risk (and optionally Monte Carlo) at one grid point, as JSON")
    r.add_argument("--spectrum", default="power", help="power | logpower")
    r.add_argument("--a", type=float, required=True, help="spectrum exponent a > 1")
    r.add_argument("--b", type=float, default=None, help="source-condition exponent b > 1 (default: isotropic prior)")
    r.add_argument("--M", type=float, required=True, help="sketch size (model parameters), 1 <= M <= d")
    r.add_argument("--d", type=float, default=None,
                   help="truncation dimension of the data (default: the workflow's max(1024, 8·M))")
    r.add_argument("--N", type=float, required=True, help="number of samples, N >= 2 (N // batch updates)")
    r.add_argument("--sigma2", type=float, default=1.0, help="label noise variance σ² >= 0")
    r.add_argument("--gamma", type=float, default=0.1, help="initial step size γ > 0")
    r.add_argument("--schedule", default="geometric", help="geometric | constant | polynomial | power | cosine | wsd")
    r.add_argument("--schedule-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the schedule kind (e.g. final=0.1 for cosine, decay=0.2 for wsd); repeatable")
    r.add_argument("--batch", type=float, default=1, help="mini-batch size B (samples per update)")
    r.add_argument("--log-base", default="e", help="base of the log in N_eff = N / log N: e | 2 | 10")
    r.add_argument("--seed", type=float, default=0, help="sketch seed (integer >= 0)")
    r.add_argument("--tail", default="mean", help="coordinates beyond d: mean (mean-field, the paper's d = ∞) | none")
    r.add_argument("--engine", default="exact", help="exact | montecarlo (montecarlo also reports exact)")
    r.add_argument("--trials", type=float, default=1000, help="Monte Carlo trials")
    r.add_argument("--mc-seed", type=float, default=0, help="Monte Carlo data seed")
    return p


def _schedule_params(pairs, log_base: str) -> dict:
    params = {"log_base": log_base}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ParameterError("schedule-param", pair, "KEY=VALUE")
        params[key] = int(value) if key == "n_phases" else float(value)
    return params


def risk_point(args) -> dict:
    """One grid point through the library's API (``sketchlaw.api.risk_curve``), as the JSON the command prints."""
    from sketchlaw import api
    from sketchlaw.errors import check_int

    if args.engine not in ("exact", "montecarlo"):
        raise ParameterError("engine", args.engine, "one of exact, montecarlo")
    params = _schedule_params(args.schedule_param, args.log_base)
    row = api.risk_curve(args.a, args.M, args.N, spectrum=args.spectrum, b=args.b, sigma2=args.sigma2,
                         gamma=args.gamma, schedule=args.schedule, schedule_params=params, batch=args.batch,
                         seeds=args.seed, d=args.d, tail=args.tail).iloc[0]
    out = {"spectrum": args.spectrum, "a": args.a, "b": args.b, "M": int(row["M"]), "d": int(row["d"]),
           "N": int(row["N"]), "N_eff": float(row["N_eff"]),
           "gamma": float(row["gamma"]), "schedule": args.schedule, "batch": int(row["B"]), "seed": int(row["seed"]),
           "tail": args.tail, "gamma_max": float(row["gamma_max"]),
           **{c: float(row[c]) for c in api.RESULT_COLUMNS}}
    if args.engine == "montecarlo":
        from sketchlaw.engine.sgd import monte_carlo

        if out["batch"] != 1:
            raise ParameterError("batch", out["batch"], "1 with --engine montecarlo")
        problem = replace(api.problem(args.a, out["M"], spectrum=args.spectrum, b=args.b, seed=out["seed"],
                                      d=args.d, tail=args.tail), sigma2=out["sigma2"])
        schedule = api.step_schedule(args.gamma, out["N"], args.schedule, args.a, **params)
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
