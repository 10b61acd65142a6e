"""The explorer without a browser (sketchlaw.present.explore, notebooks/explore.ipynb, scripts/dev/explore.py): what it
computes is the library's, it recomputes only what a change touches, its table holds the plotted values exactly,
its config block is a valid workflow config, a γ above the bound is refused naming it, and changes are debounced.
The browser test is tests/test_explore_browser.py; the redraw time is measured by benchmarks/bench_explore.py."""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from sketchlaw import api
from sketchlaw.present import explore
from sketchlaw.present.explore import Computer, Explorer, Setting
from sketchlaw.workflow import registry
from sketchlaw.workflow.grid import check_config

REPO = Path(__file__).resolve().parents[1]
SMALL = Setting(M=32, log10_N=(2.0, 4.0), per_decade=2, C=1e4)


@pytest.fixture(scope="module")
def computed():
    return Computer().compute(SMALL)


def test_every_part_is_the_librarys(computed):
    r, s = computed, SMALL
    curve = api.risk_curve(s.a, s.M, s.N_grid, **s.common())
    assert np.array_equal(r.curve[["risk", "bias", "variance"]].to_numpy(), curve[["risk", "bias", "variance"]])
    assert r.bound == api.stability_bound(s.a, s.M, seeds=s.seeds)
    assert np.array_equal(r.limit["risk"], api.limit_risk_curve(s.a, s.N_grid, head=explore.LIMIT_HEAD)["risk"])
    assert np.allclose(r.limit["risk"], api.limit_risk_curve(s.a, s.N_grid)["risk"], rtol=1e-9, atol=0)
    models = api.risk_curve(s.a, [8, 16, 32], s.N_grid[-1], **s.common())
    assert np.array_equal(r.models["risk"], models["risk"])
    assert r.optimum.M_star == api.compute_optimal(s.a, s.C, [8, 16, 32], **s.common()).M_star
    assert r.optimum.M_grid_best in (8, 16, 32) and r.optimum.N_star * r.optimum.M_star == pytest.approx(s.C)
    assert r.slopes["theory"] == -1.0 and -1.3 < r.slopes["approx"] < -0.7  # E Approx ~ M^-(a-1)
    api.clear_cache()  # the runs made on the explorer's threads, against a fresh run of the library
    fresh = api.risk_curve(s.a, [8, 16, 32], s.N_grid, **s.common())
    for got, want in ((r.curve, fresh[fresh["M"] == s.M]), (r.models, fresh[fresh["N"] == s.N_grid[-1]])):
        for col in ("risk", "bias", "variance"):
            assert np.allclose(got[col], want[col], rtol=1e-12, atol=0), col


def test_a_change_recomputes_only_what_it_touches():
    c = Computer()
    c.compute(SMALL)
    before = set(c._parts)
    c.compute(replace(SMALL, C=2e4))  # the budget: only the compute panel
    assert {name for name, _ in set(c._parts) - before} == {"optimum"}
    before = set(c._parts)
    c.compute(replace(SMALL, sigma2=0.5))  # σ²: every run, but not the stability bound
    assert {name for name, _ in set(c._parts) - before} == {"curve", "limit", "models", "optimum"}
    n = len(c._parts)
    c.compute(SMALL)  # back to a setting seen before: nothing new
    assert len(c._parts) == n


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._in = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        self._in = tag in ("td", "th")

    def handle_data(self, data):
        if self._in:
            self.rows[-1].append(data)


def test_the_data_table_holds_the_plotted_values_exactly(computed):
    parser = _Cells()
    parser.feed(explore.data_table(computed))
    head, *rows = parser.rows
    table = [dict(zip(head, r)) for r in rows]
    curve = [r for r in table if r["panel"] == "risk vs N"]
    assert len(curve) == len(computed.curve)
    for got, (_, want) in zip(curve, computed.curve.iterrows()):
        assert float(got["risk"]) == want["risk"] and float(got["bias"]) == want["bias"]  # repr: exact round trip
    assert len([r for r in table if r["panel"] == "M = inf limit"]) == len(SMALL.N_grid)
    assert {r["panel"] for r in table} == {"risk vs N", "risk vs M", "M = inf limit", "compute C", "compute C optimum"}
    optimum = [r for r in table if r["panel"] == "compute C optimum"]
    assert len(optimum) == 1 and float(optimum[0]["M"]) == computed.optimum.M_star


