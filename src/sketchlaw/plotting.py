"""Plotting helpers for the figure notebooks (presentation layer only).

The notebooks in ``notebooks/`` are thin: they load the workflow's tables with :func:`load_table` /
:func:`load_exponents`, call one ``fig_*`` function from this module, write the figure with :func:`save_figure`
and display the matching ``table_*`` summary.  Nothing here simulates; everything is read from
``results/tables`` (each ``fig_*`` docstring lists the tables and columns it reads).

Conventions
-----------
* Exact expected risk (conditional on the sketch) is drawn as lines: the mean over sketch seeds.
* Monte Carlo results are drawn as points with error bars = standard deviation of the realized risk over trials
  (pooled over sketch seeds with the law of total variance, so it includes the sketch-to-sketch spread).
* Fitted slopes are read from ``exponents.csv`` and printed as ``k = −0.498 [−0.503, −0.492] (theory −0.5)``;
  the fit line is drawn over the fit window (column ``window``) at the held-fixed coordinate (column ``fixed``
  or a ``M=...`` / ``N=...`` token inside ``window``; default: the largest grid value).
* A missing table or column raises :class:`MissingTableError` / :class:`MissingColumnError` naming it.
* :func:`save_figure` is byte-deterministic: fixed DPI, no timestamps (PDF ``CreationDate`` removed unless
  ``SOURCE_DATE_EPOCH`` is set, in which case matplotlib uses it), provenance embedded as PNG text chunks and
  PDF Subject/Keywords.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from .theory import frontier_coordinates, sketch_approx_de

__all__ = [
    "DPI",
    "MissingTableError",
    "MissingColumnError",
    "MissingDataError",
    "Paths",
    "resolve_paths",
    "set_style",
    "loglog",
    "format_slope",
    "annotate_slope",
    "annotate_fit",
    "load_table",
    "load_exponents",
    "load_provenance",
    "require_columns",
    "find_exponent",
    "parse_window",
    "loglog_fit",
    "draw_fit_line",
    "pick_levels",
    "aggregate_exact",
    "aggregate_mc",
    "save_figure",
    "show_saved",
    "fig_risk_landscape",
    "fig_scaling_fits",
    "fig_appendix_monte_carlo",
    "fig_fit_diagnostics",
    "fig_source_condition",
    "fig_log_power_law",
    "fig_compute_optimal",
    "fig_variance_vs_model_size",
    "fig_stepsize",
    "table_risk_landscape",
    "table_exponents",
    "table_monte_carlo",
    "table_fit_diagnostics",
    "table_source_condition",
    "table_compute_frontier",
    "table_variance",
    "table_stepsize",
]

DPI = 200  #: resolution of every PNG written by :func:`save_figure`
MINUS = "\u2212"
PROVENANCE_REQUIRED = ("git_commit", "git_dirty", "config_hash")
PROVENANCE_OPTIONAL = ("lock_hash", "versions")  # embedded when present
_STAMP_GID = "sketchlaw-provenance-stamp"

# Columns each figure reads (also the contract reported to the workflow).
EXACT_COLUMNS = ["a", "M", "N", "N_eff", "sigma2", "sketch_seed", "risk", "reducible"]
MC_COLUMNS = ["mc_trials", "mc_mean", "mc_std"]
EXPONENT_COLUMNS = ["experiment", "a", "b", "variable", "fitted", "ci_low", "ci_high", "theory", "window", "method"]
EXPONENT_DISPLAY = [
    "experiment", "spectrum", "a", "b", "variable", "method", "fitted", "ci_low", "ci_high",
    "sys_low", "sys_high", "theory", "theory_finite", "p_value", "verdict", "window", "fixed", "flag",
]
DIAGNOSTIC_COLUMNS = ["experiment", "a", "variable", "kind", "x", "value"]
FRONTIER_COLUMNS = ["a", "compute", "M_star", "N_star", "reducible_star"]
VARIANCE_COLUMNS = ["a", "M", "N", "N_eff", "gamma", "sigma2", "sketch_seed", "method", "variance",
                    "mc_trials", "mc_mean", "mc_sem"]
STEPSIZE_COLUMNS = ["a", "M", "N", "N_eff", "gamma", "sigma2", "sketch_seed", "reducible", "gamma_max"]
METHOD_COLORS = {"sgd": "#1f77b4", "ols": "#d62728", "ridge": "#2ca02c"}
METHOD_LABELS = {"sgd": "one-pass SGD (exact)", "ols": "OLS", "ridge": "tuned ridge"}


# --------------------------------------------------------------------------------------------------------------
# errors and loading
# --------------------------------------------------------------------------------------------------------------


class TableError(RuntimeError):
    """Base class: an input table is absent or does not have the expected shape."""


class MissingTableError(TableError, FileNotFoundError):
    """A table file (``NAME.parquet`` or ``NAME.csv``) is absent from ``tables_dir``."""


class MissingColumnError(TableError, ValueError):
    """A table lacks columns a figure needs."""


class MissingDataError(TableError, ValueError):
    """A table has the columns but not the rows a figure needs (e.g. no Monte Carlo rows)."""


@dataclass(frozen=True)
class Paths:
    tables_dir: Path
    figures_dir: Path
    provenance_path: Path


def resolve_paths(tables_dir: str | os.PathLike, figures_dir: str | os.PathLike,
                  provenance_path: str | os.PathLike) -> Paths:
    """Resolve the three notebook parameters to absolute paths.

    Relative paths are taken relative to the working directory, which is the repository root when the workflow (or
    a user) runs ``papermill`` from there.  Only when the notebook is opened interactively from ``notebooks/`` (so
    the working directory is ``notebooks/`` and ``tables_dir`` does not exist there) are they taken relative to the
    parent directory instead.  All three share one base so they can never point into different trees.
    """
    cwd = Path.cwd()
    base = cwd
    t = Path(tables_dir)
    if not t.is_absolute() and not (cwd / t).exists() and cwd.name == "notebooks" and (cwd.parent / t).exists():
        base = cwd.parent

    def res(p: str | os.PathLike) -> Path:
        p = Path(p)
        return p if p.is_absolute() else (base / p)

    return Paths(res(tables_dir), res(figures_dir), res(provenance_path))


def require_columns(df: pd.DataFrame, columns: Iterable[str], table: str | None = None) -> None:
    """Raise :class:`MissingColumnError` naming the table and every missing column."""
    table = table or df.attrs.get("table", "table")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(
            f"{table} is missing column(s) {missing} needed by this figure "
            f"(present: {sorted(map(str, df.columns))})"
        )


def load_table(tables_dir: str | os.PathLike, name: str, required: Iterable[str] | None = None) -> pd.DataFrame:
    """Read ``tables_dir/NAME.parquet`` (or ``NAME`` itself when it ends in ``.csv`` / ``.parquet``).

    Raises :class:`MissingTableError` naming the file if absent, :class:`MissingColumnError` if a column in
    ``required`` is absent.  The table name is stored in ``df.attrs["table"]`` for later error messages.
    """
    fname = name if name.endswith((".parquet", ".csv")) else f"{name}.parquet"
    path = Path(tables_dir) / fname
    if not path.is_file():
        raise MissingTableError(
            f"table {fname!r} not found at {path.resolve()} - run the workflow first "
            f"(or pass '-p tables_dir DIR' to papermill; tables_dir={str(tables_dir)!r})"
        )
    df = pd.read_csv(path) if fname.endswith(".csv") else pd.read_parquet(path)
    df.attrs["table"] = fname
    if required is not None:
        require_columns(df, required, fname)
    return df


def load_exponents(tables_dir: str | os.PathLike) -> pd.DataFrame:
    """Read ``exponents.csv`` and check the columns the figures use."""
    df = load_table(tables_dir, "exponents.csv", required=EXPONENT_COLUMNS)
    df["method"] = df["method"].fillna("").astype(str)
    df["variable"] = df["variable"].astype(str)
    return df


def load_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """Read the workflow's provenance JSON (keys git_commit, git_dirty, config_hash, lock_hash, versions)."""
    path = Path(path)
    if not path.is_file():
        raise MissingTableError(
            f"provenance file not found at {path.resolve()} - the workflow writes it "
            f"(or pass '-p provenance_path FILE' to papermill)"
        )
    prov = json.loads(path.read_text())
    _check_provenance(prov, str(path))
    return prov


def _check_provenance(prov: Mapping[str, Any], where: str) -> None:
    if not isinstance(prov, Mapping):
        raise TableError(f"provenance {where} must be a JSON object, got {type(prov).__name__}")
    missing = [k for k in PROVENANCE_REQUIRED if k not in prov]
    if missing:
        raise MissingColumnError(f"provenance {where} is missing key(s) {missing}")


# --------------------------------------------------------------------------------------------------------------
# style and small helpers
# --------------------------------------------------------------------------------------------------------------


def set_style() -> None:
    """The one style every figure uses (seaborn 'paper' context, ticks, colour-blind palette, embedded TrueType)."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind", font="DejaVu Sans", font_scale=1.0)
    mpl.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": DPI,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.hashsalt": "sketchlaw",
        "axes.unicode_minus": True,
        "mathtext.fontset": "dejavusans",
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 9,
        "axes.labelsize": 9,
        "legend.fontsize": 7,
        "legend.frameon": False,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "lines.linewidth": 1.4,
        "errorbar.capsize": 1.5,
    })


def loglog(ax: plt.Axes, xlabel: str | None = None, ylabel: str | None = None) -> plt.Axes:
    """Log scale on both axes, major grid, optional labels."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="major")
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    return ax


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _fmt_signed(v: Any, digits: int = 3) -> str:
    if not _finite(v):
        return "n/a"
    s = f"{float(v):.{digits}f}"
    if s.startswith("-"):
        s = s[1:] if float(s) == 0 else MINUS + s[1:]
    return s


def _fmt_short(v: Any, digits: int = 3) -> str:
    """Up to ``digits`` decimals, trailing zeros stripped, Unicode minus: −0.5, −1, −0.333."""
    if not _finite(v):
        return "n/a"
    s = f"{float(v):.{digits}f}".rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s.replace("-", MINUS)


def fmt_num(v: float) -> str:
    """Compact number for titles: 2.0 -> '2', 1.5 -> '1.5'."""
    return _fmt_short(v, 3)


def _fmt_pow10(x: float) -> str:
    """Mathtext label like 1.2×10⁵."""
    if not _finite(x) or x <= 0:
        return str(x)
    e = int(math.floor(math.log10(x)))
    m = x / 10**e
    if round(m, 1) >= 10:
        m, e = m / 10, e + 1
    return rf"${m:.1f}\times10^{{{e}}}$" if abs(m - 1) > 0.05 else rf"$10^{{{e}}}$"


def _fmt_int(x: float) -> str:
    return f"{int(round(x)):d}"


def format_slope(fitted: Any, ci_low: Any, ci_high: Any, theory: Any = None, *, symbol: str = "k",
                 digits: int = 3) -> str:
    """``k = −0.498 [−0.503, −0.492] (theory −0.5)``; ``n/a`` for missing (NaN) numbers, incl. a theory that does not
    apply (e.g. the N_eff slope for b > a); no theory part at all if ``theory`` is None."""
    text = f"{symbol} = {_fmt_signed(fitted, digits)} [{_fmt_signed(ci_low, digits)}, {_fmt_signed(ci_high, digits)}]"
    if theory is not None:
        text += f" (theory {_fmt_short(theory, digits)})"
    return text


