"""The results page: every link resolves, every figure has a caption, the exponent table comes first and is readable."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from sketchlaw.present import report

CONTRACT_COLUMNS = ["experiment", "spectrum", "a", "b", "variable", "estimator", "quantity", "fixed_variable",
                    "fixed_value", "x_lo", "x_hi", "n_points", "n_seeds", "fitted", "intercept", "ci_low", "ci_high",
                    "sys_low", "sys_high", "theory", "theory_finite", "extrapolated", "extrapolated_low",
                    "extrapolated_high", "verdict", "reason"]
NAN = float("nan")


def contract_exponents() -> pd.DataFrame:
    rows = [
        ["main", "power", 2.0, 2.0, "M", "primary", "approx", "N", 1e7, 8, 64, 3, 2, -0.98765432, 0.1, -1.0123456,
         -0.9629, -1.01, -0.97, -1.0, -0.99, -1.00111, -1.02, -0.98, "consistent", ""],
        ["main", "power", 2.0, 2.0, "N_eff", "window", "reducible", "M", 64, 1e3, 1e6, 4, 2, -0.41, 0.2, -0.43,
         -0.39, -0.44, -0.40, -0.5, -0.42, -0.47, -0.52, -0.44, "pre-asymptotic", ""],
        ["source", "power", 2.0, 3.0, "N_eff", "primary", "excess_limit", "M=inf", float("inf"), NAN, NAN, 1, 0,
         NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, "not fitted",
         "window has 1 point (need 3)"],
        ["compute", "power", 2.0, 2.0, "M_star", "primary", "frontier", "", NAN, 1e4, 1e6, 3, 0, 0.31, 0.0, NAN,
         NAN, 0.30, 0.36, 1 / 3, NAN, NAN, NAN, NAN, "disagrees", ""],
    ]
    return pd.DataFrame(rows, columns=CONTRACT_COLUMNS)


def old_exponents() -> pd.DataFrame:
    """The columns of the exponent table before the estimator vocabulary (what main writes today)."""
    return pd.DataFrame([{"experiment": "main", "spectrum": "power", "a": 1.5, "b": 1.5, "variable": "M",
                          "fitted": -0.51234567, "ci_low": -0.53, "ci_high": -0.49, "sys_low": -0.55, "sys_high": -0.5,
                          "theory": -0.5, "theory_finite": -0.52, "p_value": 0.3, "verdict": "consistent",
                          "window": "[32, 64]", "method": "dominance", "n_points": 3, "flag": ""}])


FORMS = pd.DataFrame({"experiment": ["main", "main"], "a": [2.0, 2.0], "b": [2.0, 2.0],
                      "form": ["additive", "max"], "p": [0.97, 1.0], "q": [0.49, 0.5], "k": [NAN, 2.0],
                      "holdout_rmse": [0.0123456, 0.001], "train_rmse": [0.01, 0.002], "best": [False, True]})
# One figure with a sidecar caption, one without (the page must fall back to the name).
FIGURES = {"fig2_scaling_fits": {"name": "fig2_scaling_fits", "title": "Scaling fits",
                                 "caption": "R − σ² against N_eff and M with fitted slopes."},
           "stepsize": None}


def results_fixture(root: Path, exponents: pd.DataFrame, forms: pd.DataFrame | None, provenance: dict) -> Path:
    """A small results directory shaped like the workflow's; returns the page written into it."""
    for sub in ("tables", "figures", "notebooks", "logs"):
        (root / sub).mkdir(parents=True)
    exponents.to_csv(root / "tables" / "exponents.csv", index=False)
    if forms is not None:
        forms.to_csv(root / "tables" / "exponent_forms.csv", index=False)
    main = pd.DataFrame({"M": [8, 16], "risk": [1.5, 1.2]})
    main.to_csv(root / "tables" / "main.csv", index=False)
    main.to_parquet(root / "tables" / "main.parquet")
    (root / "logs" / "report.log").write_text("")
    for name, meta in FIGURES.items():
        (root / "figures" / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (root / "figures" / f"{name}.pdf").write_bytes(b"%PDF-1.4\n")
        (root / "notebooks" / f"{name}.html").write_text("<html></html>")
        if meta is not None:
            (root / "figures" / f"{name}.json").write_text(json.dumps(meta))
    (root / "provenance.json").write_text(json.dumps(provenance))
    out = root / "index.html"
    figures = [report.read_figure(root / "figures" / f"{n}.png", root / "notebooks" / f"{n}.html") for n in FIGURES]
    page = report.build_page(out, pd.read_csv(root / "tables" / "exponents.csv"), report.read_forms(root / "tables" / "exponent_forms.csv"),
                             figures, root / "tables", json.loads((root / "provenance.json").read_text()),
                             root / "provenance.json", root / "logs")
    out.write_text(page)
    return out


class Page(HTMLParser):
    """Links, ids, tables, figure captions and the order in which sections start."""

    def __init__(self):
        super().__init__()
        self.links, self.ids, self.order = [], set(), []
        self.captions, self._caption = [], None
        self.tables, self._table, self._row, self._cell, self._in_head = [], None, None, None, False
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append(attrs[key])
        if "id" in attrs:
            self.ids.add(attrs["id"])
            self.order.append(attrs["id"])
        if tag == "figure":
            self.order.append("<figure>")
        if tag == "figcaption":
            self._caption = []
        if tag == "table":
            self._table = {"id": attrs.get("id"), "head": [], "body": []}
        if tag == "thead":
            self._in_head = True
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self.captions.append("".join(self._caption).strip())
            self._caption = None
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._table is not None:
            (self._table["head"] if self._in_head else self._table["body"]).append(self._row)
        if tag == "thead":
            self._in_head = False
        if tag == "table":
            self.tables.append(self._table)
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._caption is not None:
            self._caption.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


PROVENANCE = {"git_commit": "abc123def4567890", "git_dirty": False, "config_hash": "feedbeef12345678",
              "lock_hash": "0011223344556677", "versions": {"numpy": "2.1"}, "config_file": "config/test.yaml",
              "config": {"defaults": {"sigma2": 1.0}, "experiments": {"main": {"a": [2.0]}}}}


@pytest.fixture
def built(tmp_path):
    return parse(results_fixture(tmp_path, contract_exponents(), FORMS, PROVENANCE)), tmp_path


def test_every_link_resolves(built):
    page, root = built
    assert page.links
    for link in page.links:
        if link.startswith("#"):
            assert link[1:] in page.ids, f"dangling anchor {link}"
        else:
            assert "://" not in link, f"link leaves the results directory: {link}"
            assert (root / unquote(link).rstrip("/")).exists(), f"broken link {link}"
    for target in ("tables/main.csv", "tables/main.parquet", "tables/exponents.csv", "tables/exponent_forms.csv",
                   "provenance.json", "logs/", "figures/stepsize.pdf", "notebooks/stepsize.html"):
        assert target in page.links, f"no link to {target}"


def test_every_figure_has_a_caption(built):
    page, _ = built
    assert len(page.captions) == len(FIGURES)
    assert all(page.captions)
    assert any(FIGURES["fig2_scaling_fits"]["caption"] in c for c in page.captions)
    assert any("stepsize" in c for c in page.captions)  # no sidecar: the name stands in


def test_contents_come_first_and_point_to_sections(built):
    page, _ = built
    anchors = [link[1:] for link in page.links if link.startswith("#")]
    for section in ("exponents", "forms", "figures", "provenance", "tables", "fig-fig2-scaling-fits"):
        assert section in anchors and section in page.ids
    # The exponent table precedes the forms table, which precedes every figure.
    assert page.order.index("exponents") < page.order.index("exponent-table") < page.order.index("forms") \
        < page.order.index("<figure>")


def test_exponent_table_is_readable(built):
    page, _ = built
    tables = {t["id"]: t for t in page.tables}
    head = tables["exponent-table"]["head"][0]
    assert head == [h for h, _, _ in report.EXPONENT_COLUMNS]
    assert tables["exponent-table-secondary"]["head"][0] == head

    def rows(table_id):
        return [dict(zip(head, r)) for r in tables[table_id]["body"] if len(r) == len(head)]

    primary, secondary = rows("exponent-table"), rows("exponent-table-secondary")
    expected = contract_exponents()
    assert [r["estimator"] for r in primary] == ["primary"] * int((expected["estimator"] == "primary").sum())
    assert [r["estimator"] for r in secondary] == ["window"]
    first = primary[0]
    assert first["fitted"] == "-0.9877" and first["95 % interval"] == "[-1.012, -0.9629]"
    assert first["extrapolated [low, high]"] == "-1.001 [-1.02, -0.98]"
    missing = next(r for r in primary if r["experiment"] == "source")
    assert missing["fitted"] == "—" and missing["verdict"] == "not fittedwindow has 1 point (need 3)"  # and why


def test_forms_are_a_table_of_their_own(built):
    page, _ = built
    forms = [t for t in page.tables if not str(t["id"]).startswith("exponent-table")]
    assert len(forms) == 1
    assert forms[0]["head"] == [list(FORMS.columns)]
    body = forms[0]["body"]
    assert len(body) == len(FORMS) and body[0][FORMS.columns.get_loc("holdout_rmse")] == "0.01235"


def test_legend_config_and_provenance_are_shown(built):
    page, _ = built
    text = " ".join(page.text)
    for word in ("consistent", "pre-asymptotic", "disagrees", "not fitted", "no theory"):
        assert word in text
    for value in ("config/test.yaml", PROVENANCE["config_hash"], PROVENANCE["git_commit"], '"sigma2": 1.0'):
        assert value in text


def test_old_exponent_columns_and_missing_provenance_keys(tmp_path):
    prov = {k: v for k, v in PROVENANCE.items() if k not in ("config_file", "config")}
    out = results_fixture(tmp_path, old_exponents(), None, prov)
    page = parse(out)
    table = next(t for t in page.tables if t["id"] == "exponent-table")
    row = dict(zip(table["head"][0], next(r for r in table["body"] if len(r) > 1)))
    assert row["estimator"] == "dominance" and row["fitted"] == "-0.5123" and row["extrapolated [low, high]"] == "—"
    text = " ".join(page.text)
    assert "not recorded" in text and "No comparison of functional forms" in text
    assert len(page.tables) == 1


def test_multi_panel_rows_get_the_whole_width(tmp_path):
    def png(name, width, height):
        path = tmp_path / f"{name}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + width.to_bytes(4, "big")
                         + height.to_bytes(4, "big") + bytes(5))
        return report.read_figure(path, tmp_path / f"{name}.html")

    row, square, grid = png("row", 2802, 785), png("square", 865, 745), png("grid", 2718, 2230)
    assert row.size == (2802, 785) and row.wide and grid.wide
    assert square.size == (865, 745) and not square.wide
    assert report.read_figure(tmp_path / "row.png", tmp_path / "row.html").caption == ""
    (tmp_path / "not_png.png").write_bytes(b"GIF89a" + bytes(30))
    assert report.png_size(tmp_path / "not_png.png") is None