@pytest.mark.parametrize("setting,experiment", [
    (Setting(), "main"), (Setting(b=1.5), "source"), (Setting(spectrum="logpower", a=2.0), "logpower"),
    (Setting(schedule="cosine", params=(("final", 0.1),)), "schedules"), (Setting(batch=4), "batch"),
])
def test_config_block_is_a_valid_workflow_config(setting, experiment):
    from snakemake.utils import validate

    block = yaml.safe_load(explore.config_block(setting))
    assert list(block["experiments"]) == [experiment]
    config = {**yaml.safe_load((REPO / "config.yaml").read_text()), "experiments": block["experiments"]}
    validate(config, str(REPO / "schemas" / "config.schema.yaml"))
    check_config(config)
    settings = block["experiments"][experiment]
    assert settings["a"] == [setting.a] and settings["gamma"] == setting.gamma and max(settings["N"]) == 10**6


def test_parse_params_reads_the_clis_pairs():
    assert explore.parse_params("final=0.1, decay = 0.2") == (("decay", 0.2), ("final", 0.1))
    assert explore.parse_params("n_phases=3") == (("n_phases", 3),)
    with pytest.raises(api.ParameterError, match="schedule parameters"):
        explore.parse_params("final")


def test_explorer_refuses_an_unstable_step_naming_the_bound():
    e = Explorer(SMALL)
    first = e.update()
    assert first is not None and e.updates == 1 and e.image.value[:4] == b"\x89PNG"
    e.controls["gamma"].value = 2 * first.bound  # no event loop here: the change redraws at once
    assert e.updates == 1 and e.result is first
    assert f"{first.bound:.6g} (the exact stability bound" in e.message.value
    e.controls["gamma"].value = 0.2
    assert e.updates == 2 and e.message.value == "" and e.result.setting.gamma == 0.2
    e.controls["schedule"].value = "constant"
    assert e.result.setting.schedule == "constant" and e.updates == 3
    e.controls["params"].value = "final"
    assert "schedule parameters" in e.message.value and e.updates == 3


def test_changes_are_debounced_into_one_redraw():
    e = Explorer(SMALL)
    e.update()

    async def burst():
        for sigma2 in (0.5, 0.6, 0.7):
            e.controls["sigma2"].value = sigma2
        await asyncio.sleep(explore.DEBOUNCE_S * 5 + 2)

    asyncio.run(burst())
    assert e.updates == 2 and e.result.setting.sigma2 == 0.7


def test_config_button_prints_the_block():
    e = Explorer(SMALL)
    e.config_button.click()
    assert "experiments:" in e.config_out.value and "main:" in e.config_out.value


# ---------------------------------------------------------------------------------------------------------------
# the notebook and the app
# ---------------------------------------------------------------------------------------------------------------


def test_explore_is_the_only_app_notebook_and_every_other_is_a_figure():
    names = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    figures = {p.stem for p in registry.figure_notebook_paths(REPO / "notebooks")}
    assert set(registry.APP_NOTEBOOKS) == {"explore"} and names - figures == {"explore"}
    assert figures == set(registry.notebooks()) and "explore" not in registry.notebooks()


def test_explore_notebook_is_clean_and_only_starts_the_explorer():
    nb = json.loads((REPO / "notebooks" / "explore.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    imports = {node.module for c in code for node in ast.walk(ast.parse("".join(c["source"])))
               if isinstance(node, ast.ImportFrom)}
    assert imports == {"sketchlaw.present.explore"}


def test_make_explore_serves_the_notebook_alone_on_loopback():
    sys.path.insert(0, str(REPO / "scripts" / "dev"))
    import explore as launcher  # scripts/dev/explore.py

    cmd = launcher.command(8123)
    assert cmd[1:4] == ["-m", "voila", str(REPO / "notebooks" / "explore.ipynb")]
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=8123" in cmd and "--Voila.port_retries=0" in cmd
    make = (REPO / "Makefile").read_text()
    assert "explore: install\n\t$(VENV)/bin/python scripts/dev/explore.py --port $(EXPLORE_PORT)" in make


def test_readme_explorer_benchmark_lines_are_the_rendering_of_the_results_file():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_explore
    finally:
        sys.path.pop(0)
    results = json.loads(bench_explore.RESULTS.read_text())
    text = (REPO / "README.md").read_text()
    assert bench_explore.splice(text, bench_explore.render(results), bench_explore.START, bench_explore.END) == text, \
        "run `.venv/bin/python benchmarks/bench_explore.py --readme`"
    assert [r["M"] for r in results["runs"]] == [256, 1024]
