"""Shared helpers for the figure notebooks (presentation layer only; nothing here simulates or fits).

Each notebook in ``notebooks/`` holds its own figure: the rows it selects, the quantities it plots, the plotting
calls and its caption (a cell ``CAPTION = \"\"\"...\"\"\"``).  What they share lives here:

* loading: :func:`load_table` / :func:`load_exponents` (required columns checked, errors name the table and column),
  :func:`load_provenance`, :func:`resolve_paths`;
* style: :func:`set_style`, :func:`log_axes`, :func:`level_colors`, :func:`set_log_ylim`, :func:`free_band`,
  :func:`plain_log_ticks`,
  number formatting (:func:`fmt_num`, :func:`fmt_pow10`, ...);
* rows and levels: :func:`match`, :func:`pick_levels`, :func:`complete_levels`, :func:`exponent_row`,
  :func:`aggregate_exact` (mean over sketch seeds), :func:`aggregate_mc` (Monte Carlo pooled over seeds);
* fits, read from the typed columns of ``exponents.csv`` only: :func:`fit_line` / :func:`draw_fit_line` (the line
  log(y/factor) = intercept + fitted·log X on [x_lo, x_hi]) and :func:`slope_text` / :func:`annotate_fit`
  (``k = −0.498 [−0.503, −0.492] (theory −0.5) · consistent``); :func:`note` says on a panel what is missing;
* layout: :func:`layout_problems` lists what keeps a figure from reading cleanly at its saved size (text outside the
  figure or its axes, on another panel, on other text or on a curve; panels of one row of unequal width);
* saving: :func:`save_figure` writes ``NAME.png`` and ``NAME.pdf`` byte-deterministically with the provenance
  embedded, the sidecar ``NAME.json`` ({"name", "title", "caption"}) the results page reads, and the layout report
  ``NAME.layout.json``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator
from matplotlib.transforms import Bbox

from sketchlaw.analysis.columns import CURVE
from sketchlaw.atomic import atomic_write
from sketchlaw.theory import frontier_coordinates
from sketchlaw.workflow.tables import split_diverged

DPI = 200  #: resolution of every PNG written by :func:`save_figure`
MINUS = "\u2212"
PROVENANCE_REQUIRED = ("git_commit", "git_dirty", "config_hash")
_STAMP_GID = "sketchlaw-provenance-stamp"

CURVES = tuple(CURVE)  # the curve columns of the analysis' rows (``sketchlaw.analysis.columns``)
#: exponents.csv columns the figures read (typed: no prose column is parsed).
EXPONENT_COLUMNS = ["experiment", "a", "b", "variable", "abscissa", "scale", *CURVES, "estimator", "quantity",
                    "fixed_variable", "fixed_value", "x_lo", "x_hi", "n_points", "n_seeds", "fitted", "intercept",
                    "ci_low", "ci_high", "theory", "verdict", "reason"]
_EXPONENT_TEXT = ["experiment", "variable", "abscissa", "scale", *(c for c in CURVES if isinstance(CURVE[c], str)),
                  "estimator", "quantity", "fixed_variable", "verdict", "reason"]


# --------------------------------------------------------------------------------------------------------------
# errors, paths and loading
# --------------------------------------------------------------------------------------------------------------


class TableError(RuntimeError):
    """Base class: an input table is absent or does not have the expected shape."""


class MissingTableError(TableError, FileNotFoundError):
    """A table file (``NAME.parquet`` or ``NAME.csv``) is absent from ``tables_dir``."""


class MissingColumnError(TableError, ValueError):
    """A table lacks columns a figure needs."""


class MissingDataError(TableError, ValueError):
    """A table has the columns but no rows at all for a figure."""


@dataclass(frozen=True)
class Paths:
    tables_dir: Path
    figures_dir: Path
    provenance_path: Path


def resolve_paths(tables_dir: str | os.PathLike, figures_dir: str | os.PathLike,
                  provenance_path: str | os.PathLike) -> Paths:
    """The three notebook parameters as absolute paths.

    Relative paths are taken relative to the working directory (the repository root when the workflow or a user runs
    papermill from there); only when the notebook is opened interactively from ``notebooks/`` (and ``tables_dir``
    does not exist there) relative to the parent instead.  All three share one base so they never point into
    different trees.
    """
    cwd = Path.cwd()
    base = cwd
    t = Path(tables_dir)
    if not t.is_absolute() and not (cwd / t).exists() and cwd.name == "notebooks" and (cwd.parent / t).exists():
        base = cwd.parent

    def res(p: str | os.PathLike) -> Path:
        p = Path(p)
        return p if p.is_absolute() else base / p

    return Paths(res(tables_dir), res(figures_dir), res(provenance_path))


def require_columns(df: pd.DataFrame, columns: Iterable[str], table: str | None = None) -> None:
    """Raise :class:`MissingColumnError` naming the table and every missing column."""
    table = table or df.attrs.get("table", "table")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(f"{table} is missing column(s) {missing} needed by this figure "
                                 f"(present: {sorted(map(str, df.columns))})")


def load_table(tables_dir: str | os.PathLike, name: str, required: Iterable[str] | None = None) -> pd.DataFrame:
    """Read ``tables_dir/NAME.parquet`` (or ``NAME`` itself when it ends in ``.csv`` / ``.parquet``).

    Raises :class:`MissingTableError` naming the file if absent, :class:`MissingColumnError` if a column in
    ``required`` is absent.  The file name is kept in ``df.attrs["table"]`` for later messages.
    """
    fname = name if name.endswith((".parquet", ".csv")) else f"{name}.parquet"
    path = Path(tables_dir) / fname
    if not path.is_file():
        raise MissingTableError(f"table {fname!r} not found at {path.resolve()} - run the workflow first "
                                f"(or pass '-p tables_dir DIR' to papermill; tables_dir={str(tables_dir)!r})")
    df = pd.read_csv(path) if fname.endswith(".csv") else pd.read_parquet(path)
    df, left_out = split_diverged(df)  # the analysis's own rule: figures show the points the fits used
    df.attrs["table"] = fname
    df.attrs["diverged"] = len(left_out)  # points left out: γ at or above their sketch's stability bound
    if required is not None:
        require_columns(df, required, fname)
    return df


def diverged_note(*tables: pd.DataFrame) -> str:
    """A short note for a figure drawn from tables read with ``load_table``: how many points diverged and are not
    shown (empty when none did)."""
    n = sum(int(t.attrs.get("diverged", 0)) for t in tables)
    if not n:
        return ""
    return (f"{n} point{'s' if n != 1 else ''} not shown: step size at or above its sketch's stability bound "
            f"(diverged; results page, tables/diverged.csv)")


def note_diverged(fig, *tables: pd.DataFrame) -> str:
    """Write ``diverged_note`` at the bottom left of ``fig`` (nothing if no point diverged); returns the note."""
    note = diverged_note(*tables)
    if note:
        fig.text(0.005, 0.005, note, fontsize="x-small", color="0.35", ha="left", va="bottom")
    return note


def load_exponents(tables_dir: str | os.PathLike, experiment: str) -> pd.DataFrame:
    """One experiment's exponent rows (its fit: ``fits/<experiment>_exponents.csv``), with the typed columns the figures
    use checked and the text columns made plain strings."""
    df = load_table(tables_dir, f"fits/{experiment}_exponents.csv", required=EXPONENT_COLUMNS)
    for c in _EXPONENT_TEXT:
        df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    return df


def load_diagnostics(tables_dir: str | os.PathLike, experiment: str) -> pd.DataFrame:
    """One experiment's fit diagnostics: the selections the analysis made (local slopes, regime and pooled points,
    critical batch sizes, finite-size curves), as rows (kind, fixed, x, value) per variable and curve."""
    return load_table(tables_dir, f"fits/{experiment}_diagnostics.parquet",
                      required=["experiment", "a", "b", "variable", "kind", "fixed", "x", "value"])


def load_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """Read the workflow's provenance JSON (keys git_commit, git_dirty, config_hash, lock_hash, versions)."""
    path = Path(path)
    if not path.is_file():
        raise MissingTableError(f"provenance file not found at {path.resolve()} - the workflow writes it "
                                f"(or pass '-p provenance_path FILE' to papermill)")
    prov = json.loads(path.read_text())
    _check_provenance(prov, str(path))
    return prov


