"""Fast tests of the presentation layer: deterministic figure files with embedded provenance, slope annotations,
table loading errors, and the shape of the committed notebooks."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from sketchlaw import plotting as slp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
EXPECTED_NOTEBOOKS = {
    "fig1_risk_landscape",
    "fig2_scaling_fits",
    "appendix_monte_carlo",
    "fit_diagnostics",
    "source_condition",
    "log_power_law",
    "compute_optimal",
    "variance_vs_model_size",
    "stepsize",
}
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
    slp.loglog(axes[0], r"$N_\mathrm{eff}$", r"$R - \sigma^2$")
    slp.annotate_slope(axes[0], -0.4981, -0.5032, -0.4921, -0.5)
    axes[1].hist(np.linspace(-1, 1, 101) ** 3, bins=20)
    axes[0].legend()
    return fig


def _save(tmp_path, sub, fig=None):
    return slp.save_figure(fig or _figure(), tmp_path / sub, "demo", PROV)


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
    png, _ = slp.save_figure(_figure(), tmp_path / "f", "demo", p)
    assert png.read_bytes() == saved["a"][0].read_bytes()
    with pytest.raises(slp.MissingColumnError, match="config_hash"):
        slp.save_figure(_figure(), tmp_path / "h", "demo", {"git_commit": "x", "git_dirty": False})
    with pytest.raises(slp.MissingTableError, match="provenance file not found"):
        slp.load_provenance(tmp_path / "absent.json")


# ---------------------------------------------------------------------------------------------------- annotations


@pytest.mark.parametrize(
    "args, expected",
    [
        ((-0.4981, -0.5032, -0.4921, -0.5), "k = \u22120.498 [\u22120.503, \u22120.492] (theory \u22120.5)"),
        ((-0.998, -1.01, -0.985, -1.0), "k = \u22120.998 [\u22121.010, \u22120.985] (theory \u22121)"),
        ((-0.331, -0.34, -0.32, -1 / 3), "k = \u22120.331 [\u22120.340, \u22120.320] (theory \u22120.333)"),
        ((0.3312, 0.3, 0.36, 1 / 3), "k = 0.331 [0.300, 0.360] (theory 0.333)"),
        ((-0.5, float("nan"), float("nan"), -0.5), "k = \u22120.500 [n/a, n/a] (theory \u22120.5)"),
        ((-0.5, -0.6, -0.4, None), "k = \u22120.500 [\u22120.600, \u22120.400]"),
        ((-0.5, -0.6, -0.4, float("nan")), "k = \u22120.500 [\u22120.600, \u22120.400] (theory n/a)"),
    ],
)
def test_format_slope(args, expected):
    assert slp.format_slope(*args) == expected


def test_annotate_slope_writes_and_stacks():
    fig, ax = plt.subplots()
    t1 = slp.annotate_slope(ax, -0.4981, -0.5032, -0.4921, -0.5)
    t2 = slp.annotate_slope(ax, -0.333, -0.34, -0.32, -1 / 3, label="vs N_eff: ")
    assert t1.get_text() == "k = \u22120.498 [\u22120.503, \u22120.492] (theory \u22120.5)"
    assert t2.get_text().startswith("vs N_eff: k = \u22120.333")
    assert t2.get_position()[1] > t1.get_position()[1]  # lower-left stack grows upwards
    assert t1.get_transform() == ax.transAxes
    t3 = slp.annotate_fit(ax, None, loc="upper right")
    assert "no fit" in t3.get_text()


# ---------------------------------------------------------------------------------------------------- loading


def test_load_table_missing_table_names_it(tmp_path):
    with pytest.raises(slp.MissingTableError, match=r"'main\.parquet' not found"):
        slp.load_table(tmp_path, "main")
    with pytest.raises(FileNotFoundError, match=r"exponents\.csv"):
        slp.load_exponents(tmp_path)


def test_load_table_missing_column_names_it(tmp_path):
    pd.DataFrame({"a": [2.0], "M": [16]}).to_parquet(tmp_path / "main.parquet")
    df = slp.load_table(tmp_path, "main")
    assert df.attrs["table"] == "main.parquet"
    with pytest.raises(slp.MissingColumnError, match=r"main\.parquet is missing column\(s\) \['N_eff'\]"):
        slp.load_table(tmp_path, "main", required=["a", "M", "N_eff"])


@pytest.mark.parametrize(
    "call",
    [
        lambda df: slp.fig_risk_landscape(df),
        lambda df: slp.fig_scaling_fits(df, None),
        lambda df: slp.fig_appendix_monte_carlo(df),
        lambda df: slp.fig_fit_diagnostics(df),
        lambda df: slp.fig_source_condition(df),
        lambda df: slp.fig_log_power_law(df),
        lambda df: slp.fig_compute_optimal(df, df),
        lambda df: slp.fig_variance_vs_model_size(df),
        lambda df: slp.fig_stepsize(df),
    ],
)
def test_figures_fail_clearly_on_missing_columns(call):
    df = pd.DataFrame({"a": [2.0], "M": [16]})
    df.attrs["table"] = "some_table.parquet"
    with pytest.raises(slp.MissingColumnError, match=r"some_table\.parquet is missing column"):
        call(df)


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


# ---------------------------------------------------------------------------------------------------- fit helpers


@pytest.mark.parametrize(
    "window, fixed, expected",
    [
        ("1000:1e6", None, (1000.0, 1e6, {})),
        ("[16, 128]", "N=10000000", (16.0, 128.0, {"N": 1e7})),
        ("1e3:1e6 @ M=1024", None, (1e3, 1e6, {"M": 1024.0})),
        ("144.7-1.75e4; N_eff=2.5e5", "", (144.7, 1.75e4, {"N_eff": 2.5e5})),
        # the forms sketchlaw.analysis writes
        ("N=1e+09, M in [16, 256] (5 points)", None, (16.0, 256.0, {"N": 1e9})),
        ("M=1024, N_eff in [144.8, 1.755e+04] (7 points)", None, (144.8, 1.755e4, {"M": 1024.0})),
        ("C in [1e+05, 1e+10] (9 budgets with an interior optimum); theory up to log factors", None,
         (1e5, 1e10, {})),
    ],
)
def test_parse_window(window, fixed, expected):
    assert slp.parse_window(window, fixed) == expected


def test_parse_window_missing():
    lo, hi, fx = slp.parse_window(float("nan"))
    assert np.isnan(lo) and np.isnan(hi) and fx == {}


def test_draw_fit_line_sits_on_power_law():
    fig, ax = plt.subplots()
    x = np.geomspace(10, 1e4, 13)
    y = 7.0 * x**-0.5
    lo, hi = slp.draw_fit_line(ax, x, y, -0.5, 100, 1000)
    xs, ys = ax.lines[-1].get_data()
    assert (lo, hi) == (100, 1000) and xs[0] == pytest.approx(100) and xs[-1] == pytest.approx(1000)
    np.testing.assert_allclose(ys, 7.0 * xs**-0.5, rtol=1e-12)


def test_loglog_fit_recovers_slope():
    x = np.geomspace(1, 1e3, 10)
    fit = slp.loglog_fit(x, 2 * x**-0.75 * np.exp(0.01 * np.sin(np.arange(10))))
    assert fit["ci_low"] < -0.75 < fit["ci_high"]
    assert fit["fitted"] == pytest.approx(-0.75, abs=0.01)


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


def test_find_exponent_workflow_method_names():
    e = pd.DataFrame({
        "experiment": ["main"] * 3, "a": [2.0] * 3, "b": [2.0] * 3, "variable": ["M"] * 3,
        "method": ["window slope", "joint additive fit", "mc window slope"], "fitted": [-1.0, -0.9, -1.1],
    })
    assert slp.find_exponent(e, "main", "M", 2.0)["fitted"] == -1.0
    assert slp.find_exponent(e, "main", "M", 2.0, joint=True)["fitted"] == -0.9
    assert slp.find_exponent(e, "main", "M", 2.0, monte_carlo=True)["fitted"] == -1.1


def test_find_exponent_selects_method():
    e = pd.DataFrame({
        "experiment": ["main"] * 3, "a": [2.0] * 3, "b": [2.0] * 3, "variable": ["M"] * 3,
        "method": ["ols", "joint", "mc_ols"], "fitted": [-1.0, -0.9, -1.1],
    })
    assert slp.find_exponent(e, "main", "M", 2.0)["fitted"] == -1.0
    assert slp.find_exponent(e, "main", "M", 2.0, joint=True)["fitted"] == -0.9
    assert slp.find_exponent(e, "main", "M", 2.0, monte_carlo=True)["fitted"] == -1.1
    assert slp.find_exponent(e, "main", "N_eff", 2.0) is None
    assert slp.find_exponent(e, "main", "M", 1.5) is None


def test_pick_levels():
    assert slp.pick_levels([16, 32, 64, 128, 256, 512, 1024], 4) == [16, 128, 512, 1024] or \
        slp.pick_levels([16, 32, 64, 128, 256, 512, 1024], 4) == [16, 64, 256, 1024]
    assert slp.pick_levels([1, 2, 3], 4) == [1, 2, 3]
    assert 32.0 in slp.pick_levels([16, 32, 64, 128, 256, 512, 1024], 3, include=[32])


# ---------------------------------------------------------------------------------------------------- figures
# A tiny schema-shaped data set (theory-shaped formulas, not the engine) so every figure function's code path runs.


def _rows(experiment, a, b, Ms, Ns, spectrum="power", seeds=(0, 1), mc=(), gamma=0.1, sigma2=1.0):
    out = []
    for M in Ms:
        for N in Ns:
            for s in seeds:
                neff = N / np.log(N)
                approx = M ** (1 - b) * (1 + 0.01 * s)
                bias = (2 * gamma * neff) ** ((1 - b) / a)
                var = sigma2 * min(M, (gamma * neff) ** (1 / a)) / neff
                risk = sigma2 + approx + bias + var
                r = dict(experiment=experiment, spectrum=spectrum, a=a, b=b, prior="isotropic", M=M, d=32 * M, N=N,
                         N_eff=neff, gamma=gamma, schedule="geometric", sigma2=sigma2, sketch_seed=s, risk=risk,
                         approx=approx, bias=bias, variance=var, excess=bias + var, reducible=risk - sigma2,
                         mc_trials=0, mc_mean=np.nan, mc_std=np.nan, mc_sem=np.nan)
                if (M, N) in mc:
                    r.update(mc_trials=50, mc_mean=risk * 1.001, mc_std=0.1 * (risk - sigma2), mc_sem=0.01)
                out.append(r)
    return out


@pytest.fixture(scope="module")
def tiny():
    Ms, Ns = [16, 64, 256], [1000, 10000, 100000, 1000000]
    mc = {(M, N) for M in (16, 64) for N in (1000, 10000)}
    main = pd.DataFrame([r for a in (1.5, 2.0) for r in _rows("main", a, a, Ms, Ns, mc=mc)])
    source = pd.DataFrame([r for b in (1.5, 3.0) for r in _rows("source", 2.0, b, Ms, Ns)])
    logpower = pd.DataFrame(_rows("logpower", 2.0, 2.0, Ms, Ns, spectrum="logpower")).assign(b=np.nan)
    compute = pd.DataFrame([dict(r, compute=r["M"] * r["N"]) for r in _rows("compute", 2.0, 2.0, Ms, Ns)])
    frontier = pd.DataFrame({"a": 2.0, "compute": [1e5, 1e6, 1e7, 1e8], "M_star": [16, 30, 60, 120.0],
                             "N_star": [6e3, 3e4, 1.6e5, 8e5], "reducible_star": [0.1, 0.05, 0.02, 0.01]})
    window = {"M": "N=1e+06, M in [16, 64] (2 points)", "N_eff": "M=256, N_eff in [144.8, 1.4e+04] (3 points)"}
    exps = []
    for exp_, a, b in (("main", 1.5, 1.5), ("main", 2.0, 2.0), ("source", 2.0, 1.5), ("source", 2.0, 3.0)):
        for var, th in (("M", -(b - 1)), ("N_eff", -(b - 1) / a if b <= a else np.nan)):
            exps.append(dict(experiment=exp_, a=a, b=b, variable=var, fitted=th, ci_low=th - 0.01,
                             ci_high=th + 0.01, theory=th, window=window[var], method="window slope"))
            if exp_ == "main":
                exps.append(dict(exps[-1], method="joint additive fit", window="all 24 grid points"))
    for var in ("log_M", "log_N_eff"):
        exps.append(dict(experiment="logpower", a=2.0, b=np.nan, variable=var, fitted=-1.0, ci_low=-1.1,
                         ci_high=-0.9, theory=-1.0, window="", method="window slope"))
    for var, th in (("M_star", 1 / 3), ("N_star", 2 / 3), ("reducible_star", -1 / 3)):
        exps.append(dict(experiment="compute", a=2.0, b=2.0, variable=var, fitted=th, ci_low=th - 0.05,
                         ci_high=th + 0.05, theory=th, window="C in [1e+05, 1e+08] (4 budgets)",
                         method="frontier slope"))
    exps = pd.DataFrame(exps)
    diag = []
    for a in (1.5, 2.0):
        for var in ("M", "N_eff"):
            for fixed in (256.0, 1e6):
                diag += [dict(experiment="main", a=a, b=a, variable=var, kind="local_slope", fixed=fixed,
                              x=float(x), value=-0.5 + 0.01 * i) for i, x in enumerate((16, 64, 256))]
            diag += [dict(experiment="main", a=a, b=a, variable=var, kind="bootstrap", fixed=np.nan, x=float(i),
                          value=-0.5 + 0.001 * i) for i in range(20)]
            diag += [dict(experiment="main", a=a, b=a, variable=var, kind="window_start", fixed=256.0, x=x,
                          value=-0.5) for x in (16.0, 64.0)]
        diag += [dict(experiment="main", a=a, b=a, variable="joint", kind="residual", fixed=float(M),
                      x=N / np.log(N), value=0.01) for M in Ms for N in Ns]
    diag = pd.DataFrame(diag)
    var_rows = []
    for r in _rows("variance", 2.0, 2.0, [4, 16, 64, 200], [256, 1024], seeds=(0,)):
        var_rows.append(dict(r, method="sgd", ridge_lambda=np.nan))
        if r["M"] < r["N"] - 1:
            v = r["M"] / (r["N"] - r["M"] - 1)
            var_rows.append(dict(r, method="ols", variance=v, mc_trials=20, mc_mean=v, mc_std=np.nan,
                                 mc_sem=0.1 * v, ridge_lambda=0.0))
        var_rows.append(dict(r, method="ridge", variance=0.01, mc_trials=20, mc_mean=0.01, mc_std=np.nan,
                             mc_sem=0.001, ridge_lambda=0.1))
    variance = pd.DataFrame(var_rows)
    stepsize = pd.DataFrame([dict(r, gamma_max=0.5) for g in (0.05, 0.1, 0.2, 0.4)
                             for r in _rows("stepsize", 2.0, 2.0, [64, 256], Ns, seeds=(0,), gamma=g)])
    return dict(main=main, source=source, logpower=logpower, compute=compute, frontier=frontier, exps=exps,
                diag=diag, variance=variance, stepsize=stepsize)


FIGURES = {
    "fig1_risk_landscape": lambda t: slp.fig_risk_landscape(t["main"], t["exps"]),
    "fig2_scaling_fits": lambda t: slp.fig_scaling_fits(t["main"], t["exps"]),
    "appendix_monte_carlo": lambda t: slp.fig_appendix_monte_carlo(t["main"], t["exps"]),
    "fit_diagnostics": lambda t: slp.fig_fit_diagnostics(t["diag"], t["exps"]),
    "source_condition": lambda t: slp.fig_source_condition(t["source"], t["exps"]),
    "log_power_law": lambda t: slp.fig_log_power_law(t["logpower"], t["exps"]),
    "compute_optimal": lambda t: slp.fig_compute_optimal(t["compute"], t["frontier"], t["exps"]),
    "variance_vs_model_size": lambda t: slp.fig_variance_vs_model_size(t["variance"]),
    "stepsize": lambda t: slp.fig_stepsize(t["stepsize"]),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_functions_build(name, tiny):
    slp.set_style()
    fig = FIGURES[name](tiny)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    if name not in ("variance_vs_model_size", "stepsize"):
        assert any(t.startswith(("k = ", "fit at", "joint fit", "OLS on MC", "e_")) or " k = " in t for t in texts), texts
    assert all(ax.get_xscale() == "log" for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"
               and name != "fit_diagnostics")
    plt.close(fig)


def test_scaling_fit_annotation_reads_exponents(tiny):
    slp.set_style()
    fig = slp.fig_scaling_fits(tiny["main"], tiny["exps"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "fit at M = 256: k = \u22120.333 [\u22120.343, \u22120.323] (theory \u22120.333)" in texts
    assert any(t.endswith("k = \u22121.000 [\u22121.010, \u22120.990] (theory \u22121)") for t in texts)
    plt.close(fig)


def test_summary_tables(tiny):
    assert not slp.table_risk_landscape(tiny["main"]).empty
    assert not slp.table_monte_carlo(tiny["main"]).empty
    assert set(slp.table_exponents(tiny["exps"], "main")["variable"]) == {"M", "N_eff"}
    assert not slp.table_fit_diagnostics(tiny["diag"], tiny["exps"]).empty
    assert not slp.table_source_condition(tiny["source"]).empty
    assert len(slp.table_compute_frontier(tiny["frontier"])) == 4
    assert {"ols", "ridge", "sgd"} <= set(slp.table_variance(tiny["variance"]).columns)
    st = slp.table_stepsize(tiny["stepsize"])
    assert (st["gamma_best"] <= st["gamma_max"]).all()


# ---------------------------------------------------------------------------------------------------- notebooks


def _notebooks():
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_expected_notebooks_exist():
    assert {p.stem for p in _notebooks()} >= EXPECTED_NOTEBOOKS


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterized(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        assert c.get("outputs") == [], f"{path.name}: a code cell has outputs"
        assert c.get("execution_count") is None, f"{path.name}: a code cell has an execution count"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    ns: dict = {}
    exec(tagged[0].source, {}, ns)  # the parameters cell is plain assignments
    assert ns == PARAMETER_DEFAULTS
    assert code.index(tagged[0]) == 0, "the parameters cell must come before any other code"
    src = "\n".join(c.source for c in code)
    assert f'NAME = "{path.stem}"' in src, "the notebook must write figures_dir/<its own name>.png|pdf"
    assert "slp.save_figure(" in src and "paths.figures_dir" in src
    assert any(c.cell_type == "markdown" for c in nb.cells)
