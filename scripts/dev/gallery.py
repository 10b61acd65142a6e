"""Render the README's figure table from the notebooks' CAPTION cells (the captions' single source).

    .venv/bin/python scripts/dev/gallery.py           # rewrite the block between the gallery markers in README.md
    .venv/bin/python scripts/dev/gallery.py --check   # exit 1 if README.md is not the rendering (tests do this)

Each notebook defines its caption in one code cell, ``CAPTION = \"\"\"title\\ntext\"\"\"``; its first line is the figure's
title (``sketchlaw.present.plotting.split_caption``). The results page reads the same caption from the ``<name>.json``
sidecar that ``save_figure`` writes.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import nbformat

from sketchlaw.present.plotting import split_caption
from sketchlaw.workflow.registry import figure_notebook_paths

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- gallery:start -->", "<!-- gallery:end -->"


def notebook_caption(path: Path) -> str:
    """The string assigned to CAPTION in the notebook's code cells (read, never executed)."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CAPTION" for t in node.targets):
                if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                    raise ValueError(f"{path.name}: CAPTION must be a string literal")
                found.append(node.value.value)
    if len(found) != 1:
        raise ValueError(f"{path.name}: expected one CAPTION assignment, found {len(found)}")
    return found[0]


def figure_order(name: str) -> tuple:
    """The paper's figures first (fig1, fig2, ...), then the others alphabetically."""
    return (not name.startswith("fig"), name)


def render(notebook_dir: Path = REPO / "notebooks") -> str:
    """The Markdown table: figure name, title (CAPTION's first line), link to the notebook."""
    lines = [START, "| figure | title | notebook |", "|---|---|---|"]
    for path in sorted(figure_notebook_paths(notebook_dir), key=lambda p: figure_order(p.stem)):
        title, _ = split_caption(notebook_caption(path))
        rel = path.relative_to(notebook_dir.parent).as_posix()
        cell = title.replace("|", r"\|")
        lines.append(f"| `{path.stem}` | {cell} | [{rel}]({rel}) |")
    lines.append(END)
    return "\n".join(lines)


def replace_block(readme: str, block: str) -> str:
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {START} ... {END} block")
    return readme[:start] + block + readme[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the rendering")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    new = replace_block(text, render())
    if args.check:
        if new != text:
            print(f"{args.readme} is out of date: run scripts/dev/gallery.py", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
