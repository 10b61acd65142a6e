"""The live explorer of the exact engine (notebooks/explore.ipynb, `make explore`): controls for one setting, three
panels recomputed through ``sketchlaw.api`` on every change, a data table of the plotted values and the setting as
a workflow config block.

What is computed for a ``Setting`` (``compute``), each part kept under the keys it depends on, so a change reruns
only the parts it touches (and ``sketchlaw.api`` keeps the sketches and phase maps underneath):
  curve    exact risk against N at M, per sketch seed (``api.risk_curve``)
  limit    the M = ∞ limit against N (``api.limit_risk_curve``; batch size 1 only)
  models   exact risk against M on the grid ``model_grid(M)`` at the largest N of the range
  optimum  the compute-optimal M* at the budget C, located from the same M grid (``api.compute_optimal``)
Widget changes are debounced (``DEBOUNCE_S``): a burst of changes (a slider dragged) costs one recomputation.
"""

from __future__ import annotations

import asyncio
import html
import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml
from matplotlib.ticker import FuncFormatter, NullLocator

from sketchlaw import api
from sketchlaw.analysis.estimators import line, upper_half
from sketchlaw.engine.schedules import SCHEDULES
from sketchlaw.errors import DivergenceError, ParameterError
from sketchlaw.theory import exponents, rates

DEBOUNCE_S = 0.1
# The engine's compiled loops run on one thread in the explorer's process: a redraw's decompositions are small, and
# two threads that wait on each other whenever anything else runs made a γ change 5× slower at M = 256 (2.2 s
# against 0.4 s at load average 4 on 2 cores; about even at M = 1024).
ENGINE_THREADS = 1
# Independent engine runs (each sketch of the largest M, the smaller M, the M = ∞ limit) go to this many threads of
# their own instead: no thread waits on another inside a kernel, and on an idle machine two sketches take the time
# of one.
PARALLEL_RUNS = 2
SMALLEST_M = 8
# The M = ∞ limit's exact head: 500 modes change it by < 1e-9 relative from the library's 1000 (engine/limit.py)
# at half the modes, a quarter of each decomposition.
LIMIT_HEAD = 500
M_CHOICES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
BATCH_CHOICES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Setting:
    """One point of the explorer's controls (every field hashable: the setting is its own cache key)."""

    spectrum: str = "power"
    a: float = 2.0
    b: float | None = None          # None: isotropic prior
    M: int = 256
    log10_N: tuple = (2.0, 6.0)     # the N range, in decades
    sigma2: float = 1.0
    gamma: float = 0.1
    schedule: str = "geometric"
    params: tuple = ()              # the schedule kind's parameters, sorted (key, value) pairs
    batch: int = 1
    n_seeds: int = 2
    C: float = 1e6
    per_decade: int = 4

    @property
    def N_grid(self) -> list[int]:
        return api.log_grid(10 ** self.log10_N[0], 10 ** self.log10_N[1], self.per_decade)

    @property
    def seeds(self) -> list[int]:
        return list(range(self.n_seeds))

    def common(self) -> dict:
        """The keywords of ``api.risk_curve`` this setting fixes (everything but a, M and N)."""
        return dict(spectrum=self.spectrum, b=self.b, sigma2=self.sigma2, gamma=self.gamma, schedule=self.schedule,
                    schedule_params=dict(self.params), batch=self.batch, seeds=self.seeds)


def parse_params(text: str) -> tuple:
    """'key=value, key=value' (as the CLI's --schedule-param) into sorted (key, value) pairs; n_phases an integer."""
    out = {}
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = int(value) if key.strip() == "n_phases" else float(value)
        except ValueError:
            raise ParameterError("schedule parameters", part, "key=value with a number (e.g. final=0.1)") from None
        if not sep:
            raise ParameterError("schedule parameters", part, "key=value")
    return tuple(sorted(out.items()))


def model_grid(M: int) -> list[int]:
    """The M panel's and the compute panel's model sizes: powers of 2 from SMALLEST_M up to and including M."""
    return sorted({*(2**k for k in range(int(math.log2(SMALLEST_M)), int(math.log2(M)) + 1)), int(M)})


@dataclass
class Result:
    setting: Setting
    bound: float
    curve: pd.DataFrame
    limit: pd.DataFrame | None
    models: pd.DataFrame
    optimum: api.ComputeOptimum
    slopes: dict = field(default_factory=dict)