_LOCS = {
    "lower left": (0.03, 0.03, "left", "bottom", 1),
    "upper left": (0.03, 0.97, "left", "top", -1),
    "lower right": (0.97, 0.03, "right", "bottom", 1),
    "upper right": (0.97, 0.97, "right", "top", -1),
}
_STACK_STEP = 0.085  # axes fraction between stacked annotations


def annotate_slope(ax: plt.Axes, fitted: Any, ci_low: Any, ci_high: Any, theory: Any, *, label: str | None = None,
                   symbol: str = "k", loc: str = "lower left", color: str = "black",
                   fontsize: float = 7.0) -> mpl.text.Text:
    """Print ``k = −0.498 [−0.503, −0.492] (theory −0.5)`` in a corner of ``ax``.

    Successive calls on the same axes and corner stack (away from the corner), so several fits can be annotated.
    ``label`` is prepended (e.g. ``"vs N_eff: "``).
    """
    x, y, ha, va, direction = _LOCS[loc]
    stack = ax.__dict__.setdefault("_sketchlaw_slope_stack", {})
    i = stack.get(loc, 0)
    stack[loc] = i + 1
    text = (label or "") + format_slope(fitted, ci_low, ci_high, theory, symbol=symbol)
    return ax.text(x, y + direction * i * _STACK_STEP, text, transform=ax.transAxes, ha=ha, va=va, fontsize=fontsize,
                   color=color, zorder=10,
                   bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))


def _annotate_note(ax: plt.Axes, text: str, loc: str = "lower left") -> mpl.text.Text:
    """A grey note in the annotation stack of ``ax`` (used where a fit is absent)."""
    x, y, ha, va, direction = _LOCS[loc]
    stack = ax.__dict__.setdefault("_sketchlaw_slope_stack", {})
    i = stack.get(loc, 0)
    stack[loc] = i + 1
    return ax.text(x, y + direction * i * _STACK_STEP, text, transform=ax.transAxes, ha=ha, va=va, fontsize=7,
                   color="0.4")


def annotate_fit(ax: plt.Axes, row: pd.Series | None, *, label: str | None = None, loc: str = "lower left",
                 color: str = "black", symbol: str = "k") -> mpl.text.Text:
    """:func:`annotate_slope` from an ``exponents.csv`` row; prints 'no fit in exponents.csv' when row is None."""
    if row is None:
        return _annotate_note(ax, (label or "") + "no fit in exponents.csv", loc=loc)
    return annotate_slope(ax, row["fitted"], row["ci_low"], row["ci_high"], row["theory"], label=label, loc=loc,
                          color=color, symbol=symbol)


def pick_levels(values: Iterable[float], k: int = 4, include: Iterable[float] = ()) -> list[float]:
    """Up to ``k`` values spread evenly (in rank, i.e. in log for log grids) over the sorted unique ``values``,
    always including the smallest, the largest and every value in ``include``."""
    u = np.unique(np.asarray(list(values), dtype=float))
    u = u[np.isfinite(u)]
    if len(u) <= k:
        chosen = list(u)
    else:
        idx = np.unique(np.round(np.linspace(0, len(u) - 1, k)).astype(int))
        chosen = list(u[idx])
    for v in include:
        if _finite(v) and not np.any(np.isclose(chosen, v)):
            chosen.append(float(v))
    return sorted(float(c) for c in chosen)


def _level_colors(levels: Sequence[float], cmap: str = "viridis") -> dict[float, tuple]:
    """Colour per level, evenly spaced in log, avoiding the light end of the map."""
    levels = sorted(levels)
    cm = mpl.colormaps[cmap]
    top = {"viridis": 0.88, "magma": 0.78}.get(cmap, 0.85)
    if len(levels) == 1:
        return {levels[0]: cm(0.35)}
    lo, hi = math.log(levels[0]), math.log(levels[-1])
    return {v: cm(top * (math.log(v) - lo) / (hi - lo)) for v in levels}


def _match(series: pd.Series, value: float) -> np.ndarray:
    return np.isclose(series.to_numpy(dtype=float), float(value), rtol=1e-9, atol=0.0)


def _nearest(values: Iterable[float], target: float) -> float:
    u = np.unique(np.asarray(list(values), dtype=float))
    return float(u[np.argmin(np.abs(np.log(u) - math.log(target)))])


def _set_log_ylim(ax: plt.Axes, values: Iterable[float], pad: float = 1.6) -> None:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size:
        ax.set_ylim(v.min() / pad, v.max() * pad)


def _plain_log_ticks(ax: plt.Axes, axis: str, lo: float, hi: float, max_ticks: int = 7,
                     only_if_narrow: bool = False) -> None:
    """Readable plain-number ticks (1, 1.2, 1.5, 2, ...) on a log axis spanning about a decade or less
    (risk near σ², ln M, ln N_eff), where matplotlib's default log ticks would show at most one label.
    With ``only_if_narrow`` nothing changes when the range exceeds 1.5 decades."""
    if not (_finite(lo) and _finite(hi) and 0 < lo < hi):
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
# aggregation and fits
# --------------------------------------------------------------------------------------------------------------


def aggregate_exact(df: pd.DataFrame, by: Sequence[str], y: str) -> pd.DataFrame:
    """Mean, min and max of ``y`` over sketch seeds for each ``by`` group (columns y, y_lo, y_hi)."""
    g = df.groupby(list(by), sort=True)[y]
    out = pd.DataFrame({"y": g.mean(), "y_lo": g.min(), "y_hi": g.max()}).reset_index()
    return out


def aggregate_mc(df: pd.DataFrame, by: Sequence[str], *, subtract_sigma2: bool = False,
                 value: str = "mc_mean", std: str = "mc_std") -> pd.DataFrame:
    """Monte Carlo mean and std over trials, pooled over sketch seeds (weights = trials).

    ``err`` is the total standard deviation (law of total variance: mean within-seed variance plus the variance of
    the per-seed means), i.e. the std over all trials of all seeds.  Columns: by..., y, err, trials.
    """
    cols = list(by) + ["y", "err", "trials"]
    if "mc_trials" not in df.columns:
        return pd.DataFrame(columns=cols)
    mc = df[(df["mc_trials"].fillna(0) > 0) & df[value].notna()].copy()
    if mc.empty:
        return pd.DataFrame(columns=cols)
    m = mc[value].astype(float) - (mc["sigma2"].astype(float) if subtract_sigma2 else 0.0)
    w = mc["mc_trials"].astype(float)
    s = mc[std].astype(float).fillna(0.0)
    mc = mc.assign(_w=w, _wm=w * m, _wm2=w * m * m, _ws2=w * s * s)
    g = mc.groupby(list(by), sort=True)[["_w", "_wm", "_wm2", "_ws2"]].sum()
    mean = g["_wm"] / g["_w"]
    var = g["_ws2"] / g["_w"] + np.maximum(g["_wm2"] / g["_w"] - mean**2, 0.0)
    return pd.DataFrame({"y": mean, "err": np.sqrt(var), "trials": g["_w"]}).reset_index()


def _errorbar_log(ax: plt.Axes, x, y, err, **kw) -> None:
    """Error bars on a log y axis: the lower bar is clipped just above zero when std >= mean."""
    x, y, err = (np.asarray(v, dtype=float) for v in (x, y, err))
    ok = np.isfinite(y) & (y > 0)
    if not ok.any():
        return
    x, y, err = x[ok], y[ok], err[ok]
    lower = np.minimum(err, 0.999 * y)
    kw.setdefault("fmt", "o")
    kw.setdefault("ms", 3)
    kw.setdefault("elinewidth", 0.8)
    kw.setdefault("zorder", 4)
    ax.errorbar(x, y, yerr=np.vstack([lower, err]), **kw)


def loglog_fit(x, y) -> dict[str, float]:
    """Ordinary least squares of ln y on ln x; slope with a 95 % t-interval (NaN CI below 3 points)."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    n = lx.size
    if n < 2:
        return {"fitted": np.nan, "ci_low": np.nan, "ci_high": np.nan, "intercept": np.nan, "n": n}
    slope, intercept = np.polyfit(lx, ly, 1)
    lo = hi = np.nan
    if n >= 3:
        resid = ly - (intercept + slope * lx)
        se = math.sqrt(resid @ resid / (n - 2) / np.sum((lx - lx.mean()) ** 2))
        q = stats.t.ppf(0.975, n - 2)
        lo, hi = slope - q * se, slope + q * se
    return {"fitted": float(slope), "ci_low": float(lo), "ci_high": float(hi), "intercept": float(intercept), "n": n}


_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KV = re.compile(rf"([A-Za-z_][A-Za-z_0-9]*)\s*=\s*({_NUM})")


def parse_window(window: Any, fixed: Any = None) -> tuple[float, float, dict[str, float]]:
    """Parse a fit window.

    ``window`` holds two positive bounds in the units of the fitted variable, as ``"lo:hi"``, ``"[lo, hi]"`` or
    ``"lo-hi"``, optionally followed by the held-fixed coordinate(s) (``"1e3:1e6 @ M=1024"``, ``"1e3:1e6; N=1e7"``).
    ``fixed`` (the optional column of that name) may carry the fixed coordinate(s) instead (``"M=1024"``).
    Returns ``(lo, hi, {name: value})``; bounds are NaN when absent.
    """
    fixed_d: dict[str, float] = {}
    lo = hi = float("nan")
    for src in (fixed, window):
        if src is None or (isinstance(src, float) and math.isnan(src)):
            continue
        s = str(src)
        for k, v in _KV.findall(s):
            fixed_d.setdefault(k, float(v))
        if src is window:
            rest = _KV.sub(" ", s)
            nums = [float(v) for v in re.findall(_NUM, rest)]
            if len(nums) >= 2:
                lo, hi = min(nums[0], nums[1]), max(nums[0], nums[1])
    return lo, hi, fixed_d


def find_exponent(exps: pd.DataFrame | None, experiment: str, variable: str, a: float, b: float | None = None,
                  *, joint: bool = False, monte_carlo: bool = False) -> pd.Series | None:
    """The ``exponents.csv`` row for (experiment, variable, a[, b]), or None.

    ``joint=True`` selects methods containing "joint" (e.g. "joint additive fit"), preferring the best held-out form
    ("joint power_mean fit (best held-out form)"); ``monte_carlo=True`` selects
    methods naming Monte Carlo ("mc ...", "... monte carlo ...": fits to Monte Carlo means); otherwise the first
    remaining row in file order (fits to the exact curves, e.g. "window slope", "frontier slope").
    """
    if exps is None or exps.empty:
        return None
    m = (exps["experiment"].astype(str) == experiment) & (exps["variable"].astype(str) == variable)
    m &= _match(exps["a"], a)
    if b is not None and _finite(b):
        m &= _match(exps["b"], b)
    meth = exps["method"].fillna("").astype(str).str.lower()
    is_joint = meth.str.contains("joint").to_numpy()
    is_mc = meth.str.contains(r"(?:^|[\s_])mc(?:$|[\s_])|monte", regex=True).to_numpy()
    if joint:
        m &= is_joint
    else:
        m &= ~is_joint & (is_mc == monte_carlo)
    rows = exps[m]
    if rows.empty:
        return None
    if joint:  # the form chosen by held-out extrapolation, when the table has one, over the additive form
        best = rows[rows["method"].fillna("").astype(str).str.contains("best", case=False)]
        rows = best if not best.empty else rows
    return rows.iloc[0]


def _fit_geometry(row: pd.Series | None) -> tuple[float, float, dict[str, float]]:
    if row is None:
        return float("nan"), float("nan"), {}
    return parse_window(row.get("window"), row.get("fixed"))


def draw_fit_line(ax: plt.Axes, x, y, slope: float, lo: float, hi: float, intercept: float | None = None,
                  **kw) -> tuple[float, float] | None:
    """Draw ``exp(intercept)·x^slope`` over ``[lo, hi]``.

    Without ``intercept`` (natural log), it is the least-squares intercept at fixed slope on the points of ``(x, y)``
    inside the window, so the line sits on the curve it was fitted to.  Missing bounds default to the data range.
    Returns the (lo, hi) drawn, or None.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    if not _finite(slope) or x.size == 0:
        return None
    lo = float(lo) if _finite(lo) else float(x.min())
    hi = float(hi) if _finite(hi) else float(x.max())
    sel = (x >= lo * (1 - 1e-9)) & (x <= hi * (1 + 1e-9))
    if not _finite(intercept):
        if not sel.any():
            return None
        intercept = float(np.mean(np.log(y[sel]) - slope * np.log(x[sel])))
    xs = np.geomspace(lo, hi, 64)
    style = dict(color="black", ls="--", lw=1.2, zorder=6)
    style.update(kw)
    ax.plot(xs, np.exp(intercept) * xs**slope, **style)
    return lo, hi


