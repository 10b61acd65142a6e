"""Serve notebooks/explore.ipynb as a local web app with Voilà (`make explore`), on 127.0.0.1 only.

    .venv/bin/python scripts/dev/explore.py [--port 8866]

Voilà is given the one notebook (no directory listing, so it serves nothing else), binds to the loopback address
and does not retry other ports, so the address printed is the one served; tracebacks stay in the terminal, not on
the page. tests/test_explore_browser.py starts the app through this script.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "explore.ipynb"
HOST = "127.0.0.1"


def command(port: int) -> list[str]:
    return [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--Voila.ip={HOST}", f"--port={port}",
            "--Voila.port_retries=0", "--show_tracebacks=False"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8866)
    args = ap.parse_args(argv)
    print(f"sketchlaw explorer: http://{HOST}:{args.port}/  (Ctrl-C stops it)", flush=True)
    cmd = command(args.port)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