def _check_provenance(prov: Any, where: str) -> None:
    if not isinstance(prov, Mapping):
        raise TableError(f"provenance {where} must be a JSON object, got {type(prov).__name__}")
    missing = [k for k in PROVENANCE_REQUIRED if k not in prov]
    if missing:
        raise MissingColumnError(f"provenance {where} is missing key(s) {missing}")


# --------------------------------------------------------------------------------------------------------------
# style and formatting
# --------------------------------------------------------------------------------------------------------------


SEABORN_THEME = {"context": "paper", "style": "ticks", "palette": "colorblind", "font": "DejaVu Sans", "font_scale": 1.0}
THEME_FILE = Path(__file__).with_name("seaborn_theme.json")


def seaborn_theme() -> dict:
    """What seaborn's ``set_theme(**SEABORN_THEME)`` changes, JSON-ready: ``rcParams`` (those that differ from
    matplotlib's defaults, the colour cycle as its list of colours) and ``color_codes`` (the one-letter colours "b" ...
    "k", which seaborn remaps: "k" is a dark grey). ``make style`` writes it to THEME_FILE and ``set_style`` applies
    that file, so a figure's kernel does not import seaborn, and scipy.stats with it (1.5 s of every notebook job's
    start); tests/test_plotting.py checks that the file is what the locked seaborn sets."""
    import seaborn as sns

    codes = mpl.colors.get_named_colors_mapping()
    saved = {c: codes[c] for c in "bgrcmyk"}
    with mpl.rc_context():
        mpl.rcdefaults()
        before = dict(mpl.rcParams)
        sns.set_theme(**SEABORN_THEME)
        changed = {k: v for k, v in mpl.rcParams.items() if v != before[k]}
        color_codes = {c: list(mpl.colors.to_rgb(codes[c])) for c in "bgrcmyk"}
    for c, v in saved.items():
        codes[c] = v
    # its default colormap ("rocket") exists only once seaborn is imported; no figure maps values through the default
    changed.pop("image.cmap", None)
    if "axes.prop_cycle" in changed:
        changed["axes.prop_cycle"] = [mpl.colors.to_hex(c) for c in changed["axes.prop_cycle"].by_key()["color"]]
    return json.loads(json.dumps({"rcParams": changed, "color_codes": color_codes}, sort_keys=True, default=list))


def set_style() -> None:
    """The one style every figure uses (seaborn 'paper' context, ticks, colour-blind palette, embedded TrueType), drawn
    off-screen (Agg): a notebook shows its figure once, as saved (``show_saved``), instead of a notebook's inline
    backend also rendering it, at another size, at the end of the cell that drew it (a second image in the executed
    notebook, and two more full draws of every figure)."""
    plt.switch_backend("agg")
    theme = json.loads(THEME_FILE.read_text(encoding="utf-8"))
    rc = theme["rcParams"]
    if "axes.prop_cycle" in rc:
        rc["axes.prop_cycle"] = mpl.cycler(color=rc["axes.prop_cycle"])
    mpl.rcParams.update(rc)
    codes = mpl.colors.get_named_colors_mapping()
    for c, v in theme["color_codes"].items():
        codes[c] = tuple(v)  # item by item: matplotlib's colour cache is cleared on item assignment, not on update()
    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": DPI, "pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "sketchlaw",
        "axes.unicode_minus": True, "mathtext.fontset": "dejavusans", "axes.grid": True, "grid.alpha": 0.3,
        "grid.linewidth": 0.5, "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 9,
        "axes.labelsize": 9, "legend.fontsize": 7, "legend.frameon": False, "xtick.labelsize": 8,
        "ytick.labelsize": 8, "lines.linewidth": 1.4, "errorbar.capsize": 1.5,
    })


def log_axes(ax: plt.Axes, xlabel: str | None = None, ylabel: str | None = None, *, xbase: float = 10,
             ybase: float = 10) -> plt.Axes:
    """Log scale on both axes (base 2 suits model sizes), major grid, optional labels."""
    ax.set_xscale("log", base=xbase)
    ax.set_yscale("log", base=ybase)
    ax.grid(True, which="major")
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    return ax


def finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def fmt_signed(v: Any, digits: int = 3) -> str:
    """Fixed decimals with a Unicode minus; ``n/a`` for NaN."""
    if not finite(v):
        return "n/a"
    s = f"{float(v):.{digits}f}"
    if s.startswith("-"):
        s = s[1:] if float(s) == 0 else MINUS + s[1:]
    return s


def fmt_num(v: Any, digits: int = 3) -> str:
    """Up to ``digits`` decimals, trailing zeros stripped, Unicode minus: −0.5, −1, 0.333, 2."""
    if not finite(v):
        return "n/a"
    s = f"{float(v):.{digits}f}".rstrip("0").rstrip(".")
    return ("0" if s in ("-0", "") else s).replace("-", MINUS)


def fmt_int(x: float) -> str:
    return f"{int(round(float(x))):d}"


def fmt_pow10(x: float) -> str:
    """Mathtext label like 1.2×10⁵ (10⁵ when the mantissa is 1)."""
    if not finite(x) or x <= 0:
        return str(x)
    e = int(math.floor(math.log10(x)))
    m = x / 10**e
    if round(m, 1) >= 10:
        m, e = m / 10, e + 1
    return rf"${m:.1f}\times10^{{{e}}}$" if abs(m - 1) > 0.05 else rf"$10^{{{e}}}$"


def level_colors(levels: Sequence[float], cmap: str = "viridis") -> dict[float, tuple]:
    """Colour per level, evenly spaced in log, avoiding the light end of the map."""
    levels = sorted(float(v) for v in levels)
    cm = mpl.colormaps[cmap]
    top = {"viridis": 0.88, "magma": 0.78}.get(cmap, 0.85)
    if not levels:
        return {}
    if len(levels) == 1:
        return {levels[0]: cm(0.35)}
    lo, hi = math.log(levels[0]), math.log(levels[-1])
    return {v: cm(top * (math.log(v) - lo) / (hi - lo)) for v in levels}


def truncated_cmap(cmap: str, top: float) -> mpl.colors.Colormap:
    """The first ``top`` fraction of a colour map (the light end of viridis is unreadable on white)."""
    cm = mpl.colormaps[cmap]
    return mpl.colors.LinearSegmentedColormap.from_list(f"{cmap}_trunc", cm(np.linspace(0, top, 256)))


def set_log_ylim(ax: plt.Axes, values: Iterable[float], pad: float = 1.6) -> None:
    """y limits a factor ``pad`` beyond the positive finite values shown (nothing when there are none)."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size:
        ax.set_ylim(v.min() / pad, v.max() * pad)


def free_band(ax: plt.Axes, fraction: float, side: str = "bottom") -> None:
    """Extend the current y limits so the data leave the ``bottom`` (or ``top``) ``fraction`` of the axes free, for
    the corner texts (:func:`annotate_fit`) to sit clear of the curves. Log or linear, whichever the axis is."""
    lo, hi = ax.get_ylim()
    k = fraction / (1 - fraction)
    if ax.get_yscale() == "log":
        if not (0 < lo < hi):
            return
        lo, hi = (lo * (lo / hi) ** k, hi) if side == "bottom" else (lo, hi * (hi / lo) ** k)
    else:
        lo, hi = (lo - k * (hi - lo), hi) if side == "bottom" else (lo, hi + k * (hi - lo))
    ax.set_ylim(lo, hi)


def plain_log_ticks(ax: plt.Axes, axis: str, lo: float, hi: float, max_ticks: int = 7,
                    only_if_narrow: bool = False) -> None:
    """Plain-number ticks (1, 1.2, 1.5, 2, ...) on a log axis spanning about a decade or less (risk near σ², ln M),
    where matplotlib's log ticks would show at most one label.  ``only_if_narrow``: nothing beyond 1.5 decades."""
    if not (finite(lo) and finite(hi) and 0 < lo < hi):
        return
    if only_if_narrow and hi / lo > 10**1.5:
        return
    mant = np.array([1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8])
    exps = range(int(math.floor(math.log10(lo))) - 1, int(math.ceil(math.log10(hi))) + 1)
    cands = np.unique(np.concatenate([mant * 10.0**e for e in exps]))
    c = cands[(cands >= lo * 0.999) & (cands <= hi * 1.001)]
    if len(c) > max_ticks:
        c = c[:: int(math.ceil(len(c) / max_ticks))]
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(FixedLocator(c))
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.4g}".replace("-", MINUS)))
    a.set_minor_locator(NullLocator())
    a.set_minor_formatter(NullFormatter())


# --------------------------------------------------------------------------------------------------------------
# rows, levels and aggregation
# --------------------------------------------------------------------------------------------------------------


def match(series: pd.Series, value: float) -> np.ndarray:
    """Rows whose float column equals ``value`` (relative tolerance 1e-9: grid values survive CSV round trips)."""
    return np.isclose(series.to_numpy(dtype=float), float(value), rtol=1e-9, atol=0.0)


def pick_levels(values: Iterable[float], k: int = 4, include: Iterable[float] = ()) -> list[float]:
    """Up to ``k`` values spread evenly in rank over the sorted unique finite ``values`` (the smallest and the
    largest always among them), plus every finite value in ``include``."""
    u = np.unique(np.asarray(list(values), dtype=float))
    u = u[np.isfinite(u)]
    chosen = list(u) if len(u) <= k else list(u[np.unique(np.round(np.linspace(0, len(u) - 1, k)).astype(int))])
    for v in include:
        if finite(v) and not np.any(np.isclose(chosen, float(v))):
            chosen.append(float(v))
    return sorted(float(c) for c in chosen)


def complete_levels(df: pd.DataFrame, col: str, across: str) -> list[float]:
    """Values of ``col`` present at every value of ``across`` (e.g. the main grid's N, not the extra N only the
    Monte Carlo sub-grid carries); all values when none is complete."""
    per = df.groupby(col)[across].nunique()
    full = per[per == df[across].nunique()].index
    return sorted(float(v) for v in (full if len(full) else per.index))


def aggregate_exact(df: pd.DataFrame, by: Sequence[str], y: str) -> pd.DataFrame:
    """Mean, min and max of ``y`` over sketch seeds for each ``by`` group (columns by..., y, y_lo, y_hi)."""
    g = df.groupby(list(by), sort=True)[y]
    return pd.DataFrame({"y": g.mean(), "y_lo": g.min(), "y_hi": g.max()}).reset_index()