class Computer:
    """``compute`` with each part memoized under the fields it depends on (results of earlier settings are kept,
    so going back to one is free)."""

    def __init__(self):
        self._parts: dict = {}
        self._pool, self._ran = None, set()

    def _part(self, name, key, build):
        if (name, key) not in self._parts:
            self._parts[(name, key)] = build()
        return self._parts[(name, key)]

    def _run_in_parallel(self, s: Setting, grid: list[int], missing: set, limit_key) -> None:
        """The engine work of a new setting, on PARALLEL_RUNS threads (the kernels release the GIL): every N the
        ``missing`` panels need at each M, one engine pass per sketch (api keeps each run, so the panels read them;
        at the largest M the panels' other N ride along in the curve's products), each sketch of the largest M on its
        own, and the M = ∞ limit (kept here as its part under ``limit_key``)."""
        c, tasks = s.common(), []
        for m in sorted(grid, reverse=True):  # the largest first: the longest tasks
            needed = sorted({*(s.N_grid if "curve" in missing and m == s.M else ()),
                             *((s.N_grid[-1],) if "models" in missing else ()),
                             *(n for _, n in api.budget_points(s.C, [m]) if "optimum" in missing)})
            if not needed:
                continue
            for seeds in [[seed] for seed in s.seeds] if m == s.M else [s.seeds]:
                # run before at another σ² only: api rescales its kept runs, no engine work to spread
                ran = (s.spectrum, s.a, s.b, s.gamma, s.schedule, s.params, s.batch, m, tuple(needed), tuple(seeds))
                if ran not in self._ran:
                    self._ran.add(ran)
                    tasks.append(lambda m=m, needed=needed, seeds=seeds:
                                 api.risk_curve(s.a, m, needed, **{**c, "seeds": seeds}))
        if limit_key:
            def limit():
                self._parts[("limit", limit_key)] = api.limit_risk_curve(
                    s.a, s.N_grid, spectrum=s.spectrum, b=s.b, sigma2=s.sigma2, gamma=s.gamma,
                    schedule=s.schedule, schedule_params=dict(s.params), head=LIMIT_HEAD)
            tasks.insert(min(len(tasks), s.n_seeds), limit)
        if not tasks:
            return
        if self._pool is None:
            from sketchlaw.engine.exact import use_threads

            self._pool = ThreadPoolExecutor(PARALLEL_RUNS, initializer=use_threads, initargs=(ENGINE_THREADS,))
        for future in [self._pool.submit(task) for task in tasks]:
            future.result()

    def compute(self, s: Setting) -> Result:
        c = s.common()
        problem_key = (s.spectrum, s.a, s.b, s.n_seeds, s.batch)
        bound = self._part("bound", (*problem_key, s.M),
                           lambda: api.stability_bound(s.a, s.M, spectrum=s.spectrum, b=s.b, seeds=s.seeds,
                                                       batch=s.batch))
        if not s.gamma < bound:  # refused before any run, naming this setting's bound
            raise ParameterError("gamma", s.gamma, f"0 < gamma < {bound:.6g} (the exact stability bound of these "
                                                   f"{s.n_seeds} sketch(es) at M = {s.M}, B = {s.batch})")
        run_key = (s.spectrum, s.a, s.b, s.sigma2, s.gamma, s.schedule, s.params, s.batch, s.n_seeds)
        grid = model_grid(s.M)
        keys = {"curve": (*run_key, s.M, s.log10_N, s.per_decade), "models": (*run_key, s.M, s.N_grid[-1]),
                "optimum": (*run_key, s.M, s.C)}
        limit_key = (s.spectrum, s.a, s.b, s.sigma2, s.gamma, s.schedule, s.params, s.log10_N, s.per_decade)
        self._run_in_parallel(s, grid, {name for name, key in keys.items() if (name, key) not in self._parts},
                              s.batch == 1 and ("limit", limit_key) not in self._parts and limit_key)
        curve = self._part("curve", keys["curve"], lambda: api.risk_curve(s.a, s.M, s.N_grid, **c))
        limit = self._parts[("limit", limit_key)] if s.batch == 1 else None
        models = self._part("models", keys["models"], lambda: api.risk_curve(s.a, grid, s.N_grid[-1], **c))
        optimum = self._part("optimum", keys["optimum"], lambda: api.compute_optimal(s.a, s.C, grid, **c))
        return Result(s, bound, curve, limit, models, optimum, window_slopes(s, models))


