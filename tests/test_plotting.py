"""Fast tests of the notebooks' shared helpers: deterministic figure files with embedded provenance and the caption
sidecar, fit lines drawn exactly from an exponent row's typed columns, slope annotations, table loading errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from sketchlaw.present import plotting as slp  # noqa: E402

CAPTION = """Demo: a power law and a histogram
The left panel shows 3 x^-0.5 with error bars; the right one a histogram.  The reader should see a straight line."""
PARAMETER_DEFAULTS = {
    "tables_dir": "results/tables",
    "figures_dir": "results/figures",
    "provenance_path": "results/provenance.json",
}
PROV = {
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": True,
    "config_hash": "c0ffee12345678",
    "lock_hash": "10cc0de",
    "versions": {"numpy": "2.x", "matplotlib": "3.x"},
}


@pytest.fixture(autouse=True)
def _no_source_date_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    yield
    plt.close("all")


def _figure():
    slp.set_style()
    fig, axes = plt.subplots(1, 2, figsize=(5, 2.2), layout="constrained")
    x = np.geomspace(1e2, 1e6, 25)
    axes[0].plot(x, 3 * x**-0.5, label="curve")
    axes[0].errorbar(x[::5], 3 * x[::5] ** -0.5, yerr=0.1 * x[::5] ** -0.5, fmt="o")
    slp.log_axes(axes[0], r"$N_\mathrm{eff}$", r"$R - \sigma^2$")
    slp.annotate_slope(axes[0], slp.format_slope(-0.4981, -0.5032, -0.4921, -0.5))
    axes[1].hist(np.linspace(-1, 1, 101) ** 3, bins=20)
    axes[0].legend()
    return fig


def _save(tmp_path, sub, fig=None):
    return slp.save_figure(fig or _figure(), tmp_path / sub, "demo", PROV, CAPTION)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two independent builds + saves of the same figure (rendering is the slow part, so tests share them)."""
    old = os.environ.pop("SOURCE_DATE_EPOCH", None)
    try:
        root = tmp_path_factory.mktemp("saved")
        out = {k: _save(root, k) for k in ("a", "b")}
    finally:
        if old is not None:
            os.environ["SOURCE_DATE_EPOCH"] = old
    plt.close("all")
    return out


# ---------------------------------------------------------------------------------------------------- save_figure


def test_save_figure_is_byte_deterministic(saved):
    (png1, pdf1), (png2, pdf2) = saved["a"], saved["b"]
    assert png1.name == "demo.png" and pdf1.name == "demo.pdf"
    assert png1.read_bytes() == png2.read_bytes()
    assert pdf1.read_bytes() == pdf2.read_bytes()


def test_save_figure_twice_on_same_figure_is_idempotent(tmp_path, saved):
    fig = _figure()
    png1, pdf1 = _save(tmp_path, "a", fig)
    png2, pdf2 = _save(tmp_path, "b", fig)  # the provenance stamp must not be added twice
    assert png1.read_bytes() == png2.read_bytes() == saved["a"][0].read_bytes()
    assert pdf1.read_bytes() == pdf2.read_bytes() == saved["a"][1].read_bytes()
    assert sum(t.get_gid() == "sketchlaw-provenance-stamp" for t in fig.texts) == 1


def test_save_figure_is_deterministic_across_processes(tmp_path, saved):
    """A fresh interpreter with another hash seed writes the same bytes as this process."""
    script = textwrap.dedent(f"""
        import sys, matplotlib
        matplotlib.use("Agg")
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_plotting as t
        from pathlib import Path
        t._save(Path(sys.argv[1]), "out")
    """)
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env.update(PYTHONHASHSEED="2" if os.environ.get("PYTHONHASHSEED") == "1" else "1", MPLBACKEND="Agg")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, cwd=tmp_path)
    png, pdf = saved["a"]
    assert (tmp_path / "out" / "demo.png").read_bytes() == png.read_bytes()
    assert (tmp_path / "out" / "demo.pdf").read_bytes() == pdf.read_bytes()


def test_provenance_embedded_in_png_and_pdf(saved):
    from PIL import Image

    png, pdf = saved["a"]
    text = Image.open(png).text
    assert text["git_commit"] == PROV["git_commit"]
    assert text["git_dirty"] == "true"
    assert text["config_hash"] == PROV["config_hash"]
    assert text["lock_hash"] == PROV["lock_hash"]
    assert json.loads(text["versions"]) == PROV["versions"]
    assert json.loads(text["provenance"]) == PROV
    assert Image.open(png).info.get("dpi", (slp.DPI,))[0] == pytest.approx(slp.DPI, abs=0.5)

    raw = pdf.read_bytes()
    assert b"/Subject (sketchlaw figure demo; git " + PROV["git_commit"].encode() in raw
    assert b"config_hash=" + PROV["config_hash"].encode() in raw
    assert b"lock_hash=" + PROV["lock_hash"].encode() in raw
    assert b"/Keywords" in raw
    assert b"/CreationDate" not in raw and b"/ModDate" not in raw


