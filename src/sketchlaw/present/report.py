"""The results page (results/index.html): exponent table first, then every figure with its caption, then provenance.

Pure HTML from the workflow's outputs: the exponent and forms tables are read with pandas (never from the Markdown),
captions from each figure's sidecar ``<figures_dir>/<name>.json`` ({"name", "title", "caption"}, written by its
notebook), provenance from provenance.json. Every link is relative to the page, so the results directory can be
moved or archived whole. The vocabulary of the verdicts and every column are defined in docs/METHODS.md.
"""

from __future__ import annotations

import html
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# The exponent table's columns as the reader sees them: (heading, source columns, how they are shown).
# Columns of the table before the estimator vocabulary existed are mapped in ``_normalize``.
EXPONENT_COLUMNS = [
    ("experiment", ["experiment"], "text"),
    ("a", ["a"], "number"),
    ("b", ["b"], "number"),
    ("variable", ["variable"], "text"),
    ("curve", ["schedule", "step_rule", "samples", "sketch", "coordinates"], "curve"),
    ("estimator", ["estimator"], "text"),
    ("fitted", ["fitted"], "number"),
    ("95 % interval", ["ci_low", "ci_high"], "interval"),
    ("systematic range", ["sys_low", "sys_high"], "interval"),
    ("theory", ["theory"], "number"),
    ("finite-size theory", ["theory_finite"], "number"),
    ("extrapolated [low, high]", ["extrapolated", "extrapolated_low", "extrapolated_high"], "extrapolated"),
    ("verdict", ["verdict", "reason"], "verdict"),
]

VERDICT_LEGEND = (
    "A row is <b>consistent</b> when the theory's exponent lies inside the total interval (the 95 % statistical "
    "interval joined with the systematic range over admissible windows), and <b>pre-asymptotic</b> when it does not "
    "but the estimate agrees with the finite-size theory on the same window and the extrapolation to infinite size "
    "holds the theory's value. Any other fitted row <b>disagrees</b>; <b>not fitted</b> names why a slope could not "
    "be measured (too few points, an empty window) and <b>no theory</b> marks exponents the theorems do not give."
)

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;max-width:1400px;margin:0 auto;
 padding:1em 1.5em;color:#222;overflow-wrap:anywhere}