def _theory_M_slope(s: Setting) -> float:
    kind = "logpower" if s.spectrum == "logpower" else "main"
    e = exponents(kind, s.a, s.b, s.sigma2)
    return e.get("log_M" if kind == "logpower" else "M", math.nan)


def window_slopes(s: Setting, models: pd.DataFrame) -> dict:
    """Slopes of the seed-mean R − σ² and E Approx against M on the upper half of the M grid (the project's window
    rule), against log M for the log power law, beside the theorem's exponent."""
    mean = models.groupby("M")[["reducible", "approx"]].mean()
    window = upper_half(mean.index)
    x = mean.index[np.isin(mean.index, window)].to_numpy(float)
    X = np.log(x) if s.spectrum == "logpower" else x
    return {"window": (float(x.min()), float(x.max())) if len(x) else (math.nan, math.nan),
            "reducible": line(X, mean.loc[x, "reducible"])[0], "approx": line(X, mean.loc[x, "approx"])[0],
            "theory": _theory_M_slope(s)}


def data_table(r: Result) -> str:
    """Every plotted value, at full precision (repr), as an HTML table (id ``sketchlaw-data``): what the figure
    draws, readable from the page."""
    cols = ["panel", "seed", "M", "N", "N_eff", "risk", "approx", "bias", "variance"]
    parts = [r.curve.assign(panel="risk vs N"), r.models.assign(panel="risk vs M")]
    if r.limit is not None:
        parts.append(r.limit.assign(panel="M = inf limit", seed=-1, M=-1, approx=0.0))
    o = r.optimum
    parts += [o.curve.assign(panel="compute C", seed=-1, N_eff=np.nan),
              pd.DataFrame([{"panel": "compute C optimum", "seed": -1, "M": o.M_star, "N": o.N_star,
                             "N_eff": np.nan, "risk": o.risk_star, "approx": np.nan, "bias": np.nan,
                             "variance": np.nan}])]
    rows = pd.concat([p[cols] for p in parts], ignore_index=True)
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{html.escape(_cell(v))}</td>' for c, v in zip(cols, row))
                   + "</tr>" for row in rows.itertuples(index=False))
    return (f'<table id="sketchlaw-data" class="sketchlaw-data"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _cell(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) < 2**53):
        return str(int(v))
    return repr(float(v))


def summary(r: Result) -> str:
    s, o, sl = r.setting, r.optimum, r.slopes
    lo, hi = sl["window"]
    return (f"stability bound γ_c = {r.bound:.6g} (γ = {s.gamma:g}) · M panel at N = {s.N_grid[-1]:,}: slope of "
            f"R − σ² over M ∈ [{lo:g}, {hi:g}] {sl['reducible']:+.3f}, of E Approx {sl['approx']:+.3f}, theorem "
            f"{sl['theory']:+.3f} · compute C = {s.C:.3g}: {_optimum_text(o)} (theory M* ∝ C^{1 / (s.a + 1):.3f})")


def _optimum_text(o: api.ComputeOptimum) -> str:
    if not o.interior:
        edge = "largest" if o.M_grid_best == o.curve["M"].max() else "smallest"
        return (f"least risk at the grid's {edge} M = {o.M_grid_best} (R = {o.risk_star:.6g}), not located"
                + (": raise M to look further" if edge == "largest" else ""))
    return (f"M* = {o.M_star:.4g} (×÷ {math.exp(o.log_M_error):.3g}), N* = {o.N_star:,.0f}, R* = {o.risk_star:.6g} "
            f"(parabola through the grid minimum and its neighbours)")


def config_block(s: Setting) -> str:
    """The setting as a config.yaml experiment block for the workflow (validated by tests/test_explore.py): main,
    source or logpower for the paper's schedules at B = 1; schedules for another schedule; batch for B > 1."""
    block = {"spectrum": s.spectrum, "a": [s.a]}
    if s.b is not None:
        block["b"] = [s.b]
    block.update(M=model_grid(s.M), N=s.N_grid, sigma2=s.sigma2, gamma=s.gamma, sketch_seeds=s.seeds)
    params = dict(s.params)
    if s.batch > 1:
        name = "batch"
        block.update(M=[s.M], B=[1, s.batch], step_rules=["fixed"])
    elif s.schedule not in ("geometric", "constant") or params:
        name = "schedules"
        block.update(M=[s.M], schedules=[{"kind": s.schedule, **params}])
    else:
        name = "logpower" if s.spectrum == "logpower" else ("source" if s.b is not None else "main")
        block["schedule"] = s.schedule
    return yaml.safe_dump({"experiments": {name: block}}, sort_keys=False, default_flow_style=None, width=110)


# ------------------------------------------------------------------------------------------------------ drawing

_PLAIN = FuncFormatter(lambda v, _pos: f"{v:.3g}")
DECADES_SHOWN = 6  # a term that has fallen further below the curve than this (a converged bias) leaves the panel


def _ylim(ax, curve, others) -> None:
    """Log y-limits from the curve's range, with at most DECADES_SHOWN decades below its top."""
    top = float(np.nanmax(curve))
    values = np.concatenate([np.ravel(curve), np.ravel(others)])
    low = max(float(np.nanmin(values[values > 0])), top * 10.0**-DECADES_SHOWN)
    ax.set_ylim(low / 1.5, top * 1.5)


def _panels(fig) -> tuple:
    """The three axes and the N_eff axis above the first, made once per figure and kept; later draws remove their
    lines, bands and legends only. New axes with their tick objects, and a new secondary axis, cost a third of a
    redraw; plain tick labels, no minor ticks and fixed margins spare the rest of it mathtext, minor tick objects
    and tight_layout's measuring of every label."""
    kept = getattr(fig, "_sketchlaw_panels", None)
    if kept is not None:
        for ax in kept[:3]:
            for artist in [*ax.lines, *ax.collections]:
                artist.remove()
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        return kept
    fig.clf()
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for ax in (ax1, ax2, ax3):
        ax.set(xscale="log", yscale="log")
    neff = {"N": np.array([2.0, 3.0]), "N_eff": np.array([2.0, 3.0])}  # the current curve's, set by draw
    top = ax1.secondary_xaxis("top", functions=(lambda x: np.interp(x, neff["N"], neff["N_eff"]),
                                                lambda y: np.interp(y, neff["N_eff"], neff["N"])))
    top.set_xlabel("N_eff = N / log N")
    for axis in (ax1.xaxis, ax1.yaxis, ax2.xaxis, ax2.yaxis, ax3.xaxis, ax3.yaxis, top.xaxis):
        axis.set_major_formatter(_PLAIN)
        axis.set_minor_locator(NullLocator())
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.11, top=0.84, wspace=0.22)
    fig._sketchlaw_panels = (ax1, ax2, ax3, neff)
    return fig._sketchlaw_panels