def _row_intercept(row: pd.Series | None) -> float | None:
    if row is not None and "intercept" in row.index and _finite(row["intercept"]):
        return float(row["intercept"])
    return None


def _theory_slope(experiment: str, variable: str, a: float, b: float | None = None) -> float:
    """Fallback theory slope when exponents.csv has no row (used only for notebook-side MC fits)."""
    bb = b if (b is not None and _finite(b)) else a
    if variable == "M":
        return -(bb - 1)
    if variable == "N_eff":
        return -(bb - 1) / a
    return float("nan")


# --------------------------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------------------------


def _coerce_provenance(provenance: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    if isinstance(provenance, (str, os.PathLike)):
        return load_provenance(provenance)
    prov = dict(provenance)
    _check_provenance(prov, "mapping")
    return prov


def _dirty_str(v: Any) -> str:
    if isinstance(v, str):
        return "true" if v.strip().lower() in ("1", "true", "yes", "dirty") else "false"
    return "true" if bool(v) else "false"


def _ascii(s: str) -> str:
    return s.encode("ascii", "backslashreplace").decode("ascii")


def provenance_fields(provenance: Mapping[str, Any]) -> dict[str, str]:
    """The provenance as flat ASCII strings (what is embedded in the files)."""
    out = {
        "git_commit": str(provenance.get("git_commit", "")),
        "git_dirty": _dirty_str(provenance.get("git_dirty", False)),
        "config_hash": str(provenance.get("config_hash", "")),
        "lock_hash": str(provenance.get("lock_hash", "")),
        "versions": json.dumps(provenance.get("versions", {}), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=True, default=str),
    }
    return {k: _ascii(v) for k, v in out.items()}


def save_figure(fig: plt.Figure, figures_dir: str | os.PathLike, name: str,
                provenance: Mapping[str, Any] | str | os.PathLike, *, dpi: int = DPI,
                stamp: bool = True) -> tuple[Path, Path]:
    """Write ``figures_dir/NAME.png`` and ``figures_dir/NAME.pdf`` deterministically.

    * fixed DPI, ``bbox_inches="tight"``, no timestamps: the PDF ``CreationDate`` is removed (and no ``ModDate`` is
      written) unless ``SOURCE_DATE_EPOCH`` is set, in which case matplotlib sets it from that variable;
    * provenance (a mapping, or the path of the workflow's provenance JSON) embedded as PNG text chunks
      ``git_commit``, ``git_dirty``, ``config_hash``, ``lock_hash``, ``versions``, ``provenance`` (full JSON) and as
      PDF ``Subject`` / ``Keywords``;
    * ``stamp=True`` also prints a small grey line ``git <sha>[+dirty] · config <hash>`` in the figure corner.

    Returns the two paths.
    """
    prov = _coerce_provenance(provenance)
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

    # Freeze the layout: run the layout engine once, then fix the axes positions, so the PNG, the PDF and any later
    # save of the same figure share one layout (constrained layout is iterative and drifts between draws).
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
        fig.set_layout_engine("none")

    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    save_kw = dict(bbox_inches="tight", pad_inches=0.04, facecolor="white")
    fig.savefig(png, format="png", dpi=dpi, metadata=png_meta, **save_kw)
    fig.savefig(pdf, format="pdf", dpi=dpi, metadata=pdf_meta, **save_kw)
    return png, pdf


def show_saved(fig: plt.Figure, png: str | os.PathLike, width: int = 1100):
    """Close ``fig`` and return the written PNG for display in the notebook (shows exactly the saved file and avoids
    a second, slow render by the inline backend)."""
    from IPython.display import Image

    plt.close(fig)
    return Image(filename=str(png), width=width, alt=f"figure {Path(png).stem}")


# --------------------------------------------------------------------------------------------------------------
# shared panel builders
# --------------------------------------------------------------------------------------------------------------


def _a_values(df: pd.DataFrame, table: str) -> list[float]:
    vals = sorted(float(v) for v in df["a"].dropna().unique())
    if not vals:
        raise MissingDataError(f"{table} has no rows")
    return vals


def _experiment_name(df: pd.DataFrame, default: str) -> str:
    if "experiment" in df.columns and df["experiment"].notna().any():
        return str(df["experiment"].dropna().iloc[0])
    return default


def _sigma2(df: pd.DataFrame) -> float:
    return float(df["sigma2"].median())


def _curves_panel(ax: plt.Axes, df: pd.DataFrame, *, x: str, level: str, levels: Sequence[float], y: str,
                  mc_subtract_sigma2: bool | None, label_fmt, colors: Mapping[float, Any],
                  xtransform=None, mc: bool = True) -> list[float]:
    """Exact curves of ``y`` vs ``x`` (mean over seeds, seed range shaded) for each ``level`` value, plus Monte Carlo
    points with error bars.  Returns the plotted central values (for y-limits)."""
    shown: list[float] = []
    xt = xtransform or (lambda v: v)
    for lv in levels:
        sub = df[_match(df[level], lv)]
        if sub.empty:
            continue
        c = colors[lv]
        agg = aggregate_exact(sub, [x], y)
        ax.plot(xt(agg[x]), agg["y"], color=c, label=label_fmt(lv))
        if (agg["y_hi"] > agg["y_lo"] * 1.001).any():
            ax.fill_between(xt(agg[x]), agg["y_lo"], agg["y_hi"], color=c, alpha=0.18, lw=0)
        shown.extend(agg["y"].tolist())
        if mc and mc_subtract_sigma2 is not None and "mc_trials" in sub.columns:
            m = aggregate_mc(sub, [x], subtract_sigma2=mc_subtract_sigma2)
            if not m.empty:
                _errorbar_log(ax, xt(m[x]), m["y"], m["err"], color=c, mfc="white", mew=0.9)
                shown.extend(m["y"].tolist())
    return shown


def _fit_on_curve(ax: plt.Axes, df: pd.DataFrame, row: pd.Series | None, *, x: str, y: str, fixed_col: str,
                  fixed_value: float, xtransform=None, color: str = "black") -> None:
    lo, hi, _ = _fit_geometry(row)
    if row is None:
        return
    sub = df[_match(df[fixed_col], fixed_value)]
    agg = aggregate_exact(sub, [x], y)
    xt = xtransform or (lambda v: v)
    xv = np.asarray(xt(agg[x]), dtype=float)
    if xtransform is not None and _finite(hi) and xv.size and hi > 1.5 * xv.max():
        lo, hi = float(xt(lo)), float(xt(hi))  # window given in raw grid units
    draw_fit_line(ax, xv, agg["y"], float(row["fitted"]), lo, hi, _row_intercept(row), color=color)


def _fixed_value(row: pd.Series | None, df: pd.DataFrame, col: str) -> float:
    """The held-fixed coordinate of a fit: from ``fixed``/``window`` (M=..., N=..., N_eff=...) else the largest."""
    _, _, fx = _fit_geometry(row)
    if col == "M":
        v = fx.get("M")
        return _nearest(df["M"], v) if v is not None else float(df["M"].max())
    # col == "N": accept N or N_eff (or C for compute)
    if "N" in fx:
        return _nearest(df["N"], fx["N"])
    if "N_eff" in fx:
        neff = _nearest(df["N_eff"], fx["N_eff"])
        return float(df.loc[_match(df["N_eff"], neff), "N"].iloc[0])
    return float(df["N"].max())


def _complete(df: pd.DataFrame, col: str, across: str) -> pd.Series:
    """Values of ``col`` present for every value of ``across`` (e.g. the N of the main grid, not the extra N that only
    the Monte Carlo sub-grid's M carry); all values if none is complete."""
    per = df.groupby(col)[across].nunique()
    full = per[per == df[across].nunique()].index
    return pd.Series(full if len(full) else per.index, dtype=float)


def _neff_of(df: pd.DataFrame, n: float) -> float:
    return float(df.loc[_match(df["N"], n), "N_eff"].iloc[0])


def _scaling_pair(ax_n: plt.Axes, ax_m: plt.Axes, df: pd.DataFrame, exps: pd.DataFrame | None, *, experiment: str,
                  a: float, b: float | None, mc: bool = True, k: int = 4) -> None:
    """R − σ² vs N_eff at several M (ax_n) and vs M at several N (ax_m), fit lines and slope annotations."""
    row_n = find_exponent(exps, experiment, "N_eff", a, b)
    row_m = find_exponent(exps, experiment, "M", a, b)
    m_fix = _fixed_value(row_n, df, "M")
    n_fix = _fixed_value(row_m, df, "N")
    m_levels = pick_levels(_complete(df, "M", "N"), k, include=[m_fix])
    n_levels = pick_levels(_complete(df, "N", "M"), k, include=[n_fix])

    cm = _level_colors(m_levels, "viridis")
    shown = _curves_panel(ax_n, df, x="N_eff", level="M", levels=m_levels, y="reducible", mc_subtract_sigma2=True,
                          label_fmt=lambda v: f"M = {_fmt_int(v)}", colors=cm, mc=mc)
    _fit_on_curve(ax_n, df, row_n, x="N_eff", y="reducible", fixed_col="M", fixed_value=m_fix)
    loglog(ax_n, r"effective sample size $N_\mathrm{eff}$", r"$R - \sigma^2$")
    _set_log_ylim(ax_n, shown)
    annotate_fit(ax_n, row_n, label=f"fit at M = {_fmt_int(m_fix)}: ")
    ax_n.legend(loc="upper right", ncol=1)

    cn = _level_colors(n_levels, "magma")
    shown = _curves_panel(ax_m, df, x="M", level="N", levels=n_levels, y="reducible", mc_subtract_sigma2=True,
                          label_fmt=lambda v: r"$N_\mathrm{eff}$ = " + _fmt_pow10(_neff_of(df, v)), colors=cn, mc=mc)
    _fit_on_curve(ax_m, df, row_m, x="M", y="reducible", fixed_col="N", fixed_value=n_fix)
    loglog(ax_m, "model size M", r"$R - \sigma^2$")
    ax_m.set_xscale("log", base=2)
    _set_log_ylim(ax_m, shown)
    annotate_fit(ax_m, row_m, label=r"fit at $N_\mathrm{eff}$ = " + _fmt_pow10(_neff_of(df, n_fix)) + ": ")
    ax_m.legend(loc="upper right", ncol=1)


# --------------------------------------------------------------------------------------------------------------
# Figure 1: risk landscape
# --------------------------------------------------------------------------------------------------------------


def fig_risk_landscape(main: pd.DataFrame, exponents: pd.DataFrame | None = None) -> plt.Figure:
    """Fig. 1: risk vs N_eff coloured by M (top, exact lines + Monte Carlo points) and a filled contour map of
    log10(R − σ²) over (N_eff, M) with the balance line M = (γ N_eff)^{1/a} (bottom); one column per a.

    Reads main.parquet: a, M, N, N_eff, gamma, sigma2, sketch_seed, risk, reducible (+ mc_trials, mc_mean, mc_std).
    """
    require_columns(main, EXACT_COLUMNS + ["gamma"], main.attrs.get("table", "main.parquet"))
    a_vals = _a_values(main, "main.parquet")
    exp_name = _experiment_name(main, "main")
    fig, axes = plt.subplots(2, len(a_vals), figsize=(4.3 * len(a_vals) + 0.6, 7.2), layout="constrained",
                             squeeze=False)
    m_all = sorted(float(v) for v in main["M"].unique())
    norm = LogNorm(min(m_all), max(m_all))
    cmap = mpl.colormaps["viridis"]
    colors = {m: cmap(0.88 * norm(m)) for m in m_all}
    for j, a in enumerate(a_vals):
        d = main[_match(main["a"], a)]
        ax = axes[0, j]
        shown = _curves_panel(ax, d, x="N_eff", level="M", levels=m_all, y="risk", mc_subtract_sigma2=False,
                              label_fmt=lambda v: f"M = {_fmt_int(v)}", colors=colors)
        s2 = _sigma2(d)
        ax.axhline(s2, color="0.3", ls=":", lw=1)
        ax.text(0.02, s2, r"$\sigma^2$", transform=ax.get_yaxis_transform(), va="bottom", ha="left", fontsize=8,
                color="0.3")
        loglog(ax, r"effective sample size $N_\mathrm{eff}$", "expected risk R")
        top = max(v for v in shown if _finite(v)) * 1.05
        ax.set_ylim(s2 / 1.03, top)
        _plain_log_ticks(ax, "y", s2 / 1.03, top)
        ax.set_title(f"a = {fmt_num(a)}: risk vs $N_\\mathrm{{eff}}$ (lines exact, points Monte Carlo)")

        ax = axes[1, j]
        dc = d[np.isin(d["N"].astype(float), _complete(d, "N", "M"))]
        agg = aggregate_exact(dc, ["M", "N_eff"], "reducible")
        piv = agg.pivot(index="M", columns="N_eff", values="y").sort_index().sort_index(axis=1)
        zv = piv.to_numpy(dtype=float)
        z = np.log10(np.where(zv > 0, zv, np.nan))
        levels = MaxNLocator(14).tick_values(np.nanmin(z), np.nanmax(z))
        cs = ax.contourf(piv.columns.to_numpy(float), piv.index.to_numpy(float), z, levels=levels, cmap="mako")
        ax.contour(piv.columns.to_numpy(float), piv.index.to_numpy(float), z, levels=levels[::2], colors="white",
                   linewidths=0.3, alpha=0.6)
        gamma = float(d["gamma"].median())
        ne = np.geomspace(piv.columns.min(), piv.columns.max(), 100)
        mb = (gamma * ne) ** (1 / a)
        keep = (mb >= piv.index.min()) & (mb <= piv.index.max())
        ax.plot(ne[keep], mb[keep], color="white", ls="--", lw=1.3,
                label=r"$M = (\gamma N_\mathrm{eff})^{1/a}$ (bias = approx.)")
        loglog(ax, r"effective sample size $N_\mathrm{eff}$", "model size M")
        ax.set_yscale("log", base=2)
        ax.grid(False)
        ax.set_title(f"a = {fmt_num(a)}: $\\log_{{10}}(R - \\sigma^2)$")
        ax.legend(loc="upper left", labelcolor="white", fontsize=7)
        cb = fig.colorbar(cs, ax=ax, pad=0.01, fraction=0.05)
        cb.set_label(r"$\log_{10}(R - \sigma^2)$")
        for var, lab in (("M", "joint fit, M: "), ("N_eff", "joint fit, N_eff: ")):
            row = find_exponent(exponents, exp_name, var, a, joint=True)
            if row is not None:
                annotate_slope(ax, row["fitted"], row["ci_low"], row["ci_high"], row["theory"], label=lab,
                               loc="lower right")
    sm = ScalarMappable(norm=norm, cmap=_truncated("viridis", 0.88))
    cb = fig.colorbar(sm, ax=list(axes[0, :]), pad=0.01, fraction=0.04)
    cb.set_label("model size M")
    cb.set_ticks(m_all)
    cb.set_ticklabels([_fmt_int(m) for m in m_all])
    cb.minorticks_off()
    return fig


def _truncated(cmap: str, top: float) -> mpl.colors.Colormap:
    cm = mpl.colormaps[cmap]
    return mpl.colors.LinearSegmentedColormap.from_list(f"{cmap}_trunc", cm(np.linspace(0, top, 256)))


def table_risk_landscape(main: pd.DataFrame, k: int = 4) -> pd.DataFrame:
    """R − σ² (mean over sketch seeds) at a few M (rows) × N_eff (columns), per a: the numbers Fig. 1 plots."""
    require_columns(main, EXACT_COLUMNS, main.attrs.get("table", "main.parquet"))
    parts = []
    for a in _a_values(main, "main.parquet"):
        d = main[_match(main["a"], a)]
        ms = pick_levels(_complete(d, "M", "N"), k)
        ns = pick_levels(_complete(d, "N", "M"), k)
        d = d[np.isin(d["M"].astype(float), ms) & np.isin(d["N"].astype(float), ns)]
        agg = aggregate_exact(d, ["M", "N_eff"], "reducible")
        piv = agg.pivot(index="M", columns="N_eff", values="y")
        piv.index = pd.MultiIndex.from_product([[fmt_num(a)], piv.index.astype(int)], names=["a", "M"])
        piv.columns = [f"N_eff={v:.3g}" for v in piv.columns]
        parts.append(piv)
    return pd.concat(parts).map(lambda v: float(f"{v:.4g}") if _finite(v) else v)


def table_exponents(exponents: pd.DataFrame, experiment: str | None = None,
                    variables: Sequence[str] | None = None, method: str | None = None) -> pd.DataFrame:
    """The exponents.csv rows a figure prints (fitted, CI, systematic band, theory, verdict)."""
    e = exponents
    if experiment is not None:
        e = e[e["experiment"].astype(str) == experiment]
    if variables is not None:
        e = e[e["variable"].isin(list(variables))]
    if method is not None:
        e = e[e["method"].astype(str) == method]
    cols = [c for c in EXPONENT_DISPLAY if c in e.columns]
    return e[cols].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# Figure 2: scaling fits
# --------------------------------------------------------------------------------------------------------------


def fig_scaling_fits(main: pd.DataFrame, exponents: pd.DataFrame) -> plt.Figure:
    """Fig. 2: per a (rows), R − σ² vs N_eff at several M and vs M at several N_eff, exact lines + Monte Carlo
    points (error bars = std over trials), fit line over the fit window and the slope with its 95 % CI beside theory.

    Reads main.parquet (a, M, N, N_eff, sigma2, sketch_seed, reducible, mc_*) and exponents.csv rows
    experiment = main, variable ∈ {N_eff, M}, method ≠ joint.
    """
    require_columns(main, EXACT_COLUMNS, main.attrs.get("table", "main.parquet"))
    a_vals = _a_values(main, "main.parquet")
    exp_name = _experiment_name(main, "main")
    fig, axes = plt.subplots(len(a_vals), 2, figsize=(9.5, 3.6 * len(a_vals)), layout="constrained", squeeze=False)
    for i, a in enumerate(a_vals):
        d = main[_match(main["a"], a)]
        _scaling_pair(axes[i, 0], axes[i, 1], d, exponents, experiment=exp_name, a=a, b=None)
        axes[i, 0].set_title(f"a = {fmt_num(a)}: excess risk vs data")
        axes[i, 1].set_title(f"a = {fmt_num(a)}: excess risk vs model size")
    return fig


# --------------------------------------------------------------------------------------------------------------
# Appendix: Monte Carlo
# --------------------------------------------------------------------------------------------------------------


def _mc_fit_panel(ax: plt.Axes, mc: pd.DataFrame, exps: pd.DataFrame | None, *, experiment: str, a: float,
                  variable: str) -> dict[str, Any]:
    """Fit line + annotation for the Monte Carlo points of one panel.

    Uses an exponents.csv row fitted to Monte Carlo means (method naming "mc"/"monte carlo") when present.
    Otherwise a notebook-side OLS of ln(mean − σ²) on ln x over the Monte Carlo points inside the analysis' slope
    window (``sketchlaw.fit.n_slope_window`` / ``m_slope_window``: the regime the slope measures), at the largest
    fixed coordinate with ≥ 2 such points; labelled as such, with a 95 % t-interval.  Returns the fit used.
    """
    x, fixed_col = ("N_eff", "M") if variable == "N_eff" else ("M", "N")
    row_mc = find_exponent(exps, experiment, variable, a, monte_carlo=True)
    if row_mc is not None:
        lo, hi, _ = _fit_geometry(row_mc)
        fv = _fixed_value(row_mc, mc, fixed_col)
        pts = aggregate_mc(mc[_match(mc[fixed_col], fv)], [x], subtract_sigma2=True)
        draw_fit_line(ax, pts[x], pts["y"], float(row_mc["fitted"]), lo, hi, _row_intercept(row_mc))
        annotate_fit(ax, row_mc, label="MC fit: ")
        return dict(source="exponents.csv", **{k: row_mc[k] for k in ("fitted", "ci_low", "ci_high", "theory")})

    row_ex = find_exponent(exps, experiment, variable, a)
    theory = row_ex["theory"] if row_ex is not None else _theory_slope(experiment, variable, a)
    pts = aggregate_mc(mc, ["M", "N", "N_eff"], subtract_sigma2=True)
    margin = None
    try:
        from . import fit as _fit

        rule = _fit.n_slope_window if variable == "N_eff" else _fit.m_slope_window
        inside = np.asarray(rule(pts["M"].to_numpy(float), pts["N_eff"].to_numpy(float),
                                 float(mc["gamma"].median()), a), dtype=bool)
        margin = getattr(_fit, "WINDOW_MARGIN", None)
    except (ImportError, AttributeError):  # no window rule: the exact fit's x-range
        lo, hi, _ = _fit_geometry(row_ex)
        inside = np.ones(len(pts), dtype=bool)
        if _finite(lo) and _finite(hi):
            inside = ((pts[x] >= lo * (1 - 1e-9)) & (pts[x] <= hi * (1 + 1e-9))).to_numpy()
    sel = None
    for v in sorted(pts[fixed_col].unique(), reverse=True):
        cand = _match(pts[fixed_col], v) & inside
        if cand.sum() >= 2:
            sel, fv = cand, v
            break
    if sel is None:
        c = "" if margin is None else f"{margin:g}"
        regime = "" if margin is None else (rf" $M \geq {c}(\gamma N_\mathrm{{eff}})^{{1/a}}$" if variable == "N_eff"
                                            else rf" $\gamma N_\mathrm{{eff}} \geq {c}M^a$")
        _annotate_note(ax, f"no MC slope: < 2 Monte Carlo points in the slope window{regime}")
        return dict(source="none: < 2 Monte Carlo points in the slope window", fitted=np.nan, ci_low=np.nan,
                    ci_high=np.nan, theory=theory)
    xs, ys = pts.loc[sel, x].astype(float), pts.loc[sel, "y"].astype(float)
    fit = loglog_fit(xs, ys)
    if _finite(fit["fitted"]):
        draw_fit_line(ax, xs, ys, fit["fitted"], xs.min(), xs.max(), fit["intercept"])
    at = f"M = {_fmt_int(fv)}" if fixed_col == "M" else r"$N_\mathrm{eff}$ = " + _fmt_pow10(_neff_of(mc, fv))
    annotate_slope(ax, fit["fitted"], fit["ci_low"], fit["ci_high"], theory, label=f"OLS on MC means at {at}: ")
    return dict(source="notebook OLS on MC means", fitted=fit["fitted"], ci_low=fit["ci_low"],
                ci_high=fit["ci_high"], theory=theory)


def fig_appendix_monte_carlo(main: pd.DataFrame, exponents: pd.DataFrame | None = None) -> plt.Figure:
    """Appendix figure: Monte Carlo risk (points, error bars = std over trials) vs N_eff and vs M, then R − σ² vs
    N_eff and vs M with fitted slopes; one row per a.  Exact curves are drawn faintly for reference.

    Reads main.parquet rows with mc_trials > 0 (mc_mean, mc_std, mc_trials, sigma2, a, M, N, N_eff, risk, reducible)
    (+ gamma) and, if present, exponents.csv rows of experiment main whose method names Monte Carlo ("mc ...");
    otherwise the slope is an OLS fit on the Monte Carlo means inside the analysis' slope window (see
    :func:`_mc_fit_panel`).
    """
    table = main.attrs.get("table", "main.parquet")
    require_columns(main, EXACT_COLUMNS + MC_COLUMNS + ["gamma"], table)
    mc_all = main[main["mc_trials"].fillna(0) > 0]
    if mc_all.empty:
        raise MissingDataError(f"{table} has no Monte Carlo rows (mc_trials > 0)")
    a_vals = _a_values(mc_all, table)
    exp_name = _experiment_name(main, "main")
    fig, axes = plt.subplots(len(a_vals), 4, figsize=(16, 3.6 * len(a_vals)), layout="constrained", squeeze=False)
    for i, a in enumerate(a_vals):
        d = main[_match(main["a"], a)]
        mc = mc_all[_match(mc_all["a"], a)]
        # only grid lines that carry Monte Carlo, exact curves restricted to those
        m_levels = pick_levels(mc["M"], 4)
        n_levels = pick_levels(mc["N"], 4)
        dm = d[np.isin(d["N"].astype(float), mc["N"].unique())]  # exact twins of the Monte Carlo points
        dn = d[(d["M"] >= mc["M"].min()) & (d["M"] <= mc["M"].max())]
        cm = _level_colors(m_levels, "viridis")
        cn = _level_colors(n_levels, "magma")
        for col, (y, sub2) in enumerate((("risk", False), ("risk", False), ("reducible", True), ("reducible", True))):
            ax = axes[i, col]
            vs_n = col in (0, 2)
            shown: list[float] = []
            levels, colors, x, level = ((m_levels, cm, "N_eff", "M") if vs_n else (n_levels, cn, "M", "N"))
            for lv in levels:
                src = dm if vs_n else dn
                sub = src[_match(src[level], lv)]
                agg = aggregate_exact(sub, [x], y)
                ax.plot(agg[x], agg["y"], color=colors[lv], alpha=0.35, lw=1)
                pts = aggregate_mc(sub, [x], subtract_sigma2=sub2)
                lab = f"M = {_fmt_int(lv)}" if vs_n else r"$N_\mathrm{eff}$ = " + _fmt_pow10(_neff_of(d, lv))
                _errorbar_log(ax, pts[x], pts["y"], pts["err"], color=colors[lv], label=lab)
                shown.extend(pts["y"].tolist())
            ylab = "Monte Carlo risk R" if not sub2 else r"Monte Carlo $R - \sigma^2$"
            loglog(ax, r"$N_\mathrm{eff}$" if vs_n else "model size M", ylab)
            if not vs_n:
                ax.set_xscale("log", base=2)
            else:
                _plain_log_ticks(ax, "x", float(mc["N_eff"].min()), float(mc["N_eff"].max()), only_if_narrow=True)
            if sub2:
                _set_log_ylim(ax, shown, pad=2.0)
            else:
                s2 = _sigma2(d)
                top = max(v for v in shown if _finite(v)) * 1.15
                ax.set_ylim(s2 / 1.03, top)
                _plain_log_ticks(ax, "y", s2 / 1.03, top)
            what = "risk" if not sub2 else r"$R - \sigma^2$"
            ax.set_title(f"a = {fmt_num(a)}: {what} vs " + (r"$N_\mathrm{eff}$" if vs_n else "M"))
            if sub2:
                _mc_fit_panel(ax, mc, exponents, experiment=exp_name, a=a, variable="N_eff" if vs_n else "M")
            else:
                ax.axhline(_sigma2(d), color="0.3", ls=":", lw=1)
            ax.legend(loc="upper right")
    return fig


def table_monte_carlo(main: pd.DataFrame) -> pd.DataFrame:
    """Monte Carlo points of the appendix figure: mean, std over trials, trials, and the exact risk beside them."""
    require_columns(main, EXACT_COLUMNS + MC_COLUMNS, main.attrs.get("table", "main.parquet"))
    mc = main[main["mc_trials"].fillna(0) > 0]
    keep = np.zeros(len(mc), dtype=bool)
    for a in mc["a"].unique():  # the plotted lines only: a few M × a few N per a
        sa = _match(mc["a"], a)
        ms, ns = pick_levels(mc.loc[sa, "M"], 4), pick_levels(mc.loc[sa, "N"], 4)
        keep |= sa & np.isin(mc["M"].astype(float), ms) & np.isin(mc["N"].astype(float), ns)
    mc = mc[keep]
    pts = aggregate_mc(mc, ["a", "M", "N", "N_eff"])
    ex = aggregate_exact(mc, ["a", "M", "N", "N_eff"], "risk")[["a", "M", "N", "N_eff", "y"]]
    out = pts.merge(ex.rename(columns={"y": "exact_risk"}), on=["a", "M", "N", "N_eff"])
    out = out.rename(columns={"y": "mc_mean", "err": "mc_std"})
    out["z"] = (out["mc_mean"] - out["exact_risk"]) / (out["mc_std"] / np.sqrt(out["trials"]))
    return out.round({"N_eff": 1, "mc_mean": 5, "mc_std": 5, "exact_risk": 5, "z": 2})


# --------------------------------------------------------------------------------------------------------------
# Fit diagnostics
# --------------------------------------------------------------------------------------------------------------

_DIAG_KINDS = ("residual", "local_slope", "window_start", "bootstrap")
_DIAG_TITLES = {
    "residual": "joint-fit residuals",
    "local_slope": "local slope along the grid",
    "window_start": "slope vs fit-window start",
    "bootstrap": "bootstrap distribution",
}


def fig_fit_diagnostics(diag: pd.DataFrame, exponents: pd.DataFrame | None = None, experiment: str = "main"
                        ) -> plt.Figure:
    """Rows: joint-fit residuals, local slopes vs size (should approach theory), slope vs window start, bootstrap
    distributions; columns: (a, variable) for variable ∈ {M, N_eff}.  Theory dashed red, fitted dotted black.

    Reads fit_diagnostics.parquet (experiment, a, variable, kind, x, value; optional fixed) for ``experiment`` and
    exponents.csv for the fitted values / theory.
    * local_slope rows: one curve per ``fixed`` value (the held coordinate; up to four shown, the largest always).
    * residual rows, ``value`` = ln R_obs − ln R_fit: either ``variable`` = M / N_eff with ``x`` that coordinate, or
      (the workflow's form) ``variable`` = "joint" with ``fixed`` = M and ``x`` = N_eff — then the N_eff column
      shows residual vs N_eff per M and the M column residual vs M per N_eff.
    """
    table = diag.attrs.get("table", "fit_diagnostics.parquet")
    require_columns(diag, DIAGNOSTIC_COLUMNS, table)
    d = diag[diag["experiment"].astype(str) == experiment]
    if d.empty:
        raise MissingDataError(f"{table} has no rows with experiment == {experiment!r}")
    pairs = sorted({(float(a), str(v)) for a, v in zip(d["a"], d["variable"]) if str(v) in ("M", "N_eff")})
    if not pairs:
        raise MissingDataError(f"{table} has no rows with variable in ('M', 'N_eff') for {experiment!r}")
    fig, axes = plt.subplots(4, len(pairs), figsize=(3.3 * len(pairs) + 0.4, 11), layout="constrained",
                             squeeze=False)
    for j, (a, var) in enumerate(pairs):
        dd = d[_match(d["a"], a) & (d["variable"].astype(str) == var)]
        row = find_exponent(exponents, experiment, var, a)
        theory = row["theory"] if row is not None else np.nan
        fitted = row["fitted"] if row is not None else np.nan
        xlab = "model size M" if var == "M" else r"$N_\mathrm{eff}$"
        for i, kind in enumerate(_DIAG_KINDS):
            ax = axes[i, j]
            k = dd[dd["kind"].astype(str) == kind].sort_values("x")
            if kind == "residual" and k.empty:  # the joint fit's residuals are stored once, variable "joint"
                r = d[_match(d["a"], a) & (d["kind"].astype(str) == "residual")]
                k = r[~r["variable"].astype(str).isin(["M", "N_eff"])]
                if "fixed" in k.columns and k["fixed"].notna().all():
                    k = k.assign(_M=k["fixed"].astype(float), _N_eff=k["x"].astype(float))
                else:
                    k = k.iloc[0:0]
            ax.set_title(f"a = {fmt_num(a)}, {var}: {_DIAG_TITLES[kind]}")
            if k.empty:
                ax.text(0.5, 0.5, f"no '{kind}' rows", transform=ax.transAxes, ha="center", va="center",
                        color="0.4")
                continue
            if kind == "residual":
                _residual_panel(ax, k, var)
                ax.axhline(0, color="black", lw=0.8)
                ax.set_xscale("log", base=2 if var == "M" else 10)
                ax.set_xlabel(xlab)
                ax.set_ylabel(r"$\ln R_\mathrm{obs} - \ln R_\mathrm{fit}$")
                lim = float(np.nanmax(np.abs(k["value"]))) * 1.2 or 1.0
                ax.set_ylim(-lim, lim)
            elif kind in ("local_slope", "window_start"):
                fixed_vals = k["fixed"].dropna().unique() if "fixed" in k.columns else []
                if kind == "local_slope" and len(fixed_vals) > 1:
                    levels = pick_levels(fixed_vals, 4)
                    colors = _level_colors(levels, "viridis" if var == "N_eff" else "magma")
                    held = "M" if var == "N_eff" else "N"
                    for lv in levels:
                        kk = k[_match(k["fixed"], lv)]
                        ax.plot(kk["x"], kk["value"], "o-", ms=2.5, lw=1.1, color=colors[lv],
                                label=f"{held} = " + (_fmt_int(lv) if held == "M" else _fmt_pow10(lv)))
                else:
                    ax.plot(k["x"], k["value"], "o-", ms=3, color="C0", label="diagnostic")
                ax.set_xscale("log", base=2 if var == "M" else 10)
                ax.set_xlabel(xlab if kind == "local_slope" else f"window start ({var})")
                ax.set_ylabel("slope")
                if _finite(theory):
                    ax.axhline(theory, color="C3", ls="--", lw=1.2, label=f"theory {_fmt_short(theory)}")
                if _finite(fitted):
                    ax.axhline(fitted, color="black", ls=":", lw=1.2, label=f"fitted {_fmt_signed(fitted)}")
                ax.legend(loc="best", fontsize=6)
            else:
                sns.histplot(k["value"], ax=ax, stat="density", bins=30, color="C0", alpha=0.5, edgecolor="none")
                if row is not None and _finite(row["ci_low"]) and _finite(row["ci_high"]):
                    ax.axvspan(row["ci_low"], row["ci_high"], color="0.5", alpha=0.2, lw=0, label="95 % CI")
                if _finite(theory):
                    ax.axvline(theory, color="C3", ls="--", lw=1.2, label="theory")
                if _finite(fitted):
                    ax.axvline(fitted, color="black", ls=":", lw=1.2, label="fitted")
                ax.set_xlabel("fitted slope")
                ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.9))
                annotate_fit(ax, row, loc="upper left", label="")
                ax.set_ylim(top=ax.get_ylim()[1] * 1.6)
    return fig


