"""End-to-end tests of the Snakemake workflow on config/test.yaml (the harness: tests/harness.py)."""

from __future__ import annotations

import json
import os
import re
import stat
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import yaml

from .harness import (REPO, EXPERIMENT_TABLES, EXPONENT_COLUMNS, FINITE_COLUMNS, FOLLOWUP_TABLES, NOTEBOOKS, NOTHING_TO_DO,
                      RESULT_COLUMNS, RULES, job_stats, load_test_config, snakemake, workdir)
from .test_notebooks import NOTEBOOK_DIR, gallery, slp

# ----------------------------------------------------------------------------------------------------------------
# static checks (no jobs run)
# ----------------------------------------------------------------------------------------------------------------


def test_dry_run_default_config(request, tmp_path_factory, tmp_path):
    """`snakemake -n` plans the default config.yaml: every rule appears, nothing is written."""
    wd = workdir(request.config, tmp_path_factory, "dry")
    results = tmp_path / "results"
    run = snakemake(request.config, wd, "-n", "--cores", "2", "--config", f"results_dir={results}",
                    log=tmp_path / "dry.log", timeout=600)
    assert run.returncode == 0, run.tail()
    stats = job_stats(run.output)
    # the real dataset and the covariates (config/assumptions.yaml) are not in the default
    expected = set(RULES) - {"dataset_spectrum", "covariates_stability"}
    assert expected <= set(stats), f"rules missing from the plan: {expected - set(stats)}"
    from sketchlaw.workflow import registry

    default = yaml.safe_load((wd / "config.yaml").read_text())
    assert stats["notebook"] == len(registry.active_notebooks(default))  # the batch and reuse follow-ups are not in it
    assert not results.exists(), "a dry run wrote into results_dir"


def test_lint(request, tmp_path_factory, tmp_path):
    wd = workdir(request.config, tmp_path_factory, "lint")
    run = snakemake(request.config, wd, "--lint", "--config", f"results_dir={tmp_path / 'results'}",
                    log=tmp_path / "lint.log", timeout=600)
    assert run.returncode == 0, f"snakemake --lint reports issues:\n{run.output}"
    assert "Lints for" not in run.output, run.output


@pytest.mark.workflow
def test_configfile_with_one_experiment_runs_only_that_experiment(request, tmp_path_factory, tmp_path):
    cfg = load_test_config(request.config, tmp_path_factory)
    cfg["experiments"] = {"main": cfg["experiments"]["main"]}
    path = tmp_path / "only_main.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    wd = workdir(request.config, tmp_path_factory, "only-main")
    run = snakemake(request.config, wd, "-n", "--cores", "1", "--configfile", path,
                    "--config", f"results_dir={tmp_path / 'results'}", log=tmp_path / "dry.log", timeout=600)
    assert run.returncode == 0, run.tail()
    stats = job_stats(run.output)
    assert stats.get("aggregate") == 1, f"expected one table (main), plan has {stats}"
    assert "train_baselines" not in stats, f"the variance experiment (not in {path.name}) is planned: {stats}"


# ----------------------------------------------------------------------------------------------------------------
# end to end: config/test.yaml
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_plan_covers_every_rule(shared):
    stats = job_stats(shared.run.output)
    missing = [r for r in RULES if r not in stats]
    assert not missing, f"rules not in the plan of config/test.yaml: {missing} (plan: {stats})"
    tiny = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    assert stats["aggregate"] == len(tiny["experiments"])  # one table per experiment of the tiny config
    assert set(EXPERIMENT_TABLES + FOLLOWUP_TABLES) <= set(tiny["experiments"])
    assert stats["notebook"] == len(NOTEBOOKS)


@pytest.mark.workflow
@pytest.mark.parametrize("name", FOLLOWUP_TABLES)
def test_followup_table_columns(shared, name):
    """Each follow-up table has its registry columns, finite results, and its CSV twin."""
    from sketchlaw.workflow import registry

    df = pd.read_parquet(shared.results / "tables" / f"{name}.parquet")
    csv = pd.read_csv(shared.results / "tables" / f"{name}.csv")
    missing = [c for c in registry.EXPERIMENTS[name].columns if c not in df.columns]
    assert not missing, f"{name}.parquet lacks {missing}"
    assert list(csv.columns) == list(df.columns) and len(df) == len(csv) > 0
    assert (df["experiment"] == name).all()
    for col in ("risk", "reducible", "approx", "bias", "variance"):
        if col in df:
            assert np.isfinite(df[col].to_numpy(float)).all(), (name, col)
    if name == "schedules":
        claim = pd.read_parquet(shared.results / "tables" / "schedules_claim.parquet")
        assert set(claim["kind"]) == {"geometric", "power"} and (claim["approx"] == 0).all()


