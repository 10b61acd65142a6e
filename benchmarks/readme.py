"""Render README.md's performance section from benchmarks/results.json (between the bench markers).

    .venv/bin/python benchmarks/readme.py          # rewrite the section in README.md
    .venv/bin/python benchmarks/readme.py --check  # exit 1 if README.md is not the rendering of results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def render(results: dict) -> str:
    m = results["machine"]
    load = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    status = ("a `--quick` run (small sizes), not the numbers to quote" if results.get("quick")
              else "a full run")
    head = [f"Measured by `benchmarks/bench_core.py` ({status}), {results['started']}, on {m['cpu']} "
            f"({m['cores']} cores; numpy {m['numpy']}, numba {m['numba']}); load average {load(results['load_average_start'])} "
            f"at the start, {load(results['load_average_end'])} at the end. Each line compares against a reference "
            "measured in the same run:", ""]
    return "\n".join(head + [f"- {line}" for line in results["lines"]])


def splice(readme: str, section: str, start: str = START, end: str = END) -> str:
    if start not in readme or end not in readme:
        raise SystemExit(f"README.md has no {start} … {end} markers")
    before, rest = readme.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{section}\n{end}{after}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.json")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    new = splice(text, render(json.loads(args.results.read_text())))
    if args.check:
        sys.exit(0 if new == text else 1)
    args.readme.write_text(new)


if __name__ == "__main__":
    main()
