"""Condense Snakemake's terminal output for `make replicate` / `make ci-artifacts` (stdin → stdout, line by line).

Snakemake prints a few lines for every job (its rule block, "Select jobs to execute...", a timestamp, "Finished
jobid ...", "n of N steps done"): thousands of lines for a replication. Its options can silence the rule blocks, but
only together with the error blocks (both are `--quiet rules`). This filter keeps the header, every error block
(with the failed job's log, `show-failed-logs`), warnings and the closing lines, and prints progress every 5 % of
the steps. The full output stays in .snakemake/log/ (Snakemake's own log file) and each job's in results/logs/.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator

PROGRESS = re.compile(r"^(\d+) of (\d+) steps \(.*\) done$")
TIMESTAMP = re.compile(r"^\[\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}\]$")
JOB_BLOCK = re.compile(r"^(local)?(rule|checkpoint) \S+:$")  # one job's description; its lines are indented
CHATTER = re.compile(r"^(Select jobs to execute\.\.\.|Execute \d+ jobs\.\.\.|Finished job(id:)? .*|"
                     r"Removing temporary output .*)$")
STEPS = 20  # progress lines per run


def condense(lines: Iterable[str]) -> Iterator[str]:
    bucket, in_job_block, blank = -1, False, False  # blank: a blank line is pending (kept before text, not progress)
    for raw in lines:
        line = raw.rstrip("\n")
        if in_job_block:
            if line.startswith((" ", "\t")):
                continue
            in_job_block = False
        if JOB_BLOCK.match(line):
            in_job_block = True
            continue
        if TIMESTAMP.match(line) or CHATTER.match(line):
            continue
        if not line.strip():
            blank = True
            continue
        m = PROGRESS.match(line)
        if m:
            blank = False
            done, total = int(m.group(1)), int(m.group(2))
            if done * STEPS // total > bucket or done == total:
                bucket = done * STEPS // total
                yield line
            continue
        if blank:
            yield ""
            blank = False
        yield line


def main() -> None:
    for line in condense(sys.stdin):
        print(line, flush=True)


if __name__ == "__main__":
    main()
