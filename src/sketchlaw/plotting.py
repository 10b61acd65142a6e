"""Shared helpers for the figure notebooks (presentation layer only; nothing here simulates or fits).

Each notebook in ``notebooks/`` holds its own figure: the rows it selects, the quantities it plots, the plotting
calls and its caption (a cell ``CAPTION = \"\"\"...\"\"\"``).  What they share lives here:

* loading: :func:`load_table` / :func:`load_exponents` (required columns checked, errors name the table and column),
  :func:`load_provenance`, :func:`resolve_paths`;
* style: :func:`set_style`, :func:`log_axes`, :func:`level_colors`, :func:`set_log_ylim`, :func:`plain_log_ticks`,
  number formatting (:func:`fmt_num`, :func:`fmt_pow10`, ...);
* rows and levels: :func:`match`, :func:`pick_levels`, :func:`complete_levels`, :func:`exponent_row`,
  :func:`aggregate_exact` (mean over sketch seeds), :func:`aggregate_mc` (Monte Carlo pooled over seeds);
* fits, read from the typed columns of ``exponents.csv`` only: :func:`fit_line` / :func:`draw_fit_line` (the line
  log(y/factor) = intercept + fitted·log X on [x_lo, x_hi]) and :func:`slope_text` / :func:`annotate_fit`
  (``k = −0.498 [−0.503, −0.492] (theory −0.5) · consistent``); :func:`note` says on a panel what is missing;
* saving: :func:`save_figure` writes ``NAME.png`` and ``NAME.pdf`` byte-deterministically with the provenance
  embedded, and the sidecar ``NAME.json`` ({"name", "title", "caption"}) the results page reads.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from .atomic import atomic_write
from .theory import frontier_coordinates

DPI = 200  #: resolution of every PNG written by :func:`save_figure`
MINUS = "\u2212"
PROVENANCE_REQUIRED = ("git_commit", "git_dirty", "config_hash")
_STAMP_GID = "sketchlaw-provenance-stamp"

#: exponents.csv columns the figures read (the typed contract of issue 11; no prose column is read).
EXPONENT_COLUMNS = ["experiment", "a", "b", "variable", "estimator", "quantity", "fixed_variable", "fixed_value",
                    "x_lo", "x_hi", "n_points", "n_seeds", "fitted", "intercept", "ci_low", "ci_high", "theory",
                    "verdict", "reason"]
_EXPONENT_TEXT = ["experiment", "variable", "estimator", "quantity", "fixed_variable", "verdict", "reason"]
FRONTIER_VARIABLES = ("M_star", "N_star", "reducible_star")


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
    df, diverged = _split_diverged(df)
    df.attrs["table"] = fname
    df.attrs["diverged"] = len(diverged)  # points left out: γ at or above their sketch's stability bound
    if required is not None:
        require_columns(df, required, fname)
    return df


def _split_diverged(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "diverged" not in df:
        return df, df.iloc[:0]
    mask = df["diverged"].fillna(False).to_numpy(dtype=bool)
    return df.loc[~mask].reset_index(drop=True), df.loc[mask].reset_index(drop=True)


def load_diverged(tables_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """The rows of table ``name`` that ``load_table`` leaves out: points whose step size was at or above their own
    sketch's stability bound (``diverged``; their risks are empty). Empty if there are none."""
    fname = name if name.endswith((".parquet", ".csv")) else f"{name}.parquet"
    path = Path(tables_dir) / fname
    df = pd.read_csv(path) if fname.endswith(".csv") else pd.read_parquet(path)
    return _split_diverged(df)[1]


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


def load_exponents(tables_dir: str | os.PathLike) -> pd.DataFrame:
    """Read ``exponents.csv``, check the typed columns the figures use, and make its text columns plain strings."""
    df = load_table(tables_dir, "exponents.csv", required=EXPONENT_COLUMNS)
    for c in _EXPONENT_TEXT:
        df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    return df


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