def _residual_panel(ax: plt.Axes, k: pd.DataFrame, var: str) -> None:
    """Residuals vs the column's coordinate; per level of the other coordinate when both are known."""
    if "_M" not in k.columns:
        ax.scatter(k["x"], k["value"], s=8, color="C0", alpha=0.7, lw=0)
        return
    xcol, other = ("_N_eff", "_M") if var == "N_eff" else ("_M", "_N_eff")
    levels = pick_levels(k[other], 5)
    colors = _level_colors(levels, "viridis" if other == "_M" else "magma")
    for lv in levels:
        kk = k[_match(k[other], lv)].sort_values(xcol)
        lab = f"M = {_fmt_int(lv)}" if other == "_M" else r"$N_\mathrm{eff}$ = " + _fmt_pow10(lv)
        ax.plot(kk[xcol], kk["value"], "o-", ms=2.5, lw=0.9, color=colors[lv], label=lab)
    ax.legend(loc="best", fontsize=6)


def table_fit_diagnostics(diag: pd.DataFrame, exponents: pd.DataFrame | None = None, experiment: str = "main"
                          ) -> pd.DataFrame:
    """Per (a, variable, kind): number of points, and the summary the panel shows (last local slope, bootstrap
    mean/std/2.5 %/97.5 %, max |residual|) beside the fitted and theory values."""
    require_columns(diag, DIAGNOSTIC_COLUMNS, diag.attrs.get("table", "fit_diagnostics.parquet"))
    d = diag[diag["experiment"].astype(str) == experiment]
    rows = []
    for (a, var, kind), g in d.groupby(["a", "variable", "kind"], sort=True):
        g = g.sort_values("x")
        v = g["value"].astype(float)
        r = find_exponent(exponents, experiment, str(var), float(a))
        rec = {"a": a, "variable": var, "kind": kind, "n": len(g),
               "fitted": r["fitted"] if r is not None else np.nan,
               "theory": r["theory"] if r is not None else np.nan}
        if kind == "bootstrap":
            rec.update(mean=v.mean(), std=v.std(), q025=v.quantile(0.025), q975=v.quantile(0.975))
        elif kind == "residual":
            rec.update(max_abs=v.abs().max(), rms=float(np.sqrt((v**2).mean())))
        else:
            if "fixed" in g.columns and g["fixed"].notna().any():
                g = g[_match(g["fixed"].fillna(-1), g["fixed"].max())]
                v = g["value"].astype(float)
                rec.update(fixed=g["fixed"].iloc[0], n=len(g))
            rec.update(first=v.iloc[0], last=v.iloc[-1], x_last=g["x"].iloc[-1])
        rows.append(rec)
    return pd.DataFrame(rows).round(4)