@pytest.mark.workflow
@pytest.mark.parametrize("name", EXPERIMENT_TABLES)
def test_experiment_table_columns(shared, tables, name):
    df = tables[name]
    csv = pd.read_csv(shared.results / "tables" / f"{name}.csv")
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    assert not missing, f"{name}.parquet lacks {missing}"
    assert list(csv.columns) == list(df.columns), f"{name}.csv and {name}.parquet have different columns"
    assert len(df) == len(csv) > 0
    assert (df["experiment"] == name).all()
    if name == "variance":
        assert set(df["method"]) == {"sgd", "ols", "ridge"}, set(df["method"])


@pytest.mark.workflow
def test_exponents_table(shared):
    exps = pd.read_csv(shared.results / "tables" / "exponents.csv")
    missing = [c for c in EXPONENT_COLUMNS if c not in exps.columns]
    assert not missing, f"exponents.csv lacks {missing}"
    assert len(exps) > 0
    assert {"main", "source", "logpower"} <= set(exps["experiment"]), set(exps["experiment"])
    assert (shared.results / "tables" / "exponents.md").stat().st_size > 0


@pytest.mark.workflow
@pytest.mark.parametrize("name", EXPERIMENT_TABLES)
def test_results_are_finite_and_nonnegative(tables, name):
    df = tables[name]
    for col in FINITE_COLUMNS:
        values = df[col].to_numpy(dtype=float)
        assert np.isfinite(values).all(), f"{name}.{col} has non-finite values: {df.loc[~np.isfinite(values)]}"
    for col in ("bias", "variance", "approx"):
        assert (df[col] >= 0).all(), f"{name}.{col} < 0: {df.loc[df[col] < 0, col].tolist()}"
    assert (df["sigma2"] >= 0).all()


RISK_IDENTITY_CASES = [pytest.param(n, None, id=n) for n in EXPERIMENT_TABLES if n != "variance"] + [
    pytest.param("variance", "sgd", id="variance-sgd"),
    pytest.param("variance", "ols", id="variance-ols"),
    pytest.param("variance", "ridge", id="variance-ridge"),
]