def test_source_date_epoch_is_honoured(tmp_path, monkeypatch, saved):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    png, pdf = _save(tmp_path, "a")
    assert b"/CreationDate (D:20231114221320Z)" in pdf.read_bytes()
    assert png.read_bytes() == saved["a"][0].read_bytes()  # PNG carries no date at all


def test_save_figure_reads_provenance_file_and_checks_keys(tmp_path, saved):
    p = tmp_path / "provenance.json"
    p.write_text(json.dumps(PROV))
    png, _ = slp.save_figure(_figure(), tmp_path / "f", "demo", p, CAPTION)
    assert png.read_bytes() == saved["a"][0].read_bytes()
    with pytest.raises(slp.MissingColumnError, match="config_hash"):
        slp.save_figure(_figure(), tmp_path / "h", "demo", {"git_commit": "x", "git_dirty": False}, CAPTION)
    with pytest.raises(slp.MissingTableError, match="provenance file not found"):
        slp.load_provenance(tmp_path / "absent.json")


def test_save_figure_writes_the_caption_sidecar(saved):
    png, _ = saved["a"]
    sidecar = json.loads(png.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar == {
        "name": "demo",
        "title": "Demo: a power law and a histogram",
        "caption": "The left panel shows 3 x^-0.5 with error bars; the right one a histogram. "
                   "The reader should see a straight line.",
    }


def test_save_figure_refuses_a_caption_without_title_or_text(tmp_path):
    with pytest.raises(ValueError, match="first line"):
        slp.save_figure(_figure(), tmp_path, "demo", PROV, "  \n ")
    with pytest.raises(ValueError, match="has only its first line"):
        slp.save_figure(_figure(), tmp_path, "demo", PROV, "A title\n\n")
    assert not (tmp_path / "demo.png").exists()


# ---------------------------------------------------------------------------------------------------- annotations


@pytest.mark.parametrize(
    "args, expected",
    [
        ((-0.4981, -0.5032, -0.4921, -0.5), "k = \u22120.498 [\u22120.503, \u22120.492] (theory \u22120.5)"),
        ((-0.998, -1.01, -0.985, -1.0), "k = \u22120.998 [\u22121.010, \u22120.985] (theory \u22121)"),
        ((-0.331, -0.34, -0.32, -1 / 3), "k = \u22120.331 [\u22120.340, \u22120.320] (theory \u22120.333)"),
        ((0.3312, 0.3, 0.36, 1 / 3), "k = 0.331 [0.300, 0.360] (theory 0.333)"),
        ((-0.5, float("nan"), float("nan"), -0.5), "k = \u22120.500 (theory \u22120.5)"),
        ((-0.5, -0.6, -0.4, None), "k = \u22120.500 [\u22120.600, \u22120.400]"),
        ((-0.5, -0.6, -0.4, float("nan")), "k = \u22120.500 [\u22120.600, \u22120.400] (theory n/a)"),
    ],
)
def test_format_slope(args, expected):
    assert slp.format_slope(*args) == expected


def _row(**kw):
    """One exponents.csv row with the contract's columns (a window slope in M at N = 10⁶ unless overridden)."""
    base = dict(experiment="main", spectrum="power", a=2.0, b=2.0, variable="M", abscissa="M", scale="log",
                schedule="", step_rule="", samples=np.nan, sketch="", coordinates="", estimator="window",
                quantity="reducible", fixed_variable="N", fixed_value=1e6, x_lo=16.0, x_hi=256.0, n_points=5,
                n_seeds=3, fitted=-0.9981, intercept=0.7, ci_low=-1.01, ci_high=-0.985, theory=-1.0,
                verdict="consistent", reason="")
    base.update(kw)
    return pd.Series(base)


def test_slope_text_prints_slope_interval_theory_and_verdict():
    assert slp.slope_text(_row()) == "k = \u22120.998 [\u22121.010, \u22120.985] (theory \u22121) \u00b7 consistent"
    # an exact curve (no seeds): no statistical interval, the range over admissible windows instead
    exact = _row(ci_low=np.nan, ci_high=np.nan, sys_low=-0.33368, sys_high=-0.33352, fitted=-0.33357, theory=-1 / 3,
                 n_seeds=0, verdict="pre-asymptotic")
    assert slp.slope_text(exact) == ("k = \u22120.334, windows [\u22120.3337, \u22120.3335] (theory \u22120.333) "
                                     "\u00b7 pre-asymptotic")
    assert slp.slope_text(_row(verdict="pre-asymptotic"), symbol="e_M").startswith("e_M = \u22120.998")


@pytest.mark.parametrize(
    "row, expected",
    [
        (None, "k: no row in exponents.csv"),
        (_row(fitted=np.nan, verdict="not fitted", reason="window has 1 point (need 3)"),
         "k: not fitted (window has 1 point (need 3))"),
        (_row(fitted=np.nan, verdict="consistent", reason=""), "k: not fitted (no slope)"),
        (_row(verdict="not fitted", reason="short window"), "k: not fitted (short window)"),
    ],
)
def test_slope_text_says_why_there_is_no_slope(row, expected):
    assert slp.slope_text(row) == expected


def test_annotations_stack_and_grey_out_unfitted_rows():
    fig, ax = plt.subplots()
    t1 = slp.annotate_fit(ax, _row(), label="window: ")
    t2 = slp.annotate_fit(ax, _row(fitted=np.nan, verdict="not fitted", reason="x"))
    assert t1.get_text().startswith("window: k = \u22120.998")
    fig.draw_without_rendering()
    r = fig.canvas.get_renderer()
    assert t2.get_window_extent(r).y0 > t1.get_window_extent(r).y1  # the lower-left stack grows upwards
    assert t1.get_color() == "black" and t2.get_color() == "0.4"
    t3 = slp.note(ax, "one M only: no contour")
    assert t3.get_text() == "one M only: no contour" and t3.get_position() == (0.5, 0.5)


def test_corner_texts_wrap_to_the_axes_and_stack_by_their_drawn_height():
    fig, axes = plt.subplots(1, 3, figsize=(7, 2.5), layout="constrained")
    ax = axes[1]
    long = "window, $N_\\mathrm{eff} = 6.2\\times10^{5}$: k: not fitted (2 N_eff with a critical batch size in the grid)"
    t1 = slp.annotate_slope(ax, long, loc="upper right")
    t2 = slp.note(ax, "second note in the same corner", loc="upper right")
    assert t1.get_text().count("\n") >= 1 and t1.get_text().replace("\n", " ") == long
    assert all(line.count("$") % 2 == 0 for line in t1.get_text().splitlines())  # mathtext never split
    fig.draw_without_rendering()
    r = fig.canvas.get_renderer()
    for t in (t1, t2):
        box = t.get_window_extent(r)
        assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1
    assert t2.get_window_extent(r).y1 < t1.get_window_extent(r).y0  # an upper stack grows downwards
    assert slp.layout_problems(fig) == []


# ---------------------------------------------------------------------------------------------------- fit lines


def test_fit_line_draws_the_rows_line_exactly_on_its_window():
    fig, ax = plt.subplots()
    row = _row(fitted=-0.75, intercept=1.3, x_lo=16.0, x_hi=256.0)
    assert slp.draw_fit_line(ax, row)
    xs, ys = (np.asarray(v, dtype=float) for v in ax.lines[-1].get_data())
    assert xs[0] == pytest.approx(16.0, rel=1e-12) and xs[-1] == pytest.approx(256.0, rel=1e-12)
    assert np.all(np.diff(xs) > 0)
    np.testing.assert_allclose(ys, np.exp(1.3) * xs**-0.75, rtol=1e-12)
    assert ax.lines[-1].get_linestyle() == "--"


def test_fit_line_of_a_log_power_row_is_a_power_of_log_x():
    row = _row(experiment="logpower", spectrum="logpower", variable="log_M", scale="loglog", fitted=-1.2, intercept=-0.4,
               x_lo=8.0, x_hi=4096.0)
    line = slp.fit_line(row)
    np.testing.assert_allclose(line["X"], np.log(line["x"]), rtol=1e-12)
    np.testing.assert_allclose(line["y"], np.exp(-0.4) * np.log(line["x"]) ** -1.2, rtol=1e-12)
    fig, ax = plt.subplots()
    slp.draw_fit_line(ax, row, along="X")  # the axis shows ln M
    np.testing.assert_allclose(ax.lines[-1].get_xdata(), np.log(line["x"]), rtol=1e-12)


@pytest.mark.parametrize("variable", ["M_star", "N_star", "reducible_star"])
def test_fit_line_of_the_compute_frontier_uses_the_theory_coordinates(variable):
    from sketchlaw.theory import frontier_coordinates

    a, b = 1.7, 2.2  # b > a: N*'s log factor carries M*'s exponent 1/(b + 1), not 1/(a + 1)
    row = _row(experiment="compute", variable=variable, abscissa="compute", scale="frontier", a=a, b=b, fitted=0.37,
               intercept=-2.0, x_lo=1e4, x_hi=1e9,
               fixed_variable="", fixed_value=np.nan)
    line = slp.fit_line(row)
    X, factor = frontier_coordinates(variable, a, line["x"].to_numpy(), b)
    if variable == "N_star":
        np.testing.assert_allclose(factor, np.log(line["x"]) ** (1 / (b + 1)), rtol=1e-12)
    np.testing.assert_allclose(line["y"], factor * np.exp(-2.0) * X**0.37, rtol=1e-12)
    # log(y / factor) is the stated straight line in log X
    np.testing.assert_allclose(np.log(line["y"] / factor), -2.0 + 0.37 * np.log(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("change", [dict(fitted=np.nan), dict(intercept=np.nan), dict(x_lo=np.nan),
                                    dict(x_lo=300.0), dict(verdict="not fitted")])
def test_no_fit_line_without_a_fitted_row(change):
    fig, ax = plt.subplots()
    assert slp.fit_line(_row(**change)) is None
    assert not slp.draw_fit_line(ax, _row(**change))
    assert not slp.draw_fit_line(ax, None)
    assert len(ax.lines) == 0


def test_exponent_row_selects_on_typed_columns():
    e = pd.DataFrame([_row(estimator="window", fitted=-1.0), _row(estimator="primary", quantity="approx", fitted=-0.99),
                      _row(estimator="montecarlo", quantity="reducible_mc", fitted=-1.1),
                      _row(estimator="montecarlo", quantity="reducible", fitted=-1.05),
                      _row(experiment="source", b=1.5, fitted=-0.5), _row(variable="N_eff", fitted=-0.5)])
    for c in ("experiment", "variable", "estimator", "quantity"):
        e[c] = e[c].astype(str)
    assert slp.exponent_row(e, "main", "M", 2.0)["fitted"] == -1.0
    assert slp.exponent_row(e, "main", "M", 2.0, estimator="primary")["fitted"] == -0.99
    assert slp.exponent_row(e, "main", "M", 2.0, estimator="montecarlo", quantity="reducible")["fitted"] == -1.05
    assert slp.exponent_row(e, "main", "M", 2.0, estimator="montecarlo", quantity="reducible_mc")["fitted"] == -1.1
    assert slp.exponent_row(e, "source", "M", 2.0, 1.5)["fitted"] == -0.5
    assert slp.exponent_row(e, "source", "M", 2.0, 2.5) is None
    assert slp.exponent_row(e, "main", "M", 1.5) is None
    assert slp.exponent_row(e, "main", "M", 2.0, estimator=("joint_form", "primary"))["fitted"] == -0.99
    assert slp.exponent_row(e.iloc[0:0], "main", "M", 2.0) is None


# ---------------------------------------------------------------------------------------------------- loading


def test_load_table_missing_table_names_it(tmp_path):
    with pytest.raises(slp.MissingTableError, match=r"'main\.parquet' not found"):
        slp.load_table(tmp_path, "main")
    with pytest.raises(FileNotFoundError, match=r"main_exponents\.csv"):
        slp.load_exponents(tmp_path, "main")


def test_load_table_missing_column_names_it(tmp_path):
    pd.DataFrame({"a": [2.0], "M": [16]}).to_parquet(tmp_path / "main.parquet")
    df = slp.load_table(tmp_path, "main")
    assert df.attrs["table"] == "main.parquet"
    with pytest.raises(slp.MissingColumnError, match=r"main\.parquet is missing column\(s\) \['N_eff'\]"):
        slp.load_table(tmp_path, "main", required=["a", "M", "N_eff"])


def test_load_exponents_requires_the_typed_columns(tmp_path):
    (tmp_path / "fits").mkdir()
    path = tmp_path / "fits" / "main_exponents.csv"
    pd.DataFrame([_row()]).drop(columns=["intercept", "x_hi", "scale"]).to_csv(path, index=False)
    with pytest.raises(slp.MissingColumnError, match=r"\['scale', 'x_hi', 'intercept'\]"):
        slp.load_exponents(tmp_path, "main")
    pd.DataFrame([_row(reason=np.nan, fixed_variable=np.nan)]).to_csv(path, index=False)
    e = slp.load_exponents(tmp_path, "main")
    assert e["reason"].iloc[0] == "" and e["fixed_variable"].iloc[0] == ""


def test_resolve_paths_from_repo_root_and_from_notebooks(tmp_path, monkeypatch):
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    p = slp.resolve_paths(**PARAMETER_DEFAULTS)
    assert p.tables_dir == tmp_path / "results" / "tables"
    assert p.provenance_path == tmp_path / "results" / "provenance.json"
    monkeypatch.chdir(tmp_path / "notebooks")
    p = slp.resolve_paths(**PARAMETER_DEFAULTS)
    assert p.tables_dir == tmp_path / "results" / "tables"
    assert p.figures_dir == tmp_path / "results" / "figures"


# ---------------------------------------------------------------------------------------------------- levels, aggregation


def test_pick_levels():
    grid = [16, 32, 64, 128, 256, 512, 1024]
    assert slp.pick_levels(grid, 4) == [16, 128, 256, 1024] or slp.pick_levels(grid, 4) == [16, 64, 256, 1024]
    assert slp.pick_levels([1, 2, 3], 4) == [1, 2, 3]
    assert 32.0 in slp.pick_levels(grid, 3, include=[32])
    assert slp.pick_levels(grid, 3, include=[np.nan]) == slp.pick_levels(grid, 3)
    assert slp.pick_levels([], 3) == []


def test_complete_levels_skips_values_only_a_subgrid_has():
    df = pd.DataFrame({"M": [8, 8, 8, 64, 64], "N": [200, 1000, 10000, 1000, 10000]})
    assert slp.complete_levels(df, "N", "M") == [1000.0, 10000.0]
    assert slp.complete_levels(df.iloc[[0]], "N", "M") == [200.0]


def test_aggregate_mc_pools_seeds_with_total_variance():
    df = pd.DataFrame({
        "M": [16, 16], "mc_trials": [100, 100], "mc_mean": [1.0, 3.0], "mc_std": [1.0, 1.0],
        "sigma2": [0.5, 0.5],
    })
    out = slp.aggregate_mc(df, ["M"])
    assert out["y"].iloc[0] == pytest.approx(2.0)
    assert out["err"].iloc[0] == pytest.approx(np.sqrt(1.0 + 1.0))  # within 1 + between 1
    out = slp.aggregate_mc(df, ["M"], subtract_sigma2=True)
    assert out["y"].iloc[0] == pytest.approx(1.5)
    assert slp.aggregate_mc(df.assign(mc_trials=0), ["M"]).empty
    none = slp.aggregate_mc(df.drop(columns="mc_trials"), ["M"])
    assert list(none.columns) == ["M", "y", "err", "trials"]
    # typed even when empty, so a figure can merge it with the exact curves of a run without Monte Carlo
    assert none.merge(slp.aggregate_exact(df, ["M"], "mc_mean"), on="M").empty


def test_aggregate_exact_over_seeds():
    df = pd.DataFrame({"M": [16, 16, 32], "risk": [1.0, 3.0, 5.0]})
    out = slp.aggregate_exact(df, ["M"], "risk")
    assert out.to_dict("list") == {"M": [16, 32], "y": [2.0, 5.0], "y_lo": [1.0, 5.0], "y_hi": [3.0, 5.0]}


def test_the_theme_file_is_seaborns_theme():
    """set_style applies seaborn's theme from a file (no seaborn import in a figure's kernel); the file must be what
    the locked seaborn's set_theme sets over matplotlib's defaults (`make style` rewrites it), and a figure's start
    must not import seaborn through the helpers."""
    code = ("import json, sys, matplotlib; from sketchlaw.present import plotting as slp; slp.set_style(); "
            "print(json.dumps({'seaborn': 'seaborn' in sys.modules, 'k': matplotlib.colors.to_rgb('k'), "
            "'theme': slp.seaborn_theme()}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not out["seaborn"]
    assert out["theme"] == json.loads(slp.THEME_FILE.read_text(encoding="utf-8")), "run `make style`"
    rc = out["theme"]["rcParams"]
    assert rc["axes.prop_cycle"][0] == "#0173b2" and rc["font.family"] == ["DejaVu Sans"]
    assert out["theme"]["color_codes"]["k"] == out["k"] == [0.1, 0.1, 0.1]  # seaborn's "k", applied
