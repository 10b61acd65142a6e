"""Snakemake script: results/index.html linking every figure, table and executed notebook, with provenance."""

import html
import json
import os
import sys
from pathlib import Path

from sketchlaw.tables import write_text

sys.stderr = sys.stdout = open(snakemake.log[0], "w")  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
prov = json.load(open(snakemake.input.provenance))  # noqa: F821


def rel(p):
    return html.escape(os.path.relpath(p, out.parent))


def md_table(path):
    """The exponent table's Markdown rendered as a plain HTML table (no extra dependency)."""
    rows = [line.strip().strip("|").split("|") for line in Path(path).read_text().splitlines()
            if line.startswith("|") and not set(line) <= set("|-: ")]
    if not rows:
        return "<p>(empty)</p>"
    head, *body = rows
    th = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    tr = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>"


figures = "".join(
    f'<figure><a href="{rel(png)}"><img src="{rel(png)}" alt="{html.escape(Path(png).stem)}"></a>'
    f'<figcaption>{html.escape(Path(png).stem)} — <a href="{rel(nb)}">notebook</a> · '
    f'<a href="{rel(Path(png).with_suffix(".pdf"))}">PDF</a></figcaption></figure>'
    for png, nb in zip(snakemake.input.figures, snakemake.input.notebooks))  # noqa: F821
tables = "".join(f'<li><a href="{rel(t)}">{html.escape(Path(t).name)}</a> '
                 f'(<a href="{rel(Path(t).with_suffix(".parquet"))}">parquet</a>)</li>'
                 if not t.endswith("exponents.csv") else f'<li><a href="{rel(t)}">{html.escape(Path(t).name)}</a></li>'
                 for t in snakemake.input.tables)  # noqa: F821
versions = ", ".join(f"{k} {v}" for k, v in sorted(prov["versions"].items()))
page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sketchlaw results</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}}
figure{{display:inline-block;width:48%;margin:0.5%;vertical-align:top}} img{{width:100%}}
table{{border-collapse:collapse;font-size:90%}} td,th{{border:1px solid #ccc;padding:2px 6px}}
code{{background:#f4f4f4}}</style></head><body>
<h1>Scaling Laws in Linear Regression — replication results</h1>
<p>Lin, Wu, Kakade, Bartlett, Lee (NeurIPS 2024). Built by the <code>sketchlaw</code> Snakemake workflow.</p>
<h2>Provenance</h2>
<ul><li>git commit <code>{html.escape(prov['git_commit'])}</code>{' (dirty working tree)' if prov['git_dirty'] else ''}</li>
<li>config hash <code>{prov['config_hash']}</code>, lock file hash <code>{prov['lock_hash']}</code></li>
<li>{html.escape(versions)}</li>
<li>seeds: every table has <code>sketch_seed</code> (and <code>mc_seed</code> for Monte Carlo) per row</li></ul>
<h2>Fitted exponents vs theory</h2>{md_table(snakemake.input.exponents_md)}
<h2>Figures</h2>{figures}
<h2>Tables</h2><ul>{tables}</ul>
</body></html>
"""
write_text(page, out)
print(f"wrote {out}")