def draw(r: Result, fig) -> None:
    """The three panels into a matplotlib Figure (its axes made at the first draw and reused, ``_panels``)."""
    s = r.setting
    ax1, ax2, ax3, neff = _panels(fig)
    # risk against N: the seed band, the split (seed means), the M = ∞ limit, σ²
    band = api.seed_band(r.curve, "N")
    ax1.fill_between(band["N"], band["low"], band["high"], color="C0", alpha=0.25, lw=0, label="seed band")
    ax1.plot(band["N"], band["mean"], "C0-", lw=2, label=f"risk, M = {s.M}")
    mean = r.curve.groupby("N")[["approx", "bias", "variance"]].mean()
    for col, c in (("approx", "C2"), ("bias", "C1"), ("variance", "C3")):
        ax1.plot(mean.index, mean[col], c, ls="--", label=col)
    if r.limit is not None:
        ax1.plot(r.limit["N"], r.limit["risk"], "k:", lw=1.5, label="M = ∞ limit")
    ax1.axhline(s.sigma2, color="0.6", lw=0.8)
    ax1.set(xlabel="N", ylabel="expected risk")
    _ylim(ax1, band["high"], mean.to_numpy())
    neff["N"] = band["N"].to_numpy(float)
    neff["N_eff"] = neff["N"] / np.log(neff["N"])
    ax1.legend(fontsize=7, loc="lower left")
    # risk against M at the largest N, with the theorem's rates anchored at the largest M
    mband = api.seed_band(r.models, "M", "reducible")
    mm = r.models.groupby("M")[["approx", "bias", "variance"]].mean()
    ax2.fill_between(mband["M"], mband["low"], mband["high"], color="C0", alpha=0.25, lw=0)
    ax2.plot(mband["M"], mband["mean"], "C0o-", label="R − σ²")
    for col, c in (("approx", "C2"), ("bias", "C1"), ("variance", "C3")):
        ax2.plot(mm.index, mm[col], c, ls="--", label=col)
    M = mm.index.to_numpy(float)
    N_eff = float(r.models["N_eff"].iloc[0])
    guide = rates(M, N_eff, s.gamma, s.a, s.b, s.sigma2, s.spectrum)
    for col, c in (("approx", "C2"), ("variance", "C3")):
        g = np.asarray(guide[col], float) * np.ones_like(M)
        ax2.plot(M, g * mm[col].iloc[-1] / g[-1], c, lw=0.8, alpha=0.6, label=f"{col} rate")
    _ylim(ax2, mband["high"], mband["low"])
    sl = r.slopes
    ax2.set(xlabel="M", ylabel="R − σ²",
            title=f"at N = {s.N_grid[-1]:.3g}: slope {sl['reducible']:+.2f} (theorem {sl['theory']:+.2f})")
    ax2.legend(fontsize=7, loc="lower left")
    # compute-optimal allocation at C = M·N
    o = r.optimum
    ax3.plot(o.curve["M"], o.curve["risk"] - s.sigma2, "C4o-", label="R − σ² at N = C/M")
    ax3.plot([o.M_star], [o.risk_star - s.sigma2], "r*", ms=14, label=f"M* = {o.M_star:.4g}")
    if o.interior:  # the located optimum's error bound on log M*
        ax3.plot(o.M_star * np.exp([-o.log_M_error, o.log_M_error]), [o.risk_star - s.sigma2] * 2, "r-", lw=1)
    ax3.set(xlabel="M", ylabel="R − σ²", title=f"compute C = {s.C:.3g}")
    ax3.legend(fontsize=7, loc="upper center")
    for ax in (ax1, ax2, ax3):  # the limits of these lines alone, not of the ones removed
        ax.relim()
        ax.autoscale_view()