# --------------------------------------------------------------------------------------------------------------
# Source condition
# --------------------------------------------------------------------------------------------------------------


def fig_source_condition(src: pd.DataFrame, exponents: pd.DataFrame | None = None) -> plt.Figure:
    """Source condition: one row per b.  R − σ² vs N_eff at several M and vs M at several N_eff with fits vs theory,
    and the bias / variance / approximation split vs N_eff at the largest M, with the region where the variance
    exceeds 10 % of R − σ² shaded and the bias = variance crossing marked.

    Reads source.parquet (a, b, M, N, N_eff, sigma2, sketch_seed, reducible, approx, bias, variance, mc_*) and
    exponents.csv rows experiment = source (per a, b), variable ∈ {N_eff, M}.
    """
    table = src.attrs.get("table", "source.parquet")
    require_columns(src, EXACT_COLUMNS + ["b", "approx", "bias", "variance"], table)
    exp_name = _experiment_name(src, "source")
    combos = sorted({(float(a), float(b)) for a, b in zip(src["a"], src["b"])})
    if not combos:
        raise MissingDataError(f"{table} has no rows")
    fig, axes = plt.subplots(len(combos), 3, figsize=(14, 3.7 * len(combos)), layout="constrained", squeeze=False)
    for i, (a, b) in enumerate(combos):
        d = src[_match(src["a"], a) & _match(src["b"], b)]
        _scaling_pair(axes[i, 0], axes[i, 1], d, exponents, experiment=exp_name, a=a, b=b)
        rel = "b < a" if b < a else ("b > a" if b > a else "b = a")
        axes[i, 0].set_title(f"a = {fmt_num(a)}, b = {fmt_num(b)} ({rel}): vs data")
        axes[i, 1].set_title(f"a = {fmt_num(a)}, b = {fmt_num(b)} ({rel}): vs model size")
        ax = axes[i, 2]
        m_fix = float(d["M"].max())
        dm = d[_match(d["M"], m_fix)]
        parts = {}
        for comp, color, lab in (("approx", "C2", "approximation"), ("bias", "C0", "bias"),
                                 ("variance", "C3", "variance"), ("reducible", "black", r"$R - \sigma^2$")):
            agg = aggregate_exact(dm, ["N_eff"], comp)
            parts[comp] = agg
            ax.plot(agg["N_eff"], agg["y"], color=color, label=lab, ls="-" if comp != "reducible" else ":")
        ne = parts["variance"]["N_eff"].to_numpy(float)
        var = parts["variance"]["y"].to_numpy(float)
        bias = parts["bias"]["y"].to_numpy(float)
        red = parts["reducible"]["y"].to_numpy(float)
        big = var >= 0.1 * red
        if big.any():
            ax.axvspan(ne[big].min(), ne.max(), color="C3", alpha=0.08, lw=0, label="variance ≥ 10 % of R − σ²")
        cross = np.nonzero(np.diff(np.sign(var - bias)) != 0)[0]
        if cross.size:
            c = cross[0]
            # log-linear interpolation of the crossing point
            f0, f1 = math.log(var[c] / bias[c]), math.log(var[c + 1] / bias[c + 1])
            t = f0 / (f0 - f1)
            nx = math.exp(math.log(ne[c]) + t * (math.log(ne[c + 1]) - math.log(ne[c])))
            ax.axvline(nx, color="C3", ls="--", lw=1)
            ax.text(nx, 0.97, " variance = bias\n N_eff ≈ " + f"{nx:.3g}", transform=ax.get_xaxis_transform(),
                    va="top", ha="left", fontsize=7, color="C3")
        loglog(ax, r"$N_\mathrm{eff}$", "error term")
        allv = np.concatenate([parts[c]["y"].to_numpy(float) for c in parts])
        # the bias falls super-exponentially once SGD has fitted every sketched direction: show four decades
        # below the smallest R − σ² rather than the bias's descent to 1e-50
        floor = 1e-4 * float(np.nanmin(red[red > 0])) if (red > 0).any() else 0.0
        _set_log_ylim(ax, allv[allv >= floor])
        ax.set_title(f"a = {fmt_num(a)}, b = {fmt_num(b)}: split at M = {_fmt_int(m_fix)}  "
                     + r"(Var/Bias $\propto N_\mathrm{eff}^{(b-a)/a}$)")
        ax.legend(loc="best")
    return fig


