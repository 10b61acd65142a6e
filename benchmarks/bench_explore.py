"""Benchmark of the explorer (sketchlaw.present.explore): control change to redrawn figure, at M = 256 and 1024.

    .venv/bin/python benchmarks/bench_explore.py            # measure, write benchmarks/results-explore.json
    .venv/bin/python benchmarks/bench_explore.py --readme   # render README.md's explorer lines from that file

Each change is made as the widget makes it (a value set on the control) inside a running event loop, and timed until
the explorer has recomputed, drawn and put the PNG into its image widget: the debounce delay is included, the
browser's paint is not. Every change goes to a value not seen before, so each part it touches is really recomputed
(``Computer`` keeps earlier settings): ROUNDS rounds of the same controls, each round with new values, and each
control's best and median over the rounds (the best is the least disturbed by other load). A change of a draws new
sketches, O(M²d) each; it is reported on its own. Run it on an idle machine: the load average is recorded at the start
and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_core import machine  # noqa: E402
from readme import splice  # noqa: E402

RESULTS = HERE / "results-explore.json"
START, END = "<!-- bench-explore:start -->", "<!-- bench-explore:end -->"
GOAL_S = 0.5
ROUNDS = 3


def cached_changes(k: int) -> list[tuple[str, object, bool]]:
    """Round k's (control, value, timed): new σ², γ and C first, so the schedule, N range and batch changes after
    them are new settings too; the last two put schedule and batch back for the next round (not timed)."""
    return [("sigma2", 0.5 + 0.01 * k, True), ("gamma", 0.15 + 0.01 * k, True), ("C", 4e6 * (1 + 0.1 * k), True),
            ("schedule", "constant", True), ("log10_N", (2.0 + 0.5 * k, 6.5), True), ("batch", 2, True),
            ("batch", 1, False), ("schedule", "geometric", False)]


SKETCH_CHANGES = [("a", 1.8)]


async def _change(explorer, control: str, value) -> float:
    before = explorer.updates
    t0 = time.perf_counter()
    explorer.controls[control].value = value
    while explorer.updates == before:
        await asyncio.sleep(0.002)
        if explorer.message.value:
            raise RuntimeError(f"{control}={value!r} refused: {explorer.message.value}")
    return time.perf_counter() - t0


async def _measure(M: int) -> dict:
    from sketchlaw.present.explore import DEBOUNCE_S, Explorer, Setting

    t0 = time.perf_counter()
    explorer = Explorer(Setting(M=M))
    explorer.update()
    first = time.perf_counter() - t0
    cached = {}
    for k in range(ROUNDS):
        for c, v, timed in cached_changes(k):
            seconds = await _change(explorer, c, v)
            if timed:
                cached.setdefault(c, []).append(seconds)
    sketches = [(c, v, await _change(explorer, c, v)) for c, v in SKETCH_CHANGES]
    return {"M": M, "n_seeds": explorer.result.setting.n_seeds, "N_points": len(explorer.result.setting.N_grid),
            "debounce_s": DEBOUNCE_S, "first_s": first, "rounds": ROUNDS,
            "cached": [{"control": c, "seconds": s, "best": min(s), "median": statistics.median(s)}
                       for c, s in cached.items()],
            "new_sketches": [{"control": c, "value": v, "seconds": s} for c, v, s in sketches]}


def line(r: dict) -> str:
    times = ", ".join(f"{x['control']} {x['best']:.2f} s ({x['median']:.2f})" for x in r["cached"])
    worst = max(x["best"] for x in r["cached"])
    new = ", ".join(f"{x['control']} {x['seconds']:.1f} s" for x in r["new_sketches"])
    return (f"explorer at M={r['M']} ({r['n_seeds']} sketch seeds, {r['N_points']} N, debounce {r['debounce_s']:.2f} s "
            f"included): control change to redrawn figure, best (median) of {r['rounds']} new values: {times}; "
            f"slowest best {worst:.2f} s (goal <= {GOAL_S} s); a change that draws new sketches: {new}; "
            f"first drawing {r['first_s']:.1f} s")


def render(results: dict) -> str:
    m = results["machine"]
    load = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    head = (f"Measured by `benchmarks/bench_explore.py`, {results['started']}, on {m['cpu']} ({m['cores']} cores); "
            f"load average {load(results['load_average_start'])} at the start, {load(results['load_average_end'])} at "
            f"the end (`benchmarks/results-explore.json`):")
    return "\n".join([head, ""] + [f"- {x}" for x in results["lines"]])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true", help="render README.md's explorer lines from the results file")
    ap.add_argument("--sizes", default="256,1024", help="model sizes M (other sizes write benchmarks/out/)")
    args = ap.parse_args(argv)
    readme = HERE.parent / "README.md"
    if args.readme:
        text = readme.read_text()
        readme.write_text(splice(text, render(json.loads(RESULTS.read_text())), START, END))
        return
    from sketchlaw.engine.exact import warm_up

    warm_up()  # the compiled kernels loaded before any timing
    out = {"machine": machine(), "load_average_start": os.getloadavg(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": [], "lines": []}
    sizes = [int(m) for m in args.sizes.split(",")]
    for M in sizes:
        r = asyncio.run(_measure(M))
        out["runs"].append(r)
        out["lines"].append(line(r))
        print(out["lines"][-1], flush=True)
    out["load_average_end"] = os.getloadavg()
    path = RESULTS if sizes == [256, 1024] else HERE / "out" / "results-explore-sizes.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}; load average at the end {out['load_average_end']}")


if __name__ == "__main__":
    main()