h1{font-size:1.6em;margin:.2em 0}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
nav{background:#f6f8fa;border:1px solid #e1e4e8;padding:.4em 1em;border-radius:4px}
nav ol{margin:.3em 0}
nav ol ol{padding-left:1.2em;font-size:92%}
nav ol ol li{display:inline}
nav ol ol li+li:before{content:" · "}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:85%;font-variant-numeric:tabular-nums;overflow-wrap:normal}
th,td{border:1px solid #d0d7de;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0;white-space:normal;vertical-align:bottom}
td.text{text-align:left;white-space:normal;min-width:6em;max-width:22em}
td.verdict{min-width:12em}
tr.group td{background:#eef2f6;text-align:left;font-weight:600}
.legend{background:#fffbe6;border-left:4px solid #e3b341;padding:.5em 1em;margin:.6em 0;max-width:75em}
.v-consistent{color:#116329}.v-pre-asymptotic{color:#9a6700}.v-disagrees{color:#b42318;font-weight:700}
.v-not-fitted,.v-no-theory{color:#6e7781}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,560px),1fr));gap:1.2em}
figure.wide{grid-column:1/-1}
figure{margin:0;align-self:start;border:1px solid #e1e4e8;border-radius:4px;padding:.5em;min-width:0}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:90%;margin-top:.4em}
figcaption .title{font-weight:600}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;max-width:100%;font-size:85%}
code{background:#f6f8fa;padding:0 .2em}
"""


@dataclass
class FigureEntry:
    """One figure: its image, PDF, executed notebook and the caption its notebook wrote."""

    name: str
    png: Path
    pdf: Path
    notebook: Path
    title: str
    caption: str
    size: tuple[int, int] | None = None  # pixels (width, height), from the PNG header

    @property
    def wide(self) -> bool:
        """Rows of panels (width ≥ 1.8 × height) and grids of many panels (≥ 2400 px wide at the notebooks'
        resolution) get the page's whole width, so that their panels stay legible."""
        return self.size is not None and (self.size[0] >= WIDE_ASPECT * self.size[1] or self.size[0] >= WIDE_PIXELS)


WIDE_ASPECT, WIDE_PIXELS = 1.8, 2400


def png_size(path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None if the file is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def read_figure(png, notebook) -> FigureEntry:
    """The figure at ``png`` with the caption from its sidecar JSON (the name stands in when there is none)."""
    png = Path(png)
    sidecar = png.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return FigureEntry(name=png.stem, png=png, pdf=png.with_suffix(".pdf"), notebook=Path(notebook),
                       title=str(meta.get("title") or png.stem), caption=str(meta.get("caption") or ""),
                       size=png_size(png))


def read_forms(path) -> pd.DataFrame | None:
    """The comparison of functional forms (exponent_forms.csv), or None where it is absent or empty."""
    path = Path(path)
    if not path.exists():
        return None
    forms = pd.read_csv(path)
    return forms if len(forms) else None


def fmt(value) -> str:
    """A number to 4 significant digits; '—' for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def _interval(lo, hi) -> str:
    if fmt(lo) == "—" and fmt(hi) == "—":
        return "—"
    return f"[{fmt(lo)}, {fmt(hi)}]"


def _normalize(exponents: pd.DataFrame) -> pd.DataFrame:
    """Accept the table before the estimator vocabulary (a ``method`` column, no extrapolation) as well."""
    df = exponents.copy()
    if "estimator" not in df:
        df["estimator"] = df["method"] if "method" in df else ""
    for _, cols, _ in EXPONENT_COLUMNS:
        for c in cols:
            if c not in df:
                df[c] = "" if c in ("schedule", "step_rule", "sketch", "coordinates", "reason") else float("nan")
    return df


def _verdict_class(verdict: str) -> str:
    word = str(verdict).split(":")[0].strip().replace(" ", "-")
    return f"v-{word}" if word in ("consistent", "pre-asymptotic", "disagrees", "not-fitted", "no-theory") else ""


def _cell(kind: str, row, cols: list[str]) -> str:
    if kind == "interval":
        return f"<td>{_interval(row[cols[0]], row[cols[1]])}</td>"
    if kind == "extrapolated":
        value = fmt(row[cols[0]])
        span = _interval(row[cols[1]], row[cols[2]])
        return f"<td>{value if span == '—' else f'{value} {span}'}</td>"
    if kind == "verdict":
        text = str(row[cols[0]]) if fmt(row[cols[0]]) != "—" else "—"
        reason = str(row[cols[1]]) if text == "not fitted" and fmt(row[cols[1]]) != "—" else ""
        shown = html.escape(text) + (f'<br><span class="reason">{html.escape(reason)}</span>' if reason else "")
        return f'<td class="text verdict {_verdict_class(text)}">{shown}</td>'
    if kind == "curve":  # the typed curve columns a row has (schedule, step rule, dataset size, sketch family,
        # coordinate law), for reading only
        parts = [str(row[cols[0]]), str(row[cols[1]]),
                 f"N = {fmt(row[cols[2]])}" if fmt(row[cols[2]]) != "—" else "", *(str(row[c]) for c in cols[3:])]
        return f'<td class="text">{html.escape(", ".join(x for x in parts if x and x != "nan" and x != "—"))}</td>'
    cls = ' class="text"' if kind == "text" else ""
    return f"<td{cls}>{html.escape(fmt(row[cols[0]]))}</td>"


def _exponent_rows(df: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in EXPONENT_COLUMNS)
    body = []
    for experiment, block in df.groupby("experiment", sort=False):
        body.append(f'<tr class="group"><td colspan="{len(EXPONENT_COLUMNS)}">{html.escape(str(experiment))}</td></tr>')
        for _, row in block.iterrows():
            body.append("<tr>" + "".join(_cell(kind, row, cols) for _, cols, kind in EXPONENT_COLUMNS) + "</tr>")
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def exponent_table(exponents: pd.DataFrame) -> str:
    """The exponent table in the reader's columns, one block per experiment.

    The primary estimates (one per theorem exponent) are shown; the secondary estimators follow in a collapsed
    block, so that the figures start right after the table. A table without primary rows is shown whole.
    """
    if exponents.empty:
        return "<p>No exponents were fitted in this run.</p>"
    df = _normalize(exponents)
    primary = df["estimator"] == "primary"
    if not primary.any():
        return _exponent_rows(df, "exponent-table")
    secondary = df[~primary]
    rest = (f'<details><summary>Secondary estimates ({len(secondary)} rows: the window slope the paper\'s figure '
            f'shows, joint fits, Monte Carlo)</summary>{_exponent_rows(secondary, "exponent-table-secondary")}'
            f'</details>') if len(secondary) else ""
    return _exponent_rows(df[primary], "exponent-table") + rest


def plain_table(df: pd.DataFrame | None, empty: str) -> str:
    """Any table, every column, numbers to 4 significant digits."""
    if df is None or df.empty:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, row in df.iterrows():
        cells = "".join(
            f'<td class="text">{html.escape(fmt(v))}</td>' if isinstance(v, str) else f"<td>{html.escape(fmt(v))}</td>"
            for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def read_diverged(tables_dir) -> pd.DataFrame | None:
    """``diverged.csv`` (the fit step's list of diverged points), or None if the run wrote none."""
    path = Path(tables_dir) / "diverged.csv"
    return pd.read_csv(path) if path.exists() else None


def diverged_section(diverged: pd.DataFrame | None) -> str:
    """The points whose step size was at or above their own sketch's stability bound, each with its reason."""
    if diverged is None or diverged.empty:
        return "<p>None: every grid point's step size was below its sketch's stability bound.</p>"
    return (f"<p>{len(diverged)} grid point{'s' if len(diverged) != 1 else ''} had a step size γ at or above the "
            "exact stability bound of its own sketch: SGD's expected risk diverges there. Each is a row of its "
            "experiment's table with <code>diverged</code> true and empty risks, left out of every fit and figure "
            "(a figure notes how many). A sketch's bound fluctuates below the spectrum's, most at small M "
            "(<code>docs/METHODS.md</code> §5); a smaller γ avoids them.</p>"
            + plain_table(diverged, ""))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def build_page(out, exponents: pd.DataFrame, forms: pd.DataFrame | None, figures: list[FigureEntry], tables_dir,
               provenance: dict, provenance_path, logs_dir, diverged: pd.DataFrame | None = None) -> str:
    """The whole page as a string; links are relative to ``out``'s directory. ``diverged``: the diverged points
    (default: ``diverged.csv`` in ``tables_dir``, if there)."""
    base = Path(out).parent
    if diverged is None:
        diverged = read_diverged(tables_dir)

    def href(path) -> str:
        return html.escape(os.path.relpath(path, base))

    contents = [("exponents", "Fitted exponents against theory"), ("diverged", "Diverged points"),
                ("forms", "Functional forms compared"),
                ("figures", "Figures"), ("provenance", "Configuration and provenance"),
                ("tables", "Tables, provenance file and logs")]
    nav = "".join(f'<li><a href="#{i}">{html.escape(t)}</a>' + (
        "<ol>" + "".join(f'<li><a href="#fig-{_slug(f.name)}">{html.escape(f.title)}</a></li>' for f in figures)
        + "</ol>" if i == "figures" and figures else "") + "</li>" for i, t in contents)

    def figure(f: FigureEntry) -> str:
        wide = ' class="wide"' if f.wide else ""
        size = f' width="{f.size[0]}" height="{f.size[1]}"' if f.size else ""
        caption = html.escape(f.caption) if f.caption else ""
        return (f'<figure id="fig-{_slug(f.name)}"{wide}><a href="{href(f.png)}"><img src="{href(f.png)}" '
                f'alt="{html.escape(f.title)}"{size}></a>'
                f'<figcaption><span class="title">{html.escape(f.title)}.</span> {caption}'
                f'<br><a href="{href(f.notebook)}">notebook</a> · <a href="{href(f.pdf)}">PDF</a> · '
                f'<code>{html.escape(f.name)}</code></figcaption></figure>')

    figure_html = "".join(figure(f) for f in figures) or "<p>No figures in this run.</p>"

    tables_dir = Path(tables_dir)
    stems = sorted({p.stem for p in tables_dir.iterdir() if p.suffix in (".csv", ".parquet", ".md")})
    table_items = "".join(
        f"<li><code>{html.escape(stem)}</code>: " + " · ".join(
            f'<a href="{href(tables_dir / (stem + ext))}">{ext[1:]}</a>'
            for ext in (".csv", ".parquet", ".md") if (tables_dir / (stem + ext)).exists()) + "</li>"
        for stem in stems)

    config_file = provenance.get("config_file")
    config = provenance.get("config")
    config_text = config if isinstance(config, str) else (
        json.dumps(config, indent=2, sort_keys=True) if config is not None else None)
    versions = ", ".join(f"{k} {v}" for k, v in sorted(provenance.get("versions", {}).items()))
    dirty = " (working tree had uncommitted changes)" if provenance.get("git_dirty") else ""
    prov_items = [
        f"<li>configuration file: <code>{html.escape(str(config_file or 'not recorded'))}</code>, "
        f"hash <code>{html.escape(str(provenance.get('config_hash', 'not recorded')))}</code></li>",
        f"<li>git commit <code>{html.escape(str(provenance.get('git_commit', 'unknown')))}</code>"
        f"{html.escape(dirty)}</li>",
        f"<li>lock file hash <code>{html.escape(str(provenance.get('lock_hash', 'not recorded')))}</code></li>",
        f"<li>packages: {html.escape(versions) or 'not recorded'}</li>",
        "<li>seeds: every row of the experiment tables carries its <code>sketch_seed</code> "
        "(and <code>mc_seed</code> for Monte Carlo)</li>"]
    config_block = (f"<details><summary>The configuration that was run</summary><pre>{html.escape(config_text)}"
                    f"</pre></details>") if config_text else "<p>The configuration's content was not recorded.</p>"
    title = "Scaling laws in linear regression: replication results"
    config_name = html.escape(str(config_file or "not recorded"))
    commit = html.escape(str(provenance.get("git_commit", "unknown"))[:12])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{CSS}</style></head><body>
<h1>{title}</h1>
<p>Lin, Wu, Kakade, Bartlett, Lee, "Scaling Laws in Linear Regression: Compute, Parameters, and Data" (NeurIPS 2024),
recomputed by the <code>sketchlaw</code> workflow. Configuration <code>{config_name}</code>,
commit <code>{commit}</code>. Methods, estimators and defaults: <code>docs/METHODS.md</code> in the repository.</p>
<nav><b>Contents</b><ol>{nav}</ol></nav>
<h2 id="exponents">Fitted exponents against theory</h2>
<p class="legend">{VERDICT_LEGEND}</p>
<p>Slopes are signed; numbers to 4 significant digits (the CSV keeps full precision). Estimators, windows and
intervals: <code>docs/METHODS.md</code> §13–§15.</p>
{exponent_table(exponents)}
<h2 id="diverged">Diverged points</h2>
{diverged_section(diverged)}
<h2 id="forms">Functional forms compared</h2>
<p>Joint fits of the whole risk surface, each scored by how well it extrapolates to the held-out large-(M, N)
corner; <code>best</code> marks the form reported as <code>joint_form</code>.</p>
{plain_table(forms, "No comparison of functional forms in this run.")}
<h2 id="figures">Figures</h2>
<div class="figures">{figure_html}</div>
<h2 id="provenance">Configuration and provenance</h2>
<ul>{"".join(prov_items)}</ul>
{config_block}
<h2 id="tables">Tables, provenance file and logs</h2>
<ul>{table_items}
<li><a href="{href(provenance_path)}">provenance.json</a></li>
<li><a href="{href(logs_dir)}/">logs</a> (one file per job)</li></ul>
</body></html>
"""