def set_style() -> None:
    """The one style every figure uses (seaborn 'paper' context, ticks, colour-blind palette, embedded TrueType)."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind", font="DejaVu Sans", font_scale=1.0)
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
                 *, estimator: str | Sequence[str] = "window", quantity: str | None = None) -> pd.Series | None:
    """The ``exponents.csv`` row for (experiment, variable, a[, b], estimator[, quantity]), or None.

    ``estimator`` may be a sequence: the first estimator that has a row wins (e.g. ``("primary", "window")``).
    """
    if exponents is None or exponents.empty:
        return None
    sel = (exponents["experiment"] == experiment) & (exponents["variable"] == variable) & match(exponents["a"], a)
    if b is not None and finite(b):
        sel &= match(exponents["b"], b)
    if quantity is not None:
        sel &= exponents["quantity"] == quantity
    for est in [estimator] if isinstance(estimator, str) else list(estimator):
        rows = exponents[sel & (exponents["estimator"] == est)]
        if not rows.empty:
            return rows.iloc[0]
    return None


# --------------------------------------------------------------------------------------------------------------
# fit lines and slope annotations (typed columns only)
# --------------------------------------------------------------------------------------------------------------


def is_fitted(row: pd.Series | None) -> bool:
    """A row with a finite slope whose verdict does not say ``not fitted``."""
    return row is not None and finite(row["fitted"]) and not str(row["verdict"]).startswith("not fitted")


def fit_line(row: pd.Series | None, points: int = 64) -> pd.DataFrame | None:
    """The fitted line of an exponent row on its window: columns x (the variable's base quantity: M, N_eff or the
    budget C, geometrically spaced from x_lo to x_hi), X (the regression's abscissa: x; ln x for log_M / log_N_eff;
    ``theory.frontier_coordinates`` for the compute frontier) and y = factor·exp(intercept)·X^fitted.
    None when the row has no finite slope, intercept or window."""
    if not is_fitted(row) or not all(finite(row[k]) for k in ("intercept", "x_lo", "x_hi")):
        return None
    lo, hi = float(row["x_lo"]), float(row["x_hi"])
    if not 0 < lo <= hi:
        return None
    x = np.geomspace(lo, hi, points)
    variable = str(row["variable"])
    if variable in FRONTIER_VARIABLES:
        X, factor = frontier_coordinates(variable, float(row["a"]), x)
    elif variable.startswith("log_"):
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
        reason = str(row["reason"]) or (verdict.removeprefix("not fitted").lstrip(": ")
                                         if verdict.startswith("not fitted") else "") or "no slope"
        return f"{symbol}: not fitted ({reason})"
    text = format_slope(row["fitted"], row["ci_low"], row["ci_high"], row["theory"], symbol=symbol,
                        windows=(row.get("sys_low"), row.get("sys_high")))
    return text + (f" \u00b7 {verdict}" if verdict else "")


_CORNERS = {"lower left": (0.03, 0.03, "left", "bottom", 1), "upper left": (0.03, 0.97, "left", "top", -1),
            "lower right": (0.97, 0.03, "right", "bottom", 1), "upper right": (0.97, 0.97, "right", "top", -1)}
_STACK_STEP = 0.085  # axes fraction between stacked annotations


def _stacked_text(ax: plt.Axes, text: str, loc: str, **kw) -> mpl.text.Text:
    x, y, ha, va, direction = _CORNERS[loc]
    stack = ax.__dict__.setdefault("_sketchlaw_stack", {})
    i = stack.get(loc, 0)
    stack[loc] = i + 1
    return ax.text(x, y + direction * i * _STACK_STEP, text, transform=ax.transAxes, ha=ha, va=va, zorder=10, **kw)


def annotate_slope(ax: plt.Axes, text: str, *, loc: str = "lower left", color: str = "black",
                   fontsize: float = 7.0) -> mpl.text.Text:
    """Print ``text`` in a corner of ``ax``; successive calls on one corner stack away from it."""
    return _stacked_text(ax, text, loc, fontsize=fontsize, color=color,
                         bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))


def annotate_fit(ax: plt.Axes, row: pd.Series | None, *, label: str = "", loc: str = "lower left",
                 symbol: str = "k", color: str = "black") -> mpl.text.Text:
    """:func:`slope_text` of an exponent row, prefixed by ``label``, in a corner of ``ax`` (grey if not fitted)."""
    return annotate_slope(ax, label + slope_text(row, symbol), loc=loc, color=color if is_fitted(row) else "0.4")


def note(ax: plt.Axes, text: str, *, loc: str = "center") -> mpl.text.Text:
    """Say on a panel what its inputs lack (e.g. "one M only: no contour"): grey text, centred or in a corner."""
    if loc == "center":
        return ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.35",
                       wrap=True, zorder=10)
    return _stacked_text(ax, text, loc, fontsize=7, color="0.4")


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
                                "Creator": "sketchlaw.plotting", "ModDate": None}
    if not os.environ.get("SOURCE_DATE_EPOCH"):
        pdf_meta["CreationDate"] = None

    # Freeze the layout once so the PNG, the PDF and any later save share it (constrained layout drifts).
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
        fig.set_layout_engine("none")

    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    save_kw = dict(bbox_inches="tight", pad_inches=0.04, facecolor="white")
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