def aggregate_mc(df: pd.DataFrame, by: Sequence[str], *, subtract_sigma2: bool = False,
                 value: str = "mc_mean", std: str = "mc_std") -> pd.DataFrame:
    """Monte Carlo mean and std over trials, pooled over sketch seeds (weights = trials).

    ``err`` is the standard deviation over all trials of all seeds (law of total variance: the mean within-seed
    variance plus the variance of the per-seed means).  Columns: by..., y, err, trials; empty without MC rows.
    """
    empty = pd.DataFrame({c: pd.Series(dtype=df[c].dtype if c in df.columns else float)
                          for c in list(by) + ["y", "err", "trials"]})
    if "mc_trials" not in df.columns:
        return empty
    mc = df[(df["mc_trials"].fillna(0) > 0) & df[value].notna()]
    if mc.empty:
        return empty
    m = mc[value].astype(float) - (mc["sigma2"].astype(float) if subtract_sigma2 else 0.0)
    w = mc["mc_trials"].astype(float)
    s = mc[std].astype(float).fillna(0.0)
    mc = mc.assign(_w=w, _wm=w * m, _wm2=w * m * m, _ws2=w * s * s)
    g = mc.groupby(list(by), sort=True)[["_w", "_wm", "_wm2", "_ws2"]].sum()
    mean = g["_wm"] / g["_w"]
    var = g["_ws2"] / g["_w"] + np.maximum(g["_wm2"] / g["_w"] - mean**2, 0.0)
    return pd.DataFrame({"y": mean, "err": np.sqrt(var), "trials": g["_w"]}).reset_index()


def errorbar_log(ax: plt.Axes, x, y, err, **kw) -> None:
    """Error bars on a log y axis: the lower bar stops just above zero when std ≥ mean."""
    x, y, err = (np.asarray(v, dtype=float) for v in (x, y, err))
    ok = np.isfinite(y) & (y > 0)
    if not ok.any():
        return
    x, y, err = x[ok], y[ok], err[ok]
    for k, v in (("fmt", "o"), ("ms", 3), ("elinewidth", 0.8), ("zorder", 4)):
        kw.setdefault(k, v)
    ax.errorbar(x, y, yerr=np.vstack([np.minimum(err, 0.999 * y), err]), **kw)


def exponent_row(exponents: pd.DataFrame | None, experiment: str, variable: str, a: float, b: float | None = None,
                 *, estimator: str | Sequence[str] = "window", quantity: str | None = None,
                 **curve: Any) -> pd.Series | None:
    """The ``exponents.csv`` row for (experiment, variable, a[, b], estimator[, quantity]) on one curve, or None.

    ``curve`` selects by the typed curve columns (``schedule=``, ``step_rule=``, ``samples=``, ``sketch=``,
    ``coordinates=``);
    ``estimator`` may be a sequence: the first estimator that has a row wins (e.g. ``("primary", "window")``).
    """
    if exponents is None or exponents.empty:
        return None
    sel = (exponents["experiment"] == experiment) & (exponents["variable"] == variable) & match(exponents["a"], a)
    if b is not None and finite(b):
        sel &= match(exponents["b"], b)
    if quantity is not None:
        sel &= exponents["quantity"] == quantity
    for column, value in curve.items():
        if column not in CURVES:
            raise TypeError(f"exponent_row selects curves by {', '.join(CURVES)}, not {column!r}")
        sel &= match(exponents[column], value) if column == "samples" else exponents[column] == value
    for est in [estimator] if isinstance(estimator, str) else list(estimator):
        rows = exponents[sel & (exponents["estimator"] == est)]
        if not rows.empty:
            return rows.iloc[0]
    return None


# --------------------------------------------------------------------------------------------------------------
# fit lines and slope annotations (typed columns only)
# --------------------------------------------------------------------------------------------------------------


def is_fitted(row: pd.Series | None) -> bool:
    """A row with a finite slope whose verdict is not ``not fitted``."""
    return row is not None and finite(row["fitted"]) and row["verdict"] != "not fitted"


def fit_line(row: pd.Series | None, points: int = 64) -> pd.DataFrame | None:
    """The fitted line of an exponent row on its window: columns x (the row's abscissa, geometrically spaced from
    x_lo to x_hi), X (x as it enters the regression, by the row's ``scale``: x; ln x; the compute frontier's
    coordinates ``theory.frontier_coordinates``) and y = factor·exp(intercept)·X^fitted.
    None when the row has no finite slope, intercept or window."""
    if not is_fitted(row) or not all(finite(row[k]) for k in ("intercept", "x_lo", "x_hi")):
        return None
    lo, hi = float(row["x_lo"]), float(row["x_hi"])
    if not 0 < lo <= hi:
        return None
    x = np.geomspace(lo, hi, points)
    if row["scale"] == "frontier":
        b = float(row["b"]) if finite(row["b"]) else None
        X, factor = frontier_coordinates(str(row["variable"]), float(row["a"]), x, b)
    elif row["scale"] == "loglog":
        X, factor = np.log(x), np.ones_like(x)
    else:
        X, factor = x, np.ones_like(x)
    return pd.DataFrame({"x": x, "X": X, "y": factor * np.exp(float(row["intercept"])) * X ** float(row["fitted"])})


def draw_fit_line(ax: plt.Axes, row: pd.Series | None, *, along: str = "x", **style) -> bool:
    """Draw :func:`fit_line` of ``row`` against ``along`` ("x", or "X" when the axis shows the regression's
    abscissa, e.g. ln M); dashed black unless styled.  Returns whether a line was drawn."""
    line = fit_line(row)
    if line is None:
        return False
    ax.plot(line[along], line["y"], **{"color": "black", "ls": "--", "lw": 1.2, "zorder": 6, **style})
    return True


def format_slope(fitted: Any, ci_low: Any, ci_high: Any, theory: Any = None, *, symbol: str = "k",
                 digits: int = 3, windows: tuple | None = None) -> str:
    """``k = −0.498 [−0.503, −0.492] (theory −0.5)``; without an interval (an exact curve, which has no sampling
    spread) the range over windows ``windows`` = (low, high) if given; ``n/a`` for a NaN theory (one that does not
    apply); no theory part when ``theory`` is None."""
    text = f"{symbol} = {fmt_signed(fitted, digits)}"
    if finite(ci_low) and finite(ci_high):
        text += f" [{fmt_signed(ci_low, digits)}, {fmt_signed(ci_high, digits)}]"
    elif windows is not None and all(finite(v) for v in windows):
        text += f", windows [{fmt_signed(windows[0], digits + 1)}, {fmt_signed(windows[1], digits + 1)}]"
    if theory is not None:
        text += f" (theory {fmt_num(theory, digits)})"
    return text