def table_source_condition(src: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The split panel's numbers: approx, bias, variance, variance / bias at the largest M, a few N_eff, per b."""
    require_columns(src, EXACT_COLUMNS + ["b", "approx", "bias", "variance"], src.attrs.get("table", "source.parquet"))
    rows = []
    for (a, b), d in src.groupby(["a", "b"], sort=True):
        m_fix = d["M"].max()
        dm = d[_match(d["M"], m_fix)]
        ns = pick_levels(dm["N"], k)
        dm = dm[np.isin(dm["N"].astype(float), ns)]
        g = dm.groupby("N_eff", sort=True)[["approx", "bias", "variance", "reducible"]].mean().reset_index()
        g.insert(0, "M", int(m_fix))
        g.insert(0, "b", b)
        g.insert(0, "a", a)
        g["variance/bias"] = g["variance"] / g["bias"]
        rows.append(g)
    return pd.concat(rows, ignore_index=True).map(lambda v: float(f"{v:.4g}") if isinstance(v, float) else v)


# --------------------------------------------------------------------------------------------------------------
# Log power law
# --------------------------------------------------------------------------------------------------------------


def fig_log_power_law(lp: pd.DataFrame, exponents: pd.DataFrame | None = None) -> plt.Figure:
    """Log power law: R − σ² vs ln M at several N_eff and vs ln N_eff at several M on log-log axes (a straight line of
    slope −(a−1) is the log^{1−a} rate); one row per a; fit lines over the window and slopes vs theory.

    Reads logpower.parquet (a, M, N, N_eff, sigma2, sketch_seed, reducible, mc_*) and exponents.csv rows
    experiment = logpower, variable ∈ {log_M, log_N_eff}; the window is in units of ln M / ln N_eff (bounds larger
    than the ln range are taken as raw M / N_eff and logged).
    """
    table = lp.attrs.get("table", "logpower.parquet")
    require_columns(lp, EXACT_COLUMNS, table)
    a_vals = _a_values(lp, table)
    exp_name = _experiment_name(lp, "logpower")
    fig, axes = plt.subplots(len(a_vals), 2, figsize=(9.5, 3.6 * len(a_vals)), layout="constrained", squeeze=False)
    for i, a in enumerate(a_vals):
        d = lp[_match(lp["a"], a)]
        row_m = find_exponent(exponents, exp_name, "log_M", a)
        row_n = find_exponent(exponents, exp_name, "log_N_eff", a)
        n_fix = _fixed_value(row_m, d, "N")
        m_fix = _fixed_value(row_n, d, "M")
        ax = axes[i, 0]
        n_levels = pick_levels(_complete(d, "N", "M"), 4, include=[n_fix])
        cn = _level_colors(n_levels, "magma")
        shown = _curves_panel(ax, d, x="M", level="N", levels=n_levels, y="reducible", mc_subtract_sigma2=True,
                              label_fmt=lambda v: r"$N_\mathrm{eff}$ = " + _fmt_pow10(_neff_of(d, v)), colors=cn,
                              xtransform=np.log)
        _fit_on_curve(ax, d, row_m, x="M", y="reducible", fixed_col="N", fixed_value=n_fix, xtransform=np.log)
        # Finite-size theory: the deterministic equivalent of E Approx, which R − σ² approaches at large N_eff.
        ms = np.sort(d["M"].unique()).astype(float)
        ax.plot(np.log(ms), sketch_approx_de("logpower", a, ms), color="0.25", ls=":", lw=1.6,
                label="E Approx, deterministic equivalent")
        loglog(ax, r"$\ln M$ (log scale)", r"$R - \sigma^2$")
        lm = np.log(d["M"].astype(float))
        _plain_log_ticks(ax, "x", lm.min(), lm.max())
        _set_log_ylim(ax, shown)
        annotate_fit(ax, row_m, label=r"fit at $N_\mathrm{eff}$ = " + _fmt_pow10(_neff_of(d, n_fix)) + ": ")
        ax.legend(loc="upper right")
        ax.set_title(f"a = {fmt_num(a)}: vs ln M (theory slope −(a−1))")

        ax = axes[i, 1]
        m_levels = pick_levels(_complete(d, "M", "N"), 4, include=[m_fix])
        cm = _level_colors(m_levels, "viridis")
        shown = _curves_panel(ax, d, x="N_eff", level="M", levels=m_levels, y="reducible", mc_subtract_sigma2=True,
                              label_fmt=lambda v: f"M = {_fmt_int(v)}", colors=cm, xtransform=np.log)
        _fit_on_curve(ax, d, row_n, x="N_eff", y="reducible", fixed_col="M", fixed_value=m_fix, xtransform=np.log)
        loglog(ax, r"$\ln N_\mathrm{eff}$ (log scale)", r"$R - \sigma^2$")
        ln = np.log(d["N_eff"].astype(float))
        _plain_log_ticks(ax, "x", ln.min(), ln.max())
        _set_log_ylim(ax, shown)
        annotate_fit(ax, row_n, label=f"fit at M = {_fmt_int(m_fix)}: ")
        ax.legend(loc="upper right")
        ax.set_title(f"a = {fmt_num(a)}: vs ln $N_\\mathrm{{eff}}$ (theory slope −(a−1))")
    return fig


# --------------------------------------------------------------------------------------------------------------
# Compute-optimal allocation
# --------------------------------------------------------------------------------------------------------------


def _draw_frontier_fit(ax: plt.Axes, fr: pd.DataFrame, ycol: str, slope: float, a: float, lo: float, hi: float
                       ) -> None:
    """The fitted frontier law in the form it was regressed (analysis.compute_exponents): M*, R* − σ² ∝
    (C/log C)^e and N* ∝ C^e·(log C)^(1/(a+1)); the constant by least squares in log on the fitted budgets."""
    def shape(c):
        x, factor = frontier_coordinates(ycol, a, c)
        return x ** slope * factor

    pts = fr[fr["interior"].astype(bool)] if "interior" in fr.columns else fr
    c, y = pts["compute"].to_numpy(float), pts[ycol].to_numpy(float)
    lo = lo if _finite(lo) else c.min()
    hi = hi if _finite(hi) else c.max()
    sel = (c >= lo * (1 - 1e-9)) & (c <= hi * (1 + 1e-9)) & (y > 0)
    if not _finite(slope) or not sel.any():
        return
    log_const = float(np.mean(np.log(y[sel]) - np.log(shape(c[sel]))))
    grid = np.geomspace(lo, hi, 60)
    ax.plot(grid, np.exp(log_const) * shape(grid), color="black", ls="--", lw=1.2, zorder=6, label="fitted law")


def fig_compute_optimal(comp: pd.DataFrame, frontier: pd.DataFrame, exponents: pd.DataFrame | None = None
                        ) -> plt.Figure:
    """Compute-optimal allocation, one row per a: R − σ² vs compute C = M·N for each M (iso-M curves) with the
    frontier; M* vs C; N* vs C; fitted exponents vs theory 1/(a+1), a/(a+1), −(a−1)/(a+1).

    Reads compute.parquet (a, M, N, compute, sigma2, sketch_seed, reducible), compute_frontier.csv (a, compute,
    M_star, N_star, reducible_star; optional ``interior``: False points are drawn hollow) and exponents.csv rows experiment = compute, variable ∈ {M_star, N_star,
    reducible_star} (window in units of C).
    """
    ct = comp.attrs.get("table", "compute.parquet")
    require_columns(comp, ["a", "M", "N", "compute", "sigma2", "sketch_seed", "reducible"], ct)
    require_columns(frontier, FRONTIER_COLUMNS, frontier.attrs.get("table", "compute_frontier.csv"))
    a_vals = _a_values(comp, ct)
    exp_name = _experiment_name(comp, "compute")
    fig, axes = plt.subplots(len(a_vals), 3, figsize=(14, 3.8 * len(a_vals)), layout="constrained", squeeze=False)
    m_all = sorted(float(v) for v in comp["M"].unique())
    norm = LogNorm(min(m_all), max(m_all))
    cmap = _truncated("viridis", 0.88)
    for i, a in enumerate(a_vals):
        d = comp[_match(comp["a"], a)]
        fr = frontier[_match(frontier["a"], a)].sort_values("compute")
        if fr.empty:
            raise MissingDataError(f"compute_frontier.csv has no rows for a = {fmt_num(a)}")
        ax = axes[i, 0]
        shown = []
        for m in m_all:
            agg = aggregate_exact(d[_match(d["M"], m)], ["compute"], "reducible")
            ax.plot(agg["compute"], agg["y"], color=cmap(norm(m)), lw=1.1)
            shown.extend(agg["y"].tolist())
        ax.plot(fr["compute"], fr["reducible_star"], "o-", color="C3", ms=3.5, lw=1.6, label="frontier (best M)",
                zorder=5)
        rows = {v: find_exponent(exponents, exp_name, v, a) for v in ("reducible_star", "M_star", "N_star")}
        for var, axx, ycol, ylab in (("reducible_star", ax, "reducible_star", r"$R - \sigma^2$"),
                                     ("M_star", axes[i, 1], "M_star", r"compute-optimal model size $M^*$"),
                                     ("N_star", axes[i, 2], "N_star", r"compute-optimal data $N^*$")):
            row = rows[var]
            if var != "reducible_star":
                axx.plot(fr["compute"], fr[ycol], "o-", color="C3" if var == "M_star" else "C0", ms=3.5,
                         label=f"{var.replace('_star', '*')} on the frontier")
            if "interior" in fr.columns and (~fr["interior"].astype(bool)).any():  # optimum at the M-grid edge
                edge = fr[~fr["interior"].astype(bool)]
                axx.plot(edge["compute"], edge[ycol], "o", ms=5, mfc="white", mec="0.3", zorder=7,
                         label="optimum at the M-grid edge (not fitted)")
            if row is not None:
                _draw_frontier_fit(axx, fr, ycol, float(row["fitted"]), a, *_fit_geometry(row)[:2])
            sym = {"reducible_star": "e_R", "M_star": "e_M", "N_star": "e_N"}[var]
            annotate_fit(axx, row, symbol=sym, loc="lower left" if var == "reducible_star" else "upper left")
            loglog(axx, "compute C = M·N", ylab)
            axx.legend(loc="upper right" if var == "reducible_star" else "lower right")
        _set_log_ylim(ax, shown + fr["reducible_star"].tolist(), pad=1.3)
        axes[i, 1].set_yscale("log", base=2)
        ax.set_title(f"a = {fmt_num(a)}: iso-M curves and the frontier")
        axes[i, 1].set_title(f"a = {fmt_num(a)}: $M^* \\propto (C/\\log C)^{{e_M}}$, "
                             f"theory 1/(a+1) = {_fmt_short(1 / (a + 1))}")
        axes[i, 2].set_title(f"a = {fmt_num(a)}: $N^* \\propto C^{{e_N}} \\log^{{1/(a+1)}} C$, "
                             f"theory a/(a+1) = {_fmt_short(a / (a + 1))}")
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, fraction=0.05)
        cb.set_label("M")
        cb.set_ticks(m_all[:: max(1, len(m_all) // 6)])
        cb.set_ticklabels([_fmt_int(m) for m in m_all[:: max(1, len(m_all) // 6)]])
        cb.minorticks_off()
    return fig


def table_compute_frontier(frontier: pd.DataFrame, max_rows: int = 12) -> pd.DataFrame:
    """The frontier points plotted (thinned to at most ``max_rows`` per a)."""
    require_columns(frontier, FRONTIER_COLUMNS, frontier.attrs.get("table", "compute_frontier.csv"))
    parts = []
    for a, fr in frontier.groupby("a", sort=True):
        fr = fr.sort_values("compute")
        if len(fr) > max_rows:
            fr = fr.iloc[np.unique(np.round(np.linspace(0, len(fr) - 1, max_rows)).astype(int))]
        parts.append(fr[FRONTIER_COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    return out.map(lambda v: float(f"{v:.4g}") if isinstance(v, float) else v)


# --------------------------------------------------------------------------------------------------------------
# Variance vs model size
# --------------------------------------------------------------------------------------------------------------


def _mc_std_from_sem(df: pd.DataFrame) -> pd.DataFrame:
    """Monte Carlo columns of variance.parquet as the figure uses them.

    The baselines carry mc_sem but no mc_std: std over trials = sem · sqrt(trials).  Ridge rows without mc_mean use
    their ``variance`` (itself a Monte Carlo mean).  SGD rows are exact; any Monte Carlo columns they carry (the
    main table's Monte Carlo of the *risk*) are ignored here.
    """
    out = df.copy()
    trials = out["mc_trials"].fillna(0).astype(float).clip(lower=0)
    from_sem = out["mc_sem"].astype(float) * np.sqrt(trials)
    out["mc_std"] = out["mc_std"].where(out["mc_std"].notna(), from_sem) if "mc_std" in out.columns else from_sem
    ridge = out["method"].astype(str) == "ridge"
    fill = ridge & out["mc_mean"].isna() & (trials > 0)
    out.loc[fill, "mc_mean"] = out.loc[fill, "variance"]
    out.loc[out["method"].astype(str) == "sgd", "mc_trials"] = 0
    return out


def fig_variance_vs_model_size(var: pd.DataFrame) -> plt.Figure:
    """Variance error vs M at fixed N (columns: up to three N; rows: a): one-pass SGD (exact line; saturates near
    M = (γ N_eff)^{1/a}), OLS (exact line + Monte Carlo points, diverges at M → N) and tuned ridge (Monte Carlo).
    Grey dotted: σ²·min(M, (γ N_eff)^{1/a})/N_eff (theory shape, constant 1).

    Reads variance.parquet: a, M, N, N_eff, gamma, sigma2, sketch_seed, method, variance, mc_trials, mc_mean,
    mc_sem (ridge_lambda shown in the table only).  Error bars: std over trials = mc_sem·sqrt(mc_trials).
    """
    table = var.attrs.get("table", "variance.parquet")
    require_columns(var, VARIANCE_COLUMNS, table)
    v = _mc_std_from_sem(var)
    a_vals = _a_values(v, table)
    n_levels_all = {a: pick_levels(v.loc[_match(v["a"], a), "N"], 3) for a in a_vals}
    ncol = max(len(x) for x in n_levels_all.values())
    fig, axes = plt.subplots(len(a_vals), ncol, figsize=(4.3 * ncol, 3.6 * len(a_vals)), layout="constrained",
                             squeeze=False)
    for i, a in enumerate(a_vals):
        for j in range(ncol):
            ax = axes[i, j]
            if j >= len(n_levels_all[a]):
                ax.set_visible(False)
                continue
            n = n_levels_all[a][j]
            d = v[_match(v["a"], a) & _match(v["N"], n)]
            neff = float(d["N_eff"].iloc[0])
            gamma = float(d.loc[d["method"] == "sgd", "gamma"].median()) if (d["method"] == "sgd").any() \
                else float(d["gamma"].median())
            s2 = _sigma2(d)
            shown = []
            for method in sorted(d["method"].astype(str).unique(), key=lambda s: ["sgd", "ols", "ridge"].index(s)
                                 if s in ("sgd", "ols", "ridge") else 9):
                dm = d[d["method"] == method]
                c = METHOD_COLORS.get(method, "C4")
                lab = METHOD_LABELS.get(method, method)
                if method == "ridge":
                    pts = aggregate_mc(dm, ["M"])
                    if pts.empty:  # no MC stats: the variance column itself
                        agg = aggregate_exact(dm, ["M"], "variance")
                        ax.plot(agg["M"], agg["y"], "s-", color=c, ms=3, lw=0.8, label=lab + " (Monte Carlo)")
                        shown.extend(agg["y"].tolist())
                    else:
                        ax.plot(pts["M"], pts["y"], "-", color=c, lw=0.8, alpha=0.6)
                        _errorbar_log(ax, pts["M"], pts["y"], pts["err"], color=c, fmt="s",
                                      label=lab + " (Monte Carlo)")
                        shown.extend(pts["y"].tolist())
                    continue
                agg = aggregate_exact(dm[dm["variance"] > 0], ["M"], "variance")
                ax.plot(agg["M"], agg["y"], color=c, label=lab + (" (exact)" if method == "ols" else ""))
                shown.extend(agg["y"].tolist())
                pts = aggregate_mc(dm, ["M"])
                if not pts.empty:
                    _errorbar_log(ax, pts["M"], pts["y"], pts["err"], color=c, mfc="white", mew=0.9,
                                  label=lab + " (Monte Carlo)")
                    shown.extend(pts["y"].tolist())
            ms = np.geomspace(float(d["M"].min()), float(d["M"].max()), 200)
            k_star = (gamma * neff) ** (1 / a)
            ax.plot(ms, s2 * np.minimum(ms, k_star) / neff, color="0.45", ls=":", lw=1.2,
                    label=r"$\sigma^2\min(M,(\gamma N_\mathrm{eff})^{1/a})/N_\mathrm{eff}$")
            if k_star <= d["M"].max():
                ax.axvline(k_star, color=METHOD_COLORS["sgd"], ls=":", lw=0.9)
                ax.text(k_star, 0.02, r" $(\gamma N_\mathrm{eff})^{1/a}$", transform=ax.get_xaxis_transform(),
                        fontsize=7, color=METHOD_COLORS["sgd"], va="bottom")
            if n <= d["M"].max() * 1.5:
                ax.axvline(n, color=METHOD_COLORS["ols"], ls="--", lw=0.9)
                ax.text(n, 0.02, " M = N", transform=ax.get_xaxis_transform(), fontsize=7,
                        color=METHOD_COLORS["ols"], va="bottom", ha="right")
            loglog(ax, "model size M", "variance error")
            ax.set_xscale("log", base=2)
            _set_log_ylim(ax, shown, pad=1.5)
            ax.set_title(f"a = {fmt_num(a)}, N = {_fmt_int(n)} ($N_\\mathrm{{eff}}$ = {neff:.0f}), γ = {gamma:g}")
            ax.legend(loc="upper left", fontsize=6.5)
    return fig


def table_variance(var: pd.DataFrame, k: int = 6) -> pd.DataFrame:
    """Variance per method (columns) at a few M (rows), per (a, N): the numbers the panels plot."""
    require_columns(var, VARIANCE_COLUMNS, var.attrs.get("table", "variance.parquet"))
    v = _mc_std_from_sem(var)
    parts = []
    for (a, n), d in v.groupby(["a", "N"], sort=True):
        ms = pick_levels(d["M"], k)
        d = d[np.isin(d["M"].astype(float), ms)]
        piv = d.groupby(["M", "method"])["variance"].mean().unstack("method")
        if "ridge_lambda" in d.columns and d["ridge_lambda"].notna().any():
            piv["ridge_lambda"] = d[d["method"] == "ridge"].groupby("M")["ridge_lambda"].mean()
        piv.index = pd.MultiIndex.from_product([[fmt_num(a)], [int(n)], piv.index.astype(int)],
                                               names=["a", "N", "M"])
        parts.append(piv)
    return pd.concat(parts).map(lambda x: float(f"{x:.4g}") if _finite(x) else x)


# --------------------------------------------------------------------------------------------------------------
# Step size
# --------------------------------------------------------------------------------------------------------------


def fig_stepsize(st: pd.DataFrame, tolerance: float = 0.10) -> plt.Figure:
    """R − σ² vs initial step size γ, one row per a, one column per M (up to three), curves coloured by N_eff.
    The best γ per curve is a star; the thick translucent stretch is the near-optimal range (within ``tolerance``
    of the best); the dashed line is the stability bound γ_max = 2/(2μ_max + tr Σ) of the realized sketch (mean
    over seeds, range shaded).  Guidance: best γ ≈ the largest stable one when N_eff is small, a wide range when
    N_eff is large.

    Reads stepsize.parquet: a, M, N, N_eff, gamma, sigma2, sketch_seed, reducible, gamma_max (+ mc_* if present).
    """
    table = st.attrs.get("table", "stepsize.parquet")
    require_columns(st, STEPSIZE_COLUMNS, table)
    a_vals = _a_values(st, table)
    m_levels_all = {a: pick_levels(st.loc[_match(st["a"], a), "M"], 3) for a in a_vals}
    ncol = max(len(x) for x in m_levels_all.values())
    fig, axes = plt.subplots(len(a_vals), ncol, figsize=(4.3 * ncol, 3.6 * len(a_vals)), layout="constrained",
                             squeeze=False)
    for i, a in enumerate(a_vals):
        for j in range(ncol):
            ax = axes[i, j]
            if j >= len(m_levels_all[a]):
                ax.set_visible(False)
                continue
            m = m_levels_all[a][j]
            d = st[_match(st["a"], a) & _match(st["M"], m)]
            n_levels = sorted(float(x) for x in d["N"].unique())
            cn = _level_colors(n_levels, "magma")
            shown = []
            for n in n_levels:
                dn = d[_match(d["N"], n)]
                agg = aggregate_exact(dn, ["gamma"], "reducible")
                c = cn[n]
                lab = r"$N_\mathrm{eff}$ = " + _fmt_pow10(_neff_of(dn, n))
                ax.plot(agg["gamma"], agg["y"], "o-", ms=2.5, color=c, label=lab)
                best = agg["y"].min()
                near = agg[agg["y"] <= best * (1 + tolerance)]
                ax.plot(near["gamma"], near["y"], color=c, lw=5, alpha=0.25, solid_capstyle="round")
                b = agg.loc[agg["y"].idxmin()]
                ax.plot(b["gamma"], b["y"], "*", color=c, ms=9, mec="black", mew=0.5, zorder=6)
                shown.extend(agg["y"].tolist())
                if "mc_trials" in dn.columns and "mc_std" in dn.columns:
                    pts = aggregate_mc(dn, ["gamma"], subtract_sigma2=True)
                    if not pts.empty:
                        _errorbar_log(ax, pts["gamma"], pts["y"], pts["err"], color=c, mfc="white", mew=0.9)
            gm = d.groupby("sketch_seed")["gamma_max"].first()
            ax.axvline(gm.mean(), color="0.2", ls="--", lw=1.1, label=r"stability bound $\gamma_\max$")
            if gm.max() > gm.min() * 1.001:
                ax.axvspan(gm.min(), gm.max(), color="0.2", alpha=0.12, lw=0)
            loglog(ax, r"initial step size $\gamma$", r"$R - \sigma^2$")
            _set_log_ylim(ax, shown, pad=1.4)
            ax.set_title(f"a = {fmt_num(a)}, M = {_fmt_int(m)}")
            if j == len(m_levels_all[a]) - 1:
                ax.plot([], [], "*", color="0.5", mec="black", mew=0.5, ms=9, label="best γ")
                ax.plot([], [], color="0.5", lw=5, alpha=0.25, label=f"within {tolerance:.0%} of best")
                ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    return fig


def table_stepsize(st: pd.DataFrame, tolerance: float = 0.10) -> pd.DataFrame:
    """Per (a, M, N): best γ, its R − σ², the near-optimal γ range (within ``tolerance``), and γ_max."""
    require_columns(st, STEPSIZE_COLUMNS, st.attrs.get("table", "stepsize.parquet"))
    rows = []
    for (a, m, n), d in st.groupby(["a", "M", "N"], sort=True):
        agg = aggregate_exact(d, ["gamma"], "reducible")
        best = agg.loc[agg["y"].idxmin()]
        near = agg[agg["y"] <= best["y"] * (1 + tolerance)]
        gmax = d.groupby("sketch_seed")["gamma_max"].first().mean()
        rows.append({"a": a, "M": int(m), "N": int(n), "N_eff": float(d["N_eff"].iloc[0]),
                     "gamma_best": best["gamma"], "reducible_best": best["y"],
                     "gamma_near_lo": near["gamma"].min(), "gamma_near_hi": near["gamma"].max(),
                     "gamma_max": gmax, "gamma_best/gamma_max": best["gamma"] / gmax})
    return pd.DataFrame(rows).map(lambda v: float(f"{v:.4g}") if isinstance(v, float) else v)