# ------------------------------------------------------------------------------------------------------ widgets

class Explorer:
    """The controls, the figure (a PNG image), the summary, the data table and the config button, wired together.

    ``update()`` recomputes and redraws now; a control change schedules it ``DEBOUNCE_S`` later on the kernel's
    event loop (or runs it at once where no loop runs). ``timings`` keeps the last update's seconds by stage.
    """

    def __init__(self, setting: Setting = Setting()):
        import ipywidgets as w
        from matplotlib.figure import Figure
        from threadpoolctl import ThreadpoolController

        from sketchlaw.engine.exact import use_threads

        use_threads(ENGINE_THREADS)
        self._blas = ThreadpoolController()
        self.computer, self.fig = Computer(), Figure(figsize=(15, 4.6), dpi=80)
        self.result, self.timings, self._pending, self.updates = None, {}, None, 0
        s = setting
        self.controls = {
            "spectrum": w.Dropdown(options=["power", "logpower"], value=s.spectrum, description="spectrum"),
            "a": w.FloatSlider(value=s.a, min=1.1, max=4.0, step=0.05, description="a", continuous_update=False),
            "prior": w.Dropdown(options=["isotropic", "source"], value="isotropic" if s.b is None else "source",
                                description="prior"),
            "b": w.FloatSlider(value=s.b or 1.5, min=1.1, max=5.0, step=0.05, description="b (source)",
                               continuous_update=False),
            "M": w.Dropdown(options=list(M_CHOICES), value=s.M, description="M"),
            "log10_N": w.FloatRangeSlider(value=s.log10_N, min=1.0, max=10.0, step=0.5, description="log₁₀ N",
                                          continuous_update=False),
            "sigma2": w.BoundedFloatText(value=s.sigma2, min=0.0, max=1e6, description="σ²"),
            "gamma": w.FloatText(value=s.gamma, description="γ"),
            "schedule": w.Dropdown(options=list(SCHEDULES), value=s.schedule, description="schedule"),
            "params": w.Text(value=", ".join(f"{k}={v:g}" for k, v in s.params), description="parameters",
                             placeholder="e.g. final=0.1", continuous_update=False),
            "batch": w.Dropdown(options=list(BATCH_CHOICES), value=s.batch, description="batch B"),
            "n_seeds": w.IntSlider(value=s.n_seeds, min=1, max=5, description="sketch seeds",
                                   continuous_update=False),
            "C": w.FloatLogSlider(value=s.C, base=10, min=3, max=10, step=0.25, description="budget C",
                                  continuous_update=False),
        }
        for name, c in self.controls.items():
            c.style.description_width = "95px"
            c.add_class(f"sk-{name}")
            c.observe(self._changed, names="value")
        self.bound_label = w.HTML().add_class("sk-bound")
        self.message = w.HTML().add_class("sk-message")
        self.image = w.Image(format="png").add_class("sk-figure")
        self.summary = w.HTML().add_class("sk-summary")
        self.table = w.HTML().add_class("sk-table")
        self.config_button = w.Button(description="write config block", icon="file").add_class("sk-config")
        self.config_out = w.HTML().add_class("sk-config-out")
        self.config_button.on_click(self._write_config)
        self.status = w.HTML().add_class("sk-status")
        c = self.controls
        left = w.VBox([c["spectrum"], c["a"], c["prior"], c["b"], c["M"], c["log10_N"], c["sigma2"]])
        right = w.VBox([c["gamma"], self.bound_label, c["schedule"], c["params"], c["batch"], c["n_seeds"], c["C"]])
        self.widget = w.VBox([w.HBox([left, right]), self.message, self.status, self.image, self.summary,
                              w.HBox([self.config_button]), self.config_out,
                              w.Accordion(children=[self.table], titles=("data (every plotted value)",))])

    def setting(self) -> Setting:
        c = {k: v.value for k, v in self.controls.items()}
        return Setting(spectrum=c["spectrum"], a=float(c["a"]), b=float(c["b"]) if c["prior"] == "source" else None,
                       M=int(c["M"]), log10_N=tuple(float(x) for x in c["log10_N"]), sigma2=float(c["sigma2"]),
                       gamma=float(c["gamma"]), schedule=c["schedule"], params=parse_params(c["params"]),
                       batch=int(c["batch"]), n_seeds=int(c["n_seeds"]), C=float(c["C"]))

    def _changed(self, _change=None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self.update()
        if self._pending is not None:
            self._pending.cancel()
        self.status.value = "<i>computing…</i>"
        self._pending = loop.call_later(DEBOUNCE_S, self.update)

    def update(self) -> Result | None:
        """Recompute what the current setting needs and redraw; a refused setting shows its message instead (the
        figure keeps the last accepted one)."""
        import time

        self._pending = None
        t0 = time.perf_counter()
        try:
            s = self.setting()
            self.bound_label.value = ""
            # BLAS on one thread while computing (restored after, for the rest of the process): two runs side by
            # side, each with a BLAS thread per core spinning while it waits for the other, took twice the CPU time.
            with self._blas.limit(limits=ENGINE_THREADS, user_api="blas"):
                r = self.computer.compute(s)
        except (ParameterError, DivergenceError) as err:
            self.message.value = f'<div class="sk-refused" style="color:#b00">refused: {html.escape(str(err))}</div>'
            self.status.value = ""
            return None
        t1 = time.perf_counter()
        draw(r, self.fig)
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png")
        self.image.value = buf.getvalue()
        self.bound_label.value = (f'<span class="sk-bound-value" data-bound="{r.bound!r}">stable for γ &lt; '
                                  f"{r.bound:.6g} (these sketches' exact bound)</span>")
        self.summary.value = f'<div class="sk-summary-text">{html.escape(summary(r))}</div>'
        self.table.value = data_table(r)
        self.message.value = ""
        t2 = time.perf_counter()
        self.result, self.updates = r, self.updates + 1
        self.timings = {"compute": t1 - t0, "draw": t2 - t1, "total": t2 - t0}
        self.status.value = (f'<span class="sk-done" data-updates="{self.updates}">updated in '
                             f"{1000 * self.timings['total']:.0f} ms</span>")
        return r

    def _write_config(self, _button=None) -> None:
        text = config_block(self.setting())
        self.config_out.value = f'<pre class="sk-config-text">{html.escape(text)}</pre>'

    def show(self):
        self.update()
        return self.widget