def slope_text(row: pd.Series | None, symbol: str = "k") -> str:
    """An exponent row as printed on a figure: its slope, interval, theory and verdict, or why it is not fitted."""
    if row is None:
        return f"{symbol}: no row in exponents.csv"
    verdict = str(row["verdict"])
    if not is_fitted(row):
        return f"{symbol}: not fitted ({row['reason'] or 'no slope'})"
    text = format_slope(row["fitted"], row["ci_low"], row["ci_high"], row["theory"], symbol=symbol,
                        windows=(row.get("sys_low"), row.get("sys_high")))
    return text + (f" \u00b7 {verdict}" if verdict else "")


_CORNERS = {"lower left": (0.03, 0.03, "left", "bottom", 1), "upper left": (0.03, 0.97, "left", "top", -1),
            "lower right": (0.97, 0.03, "right", "bottom", 1), "upper right": (0.97, 0.97, "right", "top", -1)}
_STACK_GAP = 4.0  # points between stacked annotations (their white boxes stay apart)
_TEXT_WIDTH = 0.9  # fraction of the axes width a corner text may take before it is wrapped


def _words(text: str) -> list[str]:
    """Words of ``text`` split at spaces, but never inside a mathtext ``$...$`` span."""
    out: list[str] = []
    for w in text.split(" "):
        if out and out[-1].count("$") % 2 == 1:
            out[-1] += " " + w
        else:
            out.append(w)
    return out


def fit_to_axes(ax: plt.Axes, text: str, fontsize: float, width: float = _TEXT_WIDTH) -> str:
    """``text`` with line breaks so that no line is wider than ``width`` times the axes' width (measured, mathtext
    spans kept whole). The width is the axes' position when called: in a constrained layout about the final one."""
    fig = ax.figure
    renderer = fig._get_renderer()
    avail = width * ax.get_position().width * fig.bbox.width
    probe = mpl.text.Text(0, 0, "", fontsize=fontsize)
    probe.set_figure(fig)

    def wide(line: str) -> bool:
        probe.set_text(line)
        return probe.get_window_extent(renderer).width > avail

    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for w in _words(para):
            candidate = f"{line} {w}" if line else w
            if line and wide(candidate):
                lines.append(line)
                line = w
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)


def _stacked_text(ax: plt.Axes, text: str, loc: str, width: float = _TEXT_WIDTH, **kw) -> mpl.text.Annotation:
    """A text in a corner of ``ax`` (wrapped to the axes' width); the next one on that corner goes just beyond the
    drawn extent of the previous one, however many lines either has."""
    x, y, ha, va, direction = _CORNERS[loc]
    stack = ax.__dict__.setdefault("_sketchlaw_stack", {})
    previous = stack.get(loc)
    text = fit_to_axes(ax, text, kw.get("fontsize", 7.0), width)
    if previous is None:
        t = ax.annotate(text, xy=(x, y), xycoords="axes fraction", ha=ha, va=va, zorder=10, **kw)
    else:
        t = ax.annotate(text, xy=(0.0 if ha == "left" else 1.0, 1.0 if direction > 0 else 0.0), xycoords=previous,
                        xytext=(0.0, direction * _STACK_GAP), textcoords="offset points", ha=ha, va=va, zorder=10,
                        **kw)
    stack[loc] = t
    return t


def annotate_slope(ax: plt.Axes, text: str, *, loc: str = "lower left", color: str = "black",
                   fontsize: float = 7.0, width: float = _TEXT_WIDTH) -> mpl.text.Text:
    """Print ``text`` in a corner of ``ax``, wrapped to ``width`` times the axes' width (less keeps it clear of a
    curve crossing the panel); successive calls on one corner stack away from it."""
    return _stacked_text(ax, text, loc, width=width, fontsize=fontsize, color=color,
                         bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))


def annotate_fit(ax: plt.Axes, row: pd.Series | None, *, label: str = "", loc: str = "lower left",
                 symbol: str = "k", color: str = "black", width: float = _TEXT_WIDTH) -> mpl.text.Text:
    """:func:`slope_text` of an exponent row, prefixed by ``label``, in a corner of ``ax`` (grey if not fitted)."""
    return annotate_slope(ax, label + slope_text(row, symbol), loc=loc, color=color if is_fitted(row) else "0.4",
                          width=width)


def note(ax: plt.Axes, text: str, *, loc: str = "center") -> mpl.text.Text:
    """Say on a panel what its inputs lack (e.g. "one M only: no contour"): grey text, centred or in a corner, wrapped
    to fit the panel's width."""
    if loc == "center":
        return ax.text(0.5, 0.5, fit_to_axes(ax, text, 8.0), transform=ax.transAxes, ha="center", va="center",
                       fontsize=8, color="0.35", zorder=10)
    return _stacked_text(ax, text, loc, fontsize=7, color="0.4")


# --------------------------------------------------------------------------------------------------------------
# layout check
# --------------------------------------------------------------------------------------------------------------

LAYOUT_TOLERANCE_PX = 1.0  #: pixels (of the saved PNG) by which two boxes may touch before they count as overlapping
PAD_INCHES = 0.04  #: white margin around a saved figure's tight bounding box
MAX_WIDTH_RATIO = 1.15  #: largest ratio between the widths of the panels of one grid row (after their width ratios)
MIN_TICK_GAP_PX = 2.0  #: least gap (pixels of the saved PNG) between neighbouring tick labels of one axis
MIN_COLUMN_FILL = 0.5  #: least fraction of its columns' share of the figure width a panel's axes must fill


@dataclass
class _Box:
    what: str  # the artist, readably: 'x tick label "10^3"'
    owner: Any  # the axes it belongs to, or None for the figure
    bbox: Bbox
    kind: str  # "tick-x", "tick-y", "label", "text" (ax.text / annotate), "legend", "figure"