@pytest.mark.workflow
@pytest.mark.parametrize("name,method", RISK_IDENTITY_CASES)
def test_risk_is_sum_of_its_parts(tables, name, method):
    df = tables[name]
    if method is not None:
        df = df[df["method"] == method]
    assert len(df) > 0
    parts = df["sigma2"] + df["approx"] + df["bias"] + df["variance"]
    rel = (parts - df["risk"]).abs() / df["risk"].abs()
    assert rel.max() <= 1e-12, df.loc[rel > 1e-12, ["M", "N", "risk", "sigma2", "approx", "bias", "variance"]]
    np.testing.assert_allclose(df["excess"], df["bias"] + df["variance"], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(df["reducible"], df["risk"] - df["sigma2"], rtol=1e-12, atol=1e-15)


@pytest.mark.workflow
def test_monte_carlo_agrees_with_exact_risk(request, tmp_path_factory, tables):
    """Main table: every Monte Carlo point (fresh w* and data per trial) within 5 standard errors of the exact
    expected risk of the same sketch."""
    cfg = load_test_config(request.config, tmp_path_factory)
    main, mc_cfg = cfg["experiments"]["main"], cfg["experiments"]["main"]["montecarlo"]
    seeds = main.get("sketch_seeds", cfg["defaults"]["sketch_seeds"])
    df = tables["main"]
    mc = df[df["mc_trials"] > 0]
    assert len(mc) == len(main["a"]) * len(mc_cfg["M"]) * len(mc_cfg["N"]) * len(seeds), mc
    assert (mc["mc_trials"] == mc_cfg["trials"]).all()
    assert set(mc["M"]) == set(mc_cfg["M"]) and set(mc["N"]) == set(mc_cfg["N"])
    assert (mc["mc_sem"] > 0).all() and np.isfinite(mc["mc_mean"]).all()
    np.testing.assert_allclose(mc["mc_sem"], mc["mc_std"] / np.sqrt(mc["mc_trials"]), rtol=1e-12)
    z = (mc["mc_mean"] - mc["risk"]) / mc["mc_sem"]
    assert (z.abs() <= 5).all(), mc.assign(z=z)[["a", "M", "N", "sketch_seed", "risk", "mc_mean", "mc_sem", "z"]]
    no_mc = df[df["mc_trials"] == 0]
    assert no_mc["mc_mean"].isna().all()


@pytest.mark.workflow
def test_least_squares_variance_matches_its_monte_carlo(tables):
    """variance table, method = ols: the exact least-squares variance formula against its Monte Carlo estimate."""
    ols = tables["variance"][lambda d: d["method"] == "ols"]
    assert len(ols) > 0
    z = (ols["mc_mean"] - ols["variance"]) / ols["mc_sem"]
    assert (z.abs() <= 5).all(), ols.assign(z=z)[["M", "N", "variance", "mc_mean", "mc_sem", "z"]]


@pytest.mark.workflow
def test_figures(shared):
    figures = shared.results / "figures"
    for nb in NOTEBOOKS:
        png, pdf = (figures / f"{nb}.png").read_bytes(), (figures / f"{nb}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n", f"{nb}.png is not a PNG"
        assert len(png) > 10_000, f"{nb}.png is only {len(png)} bytes"
        assert pdf[:5] == b"%PDF-" and pdf.rstrip().endswith(b"%%EOF"), f"{nb}.pdf is not a complete PDF"
        assert len(pdf) > 5_000, f"{nb}.pdf is only {len(pdf)} bytes"


@pytest.mark.workflow
def test_executed_notebooks(shared):
    for nb in NOTEBOOKS:
        ipynb, html = shared.results / "notebooks" / f"{nb}.ipynb", shared.results / "notebooks" / f"{nb}.html"
        doc = json.loads(ipynb.read_text())
        code = [c for c in doc["cells"] if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{nb}.ipynb has unexecuted cells"
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{nb}.ipynb has error outputs: {errors}"
        assert "papermill" in doc["metadata"], f"{nb}.ipynb was not run by papermill"
        text = html.read_text(errors="replace")
        assert "<html" in text.lower() and len(text) > 10_000, f"{nb}.html looks empty"
        sidecar = json.loads((shared.results / "figures" / f"{nb}.json").read_text(encoding="utf-8"))
        title, caption = slp.split_caption(gallery.notebook_caption(NOTEBOOK_DIR / f"{nb}.ipynb"))
        assert sidecar == {"name": nb, "title": title, "caption": caption}, nb


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src") and v]


@pytest.mark.workflow
def test_index_links_every_figure(shared):
    index = shared.results / "index.html"
    parser = _Links()
    parser.feed(index.read_text())
    links = set(parser.links)
    for nb in NOTEBOOKS:
        for target in (f"figures/{nb}.png", f"figures/{nb}.pdf", f"notebooks/{nb}.html"):
            assert target in links, f"index.html does not link {target}"
    for name in EXPERIMENT_TABLES + FOLLOWUP_TABLES:
        assert f"tables/{name}.csv" in links and f"tables/{name}.parquet" in links
    local = [link for link in links if not re.match(r"^[a-z]+:", link) and not link.startswith("#")]
    dangling = [link for link in local if not (index.parent / link).exists()]
    assert not dangling, f"index.html links missing files: {dangling}"


@pytest.mark.workflow
def test_second_invocation_has_nothing_to_do(request, shared):
    run = snakemake(request.config, shared.workdir, "-n", *shared.args, log=shared.results.parent / "second.log",
                    timeout=600)
    assert run.returncode == 0, run.tail()
    assert NOTHING_TO_DO in run.output, f"second invocation would run jobs:\n{run.tail()}"
    assert not job_stats(run.output), job_stats(run.output)


@pytest.mark.workflow
def test_outputs_respect_the_umask(shared):
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    wrong = {str(p.relative_to(shared.results)): oct(stat.S_IMODE(p.stat().st_mode))
             for p in sorted(shared.results.rglob("*")) if p.is_file() and "logs" not in p.parts
             and "benchmarks" not in p.parts and stat.S_IMODE(p.stat().st_mode) != expected}
    assert not wrong, f"files not created with mode {oct(expected)}: {wrong}"


@pytest.mark.workflow
def test_sketch_families_have_their_rows_and_monte_carlo_agrees(request, tmp_path_factory, shared, tables):
    """The sketches experiment: one curve per configured family in its table and in the exponent table, and every
    Monte Carlo point within 5 standard errors of the exact risk of its own sketch (docs/METHODS.md §19)."""
    block = load_test_config(request.config, tmp_path_factory)["experiments"]["sketches"]
    df = tables["sketches"]
    assert set(df["sketch"]) == set(block["sketches"])
    exps = pd.read_csv(shared.results / "tables" / "exponents.csv")
    primary_m = exps[(exps["experiment"] == "sketches") & (exps["variable"] == "M") & (exps["estimator"] == "primary")]
    assert sorted(primary_m["sketch"]) == sorted(block["sketches"]) and primary_m["fitted"].notna().all()
    mc = df[df["mc_trials"] > 0]
    assert set(mc["sketch"]) == set(block["sketches"])
    z = (mc["mc_mean"] - mc["risk"]) / mc["mc_sem"]
    assert (z.abs() <= 5).all(), mc.assign(z=z)[["sketch", "M", "N", "risk", "mc_mean", "mc_sem", "z"]]


@pytest.mark.workflow
def test_covariates_have_their_rows_and_the_gaussian_law_agrees(request, tmp_path_factory, shared):
    """The covariates experiment: one curve per configured law in its table and in the exponent table, the Gaussian
    law's Monte Carlo within 5 standard errors of the exact risk on the same sketch, and the stability table's
    Gaussian map bound equal to the exact engine's (docs/METHODS.md §21)."""
    block = load_test_config(request.config, tmp_path_factory)["experiments"]["covariates"]
    table = pd.read_parquet(shared.results / "tables" / "covariates.parquet")
    df = table[table["coordinates"] != ""]  # "": the Gaussian exact curve's points beyond the Monte Carlo's grid
    assert set(df["coordinates"]) == set(block["coordinates"]) and df["mc_mean"].notna().all()
    assert table["M"].max() == max(block["M"]) and df["M"].max() == max(block["montecarlo"]["M"])
    exps = pd.read_csv(shared.results / "tables" / "exponents.csv")
    mc_rows = exps[(exps["experiment"] == "covariates") & (exps["estimator"] == "montecarlo")]
    assert sorted(mc_rows["coordinates"]) == sorted(2 * block["coordinates"])
    gauss = df[df["coordinates"] == "gaussian"]
    z = (gauss["mc_mean"] - gauss["risk"]) / gauss["mc_sem"]
    assert (z.abs() <= 5).all(), gauss.assign(z=z)[["M", "N", "risk", "mc_mean", "mc_sem", "z"]]
    stability = pd.read_parquet(shared.results / "tables" / "covariates_stability.parquet").set_index("coordinates")
    assert stability.loc["gaussian", "gamma_map"] == pytest.approx(stability.loc["gaussian", "gamma_gaussian"],
                                                                   rel=2e-4)


@pytest.mark.workflow
def test_real_dataset_rows(shared):
    """The digits experiment: its spectrum table (dataset and resamples), the fitted degrees with intervals, and real-data
    SGD beside its Gaussian equivalent (docs/METHODS.md §20)."""
    spectrum = pd.read_parquet(shared.results / "tables" / "digits_spectrum.parquet")
    assert spectrum["replicate"].nunique() >= 3 and (spectrum.groupby("replicate")["mode"].max() == 1797).all()
    exps = pd.read_csv(shared.results / "tables" / "exponents.csv")
    d = exps[exps["experiment"] == "digits"].set_index(["variable", "estimator"])
    for variable in ("a", "b"):
        r = d.loc[(variable, "primary")]
        assert r["ci_low"] < r["fitted"] < r["ci_high"] and r["verdict"] == "no theory"
    assert 1.3 < d.loc[("a", "primary"), "a"] < 2.2 and 1.3 < d.loc[("a", "primary"), "b"] < 2.2
    table = pd.read_parquet(shared.results / "tables" / "digits.parquet")
    mc = table[table["mc_trials"] > 0]
    assert len(mc) and (mc["mc_mean"] / mc["risk"]).between(0.8, 1.25).all()