def _short(text: str, n: int = 40) -> str:
    text = " ".join(str(text).replace("\\mathdefault", "").replace("$", "").split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _all_axes(fig: plt.Figure) -> list[plt.Axes]:
    out: list[plt.Axes] = []

    def walk(ax):
        if ax not in out and ax.get_visible():
            out.append(ax)
            for child in getattr(ax, "child_axes", ()):
                walk(child)

    for ax in fig.get_axes():
        walk(ax)
    return out


def _grid_cell(ax: plt.Axes):
    ss = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    return None if ss is None else ss.get_topmost_subplotspec()


def _axes_name(ax: plt.Axes) -> str:
    cb = getattr(ax, "_colorbar", None)
    if cb is not None:
        label = (ax.yaxis if cb.orientation == "vertical" else ax.xaxis).get_label_text()
        return f'colorbar "{_short(label)}"' if label else "colorbar"
    cell = _grid_cell(ax)
    where = ""
    if cell is not None:
        rows, cols = cell.rowspan, cell.colspan
        where = f" (row {rows.start + 1}, col {cols.start + 1})"
    title = next((t.get_text() for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()), "")
    return f"axes{where}" + (f' "{_short(title)}"' if title else "")


def _text_extent(t: mpl.text.Text, renderer) -> Bbox:
    """The drawn extent of a text: wrapped as drawn, its bbox patch (e.g. a white box behind it) included."""
    if t.get_wrap() and hasattr(t, "_get_wrapped_text"):
        with t._cm_set(text=t._get_wrapped_text()):
            box = t.get_window_extent(renderer)
    else:
        box = t.get_window_extent(renderer)
    patch = t.get_bbox_patch()
    if patch is not None:
        box = Bbox.union([box, patch.get_window_extent(renderer)])
    return box


def _visible_text(t) -> bool:
    return t is not None and t.get_visible() and bool(str(t.get_text()).strip())


def _drawn_ticks(axis) -> list:
    try:
        return list(axis._update_ticks())  # the ticks matplotlib draws (inside the view interval)
    except AttributeError:  # pragma: no cover - older matplotlib
        lo, hi = sorted(axis.get_view_interval())
        return [t for t in axis.get_major_ticks() + axis.get_minor_ticks() if lo <= t.get_loc() <= hi]


def _axes_boxes(ax: plt.Axes, renderer) -> list[_Box]:
    boxes: list[_Box] = []

    def add(t, what, kind):
        if _visible_text(t):
            boxes.append(_Box(f'{what} "{_short(t.get_text())}"', ax, _text_extent(t, renderer), kind))

    for t, what in ((ax.title, "title"), (ax._left_title, "left title"), (ax._right_title, "right title")):
        add(t, what, "label")
    if ax.axison:
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            if not axis.get_visible():
                continue
            add(axis.label, f"{name} label", "label")
            add(axis.offsetText, f"{name} offset text", "label")
            for tick in _drawn_ticks(axis):
                if tick.get_visible():
                    for lab in (tick.label1, tick.label2):
                        add(lab, f"{name} tick label", f"tick-{name}")
    for t in ax.texts:
        add(t, "annotation" if isinstance(t, mpl.text.Annotation) else "text", "text")
    legend = ax.get_legend()
    if legend is not None and legend.get_visible():
        entries = ", ".join(_short(t.get_text(), 20) for t in legend.get_texts()[:3])
        boxes.append(_Box(f'legend "{entries}"', ax, legend.get_window_extent(renderer), "legend"))
    return boxes


def _overlap(a: Bbox, b: Bbox, tol: float) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _outside(inner: Bbox, outer: Bbox, tol: float) -> str:
    """'' when ``inner`` lies within ``outer`` (up to ``tol``), else which sides it crosses and by how much."""
    sides = {"left": outer.x0 - inner.x0, "right": inner.x1 - outer.x1, "bottom": outer.y0 - inner.y0,
             "top": inner.y1 - outer.y1}
    return ", ".join(f"{s} by {v:.0f} px" for s, v in sides.items() if v > tol)


def _related(a, b) -> bool:
    """Twins, or one axes an inset (child) of the other: their areas are shared on purpose."""
    if a is b:
        return True
    if b in a._twinned_axes.get_siblings(a):
        return True
    return a in getattr(b, "child_axes", ()) or b in getattr(a, "child_axes", ())


def _line_points(line: mpl.lines.Line2D, step: float = 2.0) -> np.ndarray:
    """Display coordinates along a drawn line, every ``step`` pixels (its vertices alone when it has no line)."""
    xy = line.get_transform().transform_path(line.get_path()).vertices
    if line.get_linestyle() in ("None", "", " ") or len(xy) < 2:
        return xy[np.all(np.isfinite(xy), axis=1)]
    pts = [xy[:1]]
    for p, q in zip(xy[:-1], xy[1:]):
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            continue
        n = max(1, int(math.ceil(float(np.hypot(*(q - p))) / step)))
        pts.append(p + (q - p) * (np.arange(1, n + 1)[:, None] / n))
    out = np.concatenate(pts)
    return out[np.all(np.isfinite(out), axis=1)]


def layout_problems(fig: plt.Figure, *, max_width_ratio: float = MAX_WIDTH_RATIO,
                    tol: float = LAYOUT_TOLERANCE_PX, dpi: float | None = None) -> list[str]:
    """What keeps ``fig`` from reading cleanly at the size it is saved: a list of readable problems, empty if none.

    The figure is drawn (at ``dpi``, default its own) and every visible text is measured: titles, axis labels and
    offset texts, drawn tick labels, ``ax.text`` / annotations (with their background box), legends (their frame),
    colorbars (their axes' labels and ticks) and figure texts (the provenance stamp, placed under the figure on
    purpose, is exempt from the first check only). A problem is

    * a text extending outside the figure;
    * an ``ax.text`` / annotation not inside its own axes, or a legend placed in its axes (no ``bbox_to_anchor``)
      sticking out of it;
    * a text of one axes (or of the figure) overlapping the area of another axes (insets and twins excepted) or a
      text of another axes;
    * two texts of one axes overlapping (an annotation on the legend or on the tick labels, ...), or two tick labels
      of one axis closer than :data:`MIN_TICK_GAP_PX` (crowded labels read as one);
    * an ``ax.text`` / annotation or a legend covering a drawn line (curve or marker; not a reference line across the
      whole panel drawn by ``axhline`` / ``axvline``) of its axes;
    * the panels of one grid row (colorbars, insets and fixed-aspect axes excepted) differing in width by more than
      ``max_width_ratio`` once divided by the width ratios the grid gives them (so only unintended squeezing counts),
      or a panel filling less than :data:`MIN_COLUMN_FILL` of its columns' share of the figure width (all panels
      squeezed alike by the margins around them).

    Boxes touching by up to ``tol`` pixels do not count.
    """
    return _measure(fig, dpi, max_width_ratio, tol)[0]


def _measure(fig: plt.Figure, dpi: float | None, max_width_ratio: float = MAX_WIDTH_RATIO,
             tol: float = LAYOUT_TOLERANCE_PX):
    """(layout problems, tight bounding box in inches padded by PAD_INCHES) from one draw at ``dpi``."""
    old_dpi = fig.dpi
    if dpi is not None:
        fig.set_dpi(dpi)
    try:
        fig.draw_without_rendering()
        renderer = fig._get_renderer()
        return (_layout_problems(fig, renderer, max_width_ratio, tol),
                fig.get_tightbbox(renderer).padded(PAD_INCHES))
    finally:
        if dpi is not None:
            fig.set_dpi(old_dpi)


def _layout_problems(fig, renderer, max_width_ratio, tol) -> list[str]:
    problems: list[str] = []
    axes = _all_axes(fig)
    names = {ax: _axes_name(ax) for ax in axes}
    for ax in axes:  # the same name twice: number them
        same = [o for o in axes if names[o] == names[ax]]
        if len(same) > 1:
            for i, o in enumerate(same):
                names[o] = f"{names[o]} #{i + 1}"

    def of(box: _Box) -> str:
        return box.what + (f" of {names[box.owner]}" if box.owner is not None else " of the figure")

    boxes: list[_Box] = []
    stamp: list[_Box] = []
    for t in fig.texts:
        if _visible_text(t):
            b = _Box(f'figure text "{_short(t.get_text())}"', None, _text_extent(t, renderer), "figure")
            (stamp if t.get_gid() == _STAMP_GID else boxes).append(b)
    for leg in fig.legends:
        if leg.get_visible():
            entries = ", ".join(_short(t.get_text(), 20) for t in leg.get_texts()[:3])
            boxes.append(_Box(f'figure legend "{entries}"', None, leg.get_window_extent(renderer), "figure"))
    per_axes = {ax: _axes_boxes(ax, renderer) for ax in axes}
    for ax in axes:
        boxes += per_axes[ax]

    # 1. inside the figure
    for b in boxes:
        side = _outside(b.bbox, fig.bbox, tol)
        if side:
            problems.append(f"{of(b)} extends outside the figure ({side})")
    boxes += stamp

    # 2. texts and legends placed in their axes stay inside it
    for ax in axes:
        for b in per_axes[ax]:
            anchored = b.kind == "text" or (b.kind == "legend" and ax.get_legend()._bbox_to_anchor is None)
            side = _outside(b.bbox, ax.bbox, tol) if anchored else ""
            if side:
                problems.append(f"{of(b)} sticks out of its axes ({side})")

    # 3. no text on another axes' area
    for b in boxes:
        for ax in axes:
            if (b.owner is None or not _related(b.owner, ax)) and _overlap(b.bbox, ax.bbox, tol):
                problems.append(f"{of(b)} overlaps the area of {names[ax]}")

    # 4. no two texts on each other; tick labels of one axis at least MIN_TICK_GAP_PX apart
    for i, b in enumerate(boxes):
        for c in boxes[i + 1:]:
            same_axis = b.owner is c.owner and b.kind == c.kind and b.kind.startswith("tick-")
            if _overlap(b.bbox, c.bbox, -MIN_TICK_GAP_PX if same_axis else tol):
                problems.append(f"{of(b)} {'touches' if same_axis else 'overlaps'} {of(c)}")

    # 5. annotations and legends clear of the curves drawn (reference lines across the whole panel, axhline /
    # axvline, may pass under them: no corner can avoid a vertical one)
    for ax in axes:
        spanning = (ax.get_xaxis_transform(which="grid"), ax.get_yaxis_transform(which="grid"))
        lines = [ln for ln in ax.get_lines() if ln.get_visible() and not any(ln.get_transform() is t for t in spanning)]
        for b in per_axes[ax]:
            if b.kind not in ("text", "legend"):
                continue
            x0, y0, x1, y1 = b.bbox.x0 + tol, b.bbox.y0 + tol, b.bbox.x1 - tol, b.bbox.y1 - tol
            for ln in lines:
                p = _line_points(ln)
                p = p[(p[:, 0] >= ax.bbox.x0) & (p[:, 0] <= ax.bbox.x1) & (p[:, 1] >= ax.bbox.y0) &
                      (p[:, 1] <= ax.bbox.y1)]  # a line is clipped to its axes
                if len(p) and np.any((p[:, 0] > x0) & (p[:, 0] < x1) & (p[:, 1] > y0) & (p[:, 1] < y1)):
                    label = ln.get_label()
                    what = f'line "{_short(label, 30)}"' if label and not label.startswith("_") else "a line"
                    problems.append(f"{of(b)} covers {what}")

    # 6. the panels of one row equally wide (after the grid's width ratios), none squeezed into a strip
    rows: dict[tuple, list] = {}
    for ax in axes:
        cell = _grid_cell(ax)
        if cell is None or getattr(ax, "_colorbar", None) is not None or ax.get_aspect() != "auto" or \
                any(ax in getattr(o, "child_axes", ()) for o in axes):
            continue
        gs = cell.get_gridspec()
        ratios = gs.get_width_ratios() or [1] * gs.ncols
        share = sum(ratios[c] for c in cell.colspan) / sum(ratios)
        rows.setdefault((id(gs), cell.rowspan.start, cell.rowspan.stop), []).append((ax, ax.bbox.width / share))
        if ax.bbox.width < MIN_COLUMN_FILL * share * fig.bbox.width:
            problems.append(f"{names[ax]} is squeezed to {ax.bbox.width / (share * fig.bbox.width):.0%} of its "
                            f"column's share of the figure width (at least {MIN_COLUMN_FILL:.0%})")
    for (_, start, stop), members in rows.items():
        widths = [w for _, w in members]
        if len(members) > 1 and max(widths) > max_width_ratio * min(widths):
            narrow = min(members, key=lambda m: m[1])[0]
            wide = max(members, key=lambda m: m[1])[0]
            problems.append(f"row {start + 1}: {names[narrow]} is {max(widths) / min(widths):.2f} times narrower than "
                            f"{names[wide]} (allowed {max_width_ratio:g})")
    return list(dict.fromkeys(problems))  # one line per problem: unlabelled lines under one text read alike


# --------------------------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------------------------


def split_caption(caption: str) -> tuple[str, str]:
    """(title, text) of a notebook's CAPTION: the first line, and the rest as one paragraph."""
    lines = caption.strip().splitlines()
    if not lines:
        raise ValueError("a caption needs a first line (the figure's short title)")
    text = " ".join(" ".join(lines[1:]).split())
    if not text:
        raise ValueError(f"the caption {lines[0].strip()!r} has only its first line: add what is plotted and why")
    return lines[0].strip(), text


def provenance_fields(provenance: Mapping[str, Any]) -> dict[str, str]:
    """The provenance as flat ASCII strings (what is embedded in the files)."""
    dirty = provenance.get("git_dirty", False)
    dirty = dirty.strip().lower() in ("1", "true", "yes", "dirty") if isinstance(dirty, str) else bool(dirty)
    out = {"git_commit": str(provenance.get("git_commit", "")), "git_dirty": "true" if dirty else "false",
           "config_hash": str(provenance.get("config_hash", "")), "lock_hash": str(provenance.get("lock_hash", "")),
           "versions": json.dumps(provenance.get("versions", {}), sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=True, default=str)}
    return {k: v.encode("ascii", "backslashreplace").decode("ascii") for k, v in out.items()}


def save_figure(fig: plt.Figure, figures_dir: str | os.PathLike, name: str,
                provenance: Mapping[str, Any] | str | os.PathLike, caption: str, *, dpi: int = DPI,
                stamp: bool = True) -> tuple[Path, Path]:
    """Write ``figures_dir/NAME.png``, ``NAME.pdf`` and the caption sidecar ``NAME.json``, deterministically.

    * fixed DPI, tight bounding box, no timestamps (the PDF ``CreationDate`` is dropped unless ``SOURCE_DATE_EPOCH``
      is set, in which case matplotlib takes it from there);
    * provenance (a mapping, or the path of the workflow's provenance JSON) embedded as PNG text chunks
      ``git_commit``, ``git_dirty``, ``config_hash``, ``lock_hash``, ``versions``, ``provenance`` (full JSON) and
      as PDF ``Subject`` / ``Keywords``; ``stamp`` also prints ``NAME · git <sha> · config <hash>`` in a corner;
    * ``NAME.json`` = {"name", "title", "caption"} from the notebook's CAPTION (:func:`split_caption`), the one
      source of the caption for the results page.
    * ``NAME.layout.json`` = {"name", "dpi", "tolerance_px", "max_width_ratio", "problems"}: what
      :func:`layout_problems` finds in the figure at the saved DPI (also issued as a warning when not empty); the
      tests require it to be empty for every notebook.

    Returns the PNG and PDF paths.
    """
    title, text = split_caption(caption)
    prov = load_provenance(provenance) if isinstance(provenance, (str, os.PathLike)) else dict(provenance)
    _check_provenance(prov, "mapping")
    f = provenance_fields(prov)
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)

    for t in list(fig.texts):  # idempotent: one stamp even if saved twice
        if t.get_gid() == _STAMP_GID:
            t.remove()
    if stamp:
        sha = f["git_commit"][:10] + ("+dirty" if f["git_dirty"] == "true" else "")
        fig.text(0.998, -0.005, f"{name} \u00b7 git {sha} \u00b7 config {f['config_hash'][:12]}", ha="right",
                 va="top", fontsize=5, color="0.55", gid=_STAMP_GID)

    full = json.dumps(prov, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    png_meta = {"Title": name, "Description": f"sketchlaw figure {name}", **f, "provenance": full}
    subject = (f"sketchlaw figure {name}; git {f['git_commit']}"
               f"{' (dirty)' if f['git_dirty'] == 'true' else ''}; config {f['config_hash']}")
    keywords = "; ".join(f"{k}={f[k]}" for k in ("git_commit", "git_dirty", "config_hash", "lock_hash", "versions"))
    pdf_meta: dict[str, Any] = {"Title": name, "Subject": subject, "Keywords": keywords,
                                "Creator": "sketchlaw.present.plotting", "ModDate": None}
    if not os.environ.get("SOURCE_DATE_EPOCH"):
        pdf_meta["CreationDate"] = None

    # One draw at the saved DPI lays the figure out (its layout engine runs first in every draw) and serves the layout
    # check and the crop of both files (bbox_inches="tight" would draw each file twice: to measure, to render). The
    # layout is then frozen so the PNG, the PDF and any later save share it (constrained layout drifts).
    problems, crop = _measure(fig, dpi)
    fig.set_layout_engine("none")
    layout = {"name": name, "dpi": dpi, "tolerance_px": LAYOUT_TOLERANCE_PX, "max_width_ratio": MAX_WIDTH_RATIO,
              "problems": problems}
    atomic_write(out / f"{name}.layout.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(layout, ensure_ascii=False, indent=1) + "\n",
                                                  encoding="utf-8"))
    if problems:
        warnings.warn(f"{name}: {len(problems)} layout problem(s), see {name}.layout.json: " + "; ".join(problems[:5])
                      + ("; ..." if len(problems) > 5 else ""), stacklevel=2)

    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    save_kw = dict(bbox_inches=crop, facecolor="white")
    fig.savefig(png, format="png", dpi=dpi, metadata=png_meta, **save_kw)
    fig.savefig(pdf, format="pdf", dpi=dpi, metadata=pdf_meta, **save_kw)
    sidecar = json.dumps({"name": name, "title": title, "caption": text}, ensure_ascii=False, indent=1) + "\n"
    atomic_write(out / f"{name}.json", lambda tmp: Path(tmp).write_text(sidecar, encoding="utf-8"))
    return png, pdf


def show_saved(fig: plt.Figure, png: str | os.PathLike, width: int = 1100):
    """Close ``fig`` and return the written PNG for display (shows exactly the saved file, no second render)."""
    from IPython.display import Image

    plt.close(fig)
    return Image(filename=str(png), width=width, alt=f"figure {Path(png).stem}")
