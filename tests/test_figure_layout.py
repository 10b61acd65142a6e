"""Figures read cleanly at the size they are saved: ``sketchlaw.present.plotting.layout_problems`` finds text outside the
figure or its axes, text on another panel, on other text or on a curve, a legend on a curve, and panels of one row of
unequal width.

The unit tests build small figures with one defect each and check it is found (and that a clean figure passes), so
the check demonstrably can fail. The workflow test reads the layout report ``<name>.layout.json`` that
``save_figure`` writes beside every figure of the session's shared tiny run (tests/harness.py): no notebook
runs a second time for it.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sketchlaw.present import plotting as slp  # noqa: E402

from .harness import NOTEBOOKS  # noqa: E402

PROV = {"git_commit": "0" * 40, "git_dirty": False, "config_hash": "c0ffee", "lock_hash": "10cc", "versions": {}}
CAPTION = """Layout demo: two panels
Two power laws side by side. The reader should see nothing overlap."""


@pytest.fixture(autouse=True)
def _close():
    slp.set_style()
    yield
    plt.close("all")


def _panels(ncols=2, figsize=(6, 2.6), layout="constrained", **kw):
    """``ncols`` log-log panels in a row; ``layout=None``: fixed margins (what constrained layout would not fix)."""
    fig, axes = plt.subplots(1, ncols, figsize=figsize, layout=layout, squeeze=False, **kw)
    if layout is None:
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.2, top=0.88, wspace=0.45)
    x = np.geomspace(1e2, 1e6, 25)
    for j, ax in enumerate(axes[0]):
        ax.plot(x, 3 * x ** -(0.5 + 0.2 * j), label=f"curve {j}")
        slp.log_axes(ax, "N", "risk")
        ax.set_title(f"panel {j}")
    return fig, axes[0]


def _matching(problems, *words):
    return [p for p in problems if all(w in p for w in words)]


def test_a_clean_figure_passes():
    fig, axes = _panels()
    axes[0].legend(loc="upper right")
    slp.annotate_slope(axes[1], "k = \u22120.70", loc="upper right")
    assert slp.layout_problems(fig) == []


def test_text_outside_the_figure_is_found():
    fig, axes = _panels(layout=None)
    fig.text(1.02, 0.5, "far right", ha="left")
    assert _matching(slp.layout_problems(fig), 'figure text "far right"', "outside the figure (right by")


def test_annotation_running_out_of_its_axes_is_found():
    fig, axes = _panels()
    axes[1].text(0.6, 0.9, "a long annotation that does not fit in the panel", transform=axes[1].transAxes)
    problems = slp.layout_problems(fig)
    assert _matching(problems, 'text "a long annotation', "sticks out of its axes (right by")


def test_legend_over_another_panel_is_found():
    fig, axes = _panels(layout=None)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.2, 0.9))  # placed outside on purpose, onto its neighbour
    problems = slp.layout_problems(fig)
    assert _matching(problems, "legend", "(row 1, col 1)", "overlaps the area of axes (row 1, col 2)")


def test_overlapping_tick_labels_are_found():
    fig, axes = _panels()
    axes[0].set_xticks(np.geomspace(1e2, 1e6, 25))
    axes[0].set_xticklabels([f"{v:.4g} samples" for v in np.geomspace(1e2, 1e6, 25)])
    problems = slp.layout_problems(fig)
    assert _matching(problems, "x tick label", "touches x tick label")


def test_colorbar_ticks_on_the_neighbour_panel_are_found():
    fig, axes = _panels(layout=None)
    z = np.arange(12.0).reshape(3, 4)
    cs = axes[0].contourf(np.arange(4.0) + 1, np.arange(3.0) + 1, z, levels=8)
    bar = fig.colorbar(cs, cax=axes[0].inset_axes((1.3, 0, 0.05, 1)))
    bar.set_label("level of a long quantity")
    problems = slp.layout_problems(fig)
    assert _matching(problems, 'colorbar "level of a long quantity"', "overlaps the area of axes (row 1, col 2)")


def test_annotation_on_a_curve_is_found():
    fig, axes = _panels()
    axes[0].text(0.5, 0.5, "k = \u22120.5", transform=axes[0].transAxes, ha="center", va="center")
    axes[0].plot([1e2, 1e6], [3e-1, 3e-3], color="k", label="diagonal")
    assert _matching(slp.layout_problems(fig), 'text "k = \u22120.5"', 'covers line "diagonal"')


def test_legend_on_a_curve_is_found():
    fig, axes = _panels()
    axes[0].plot([1e2, 1e6], [3e-3, 3e-1], color="k", label="rising")  # ends in the upper right corner
    axes[0].legend(loc="upper right")
    axes[1].legend(loc="upper right")  # the falling curve leaves that corner free
    problems = slp.layout_problems(fig)
    assert _matching(problems, 'legend "curve 0, rising"', "(row 1, col 1)", 'covers line "rising"')
    assert not _matching(problems, "(row 1, col 2)")


def test_stacked_annotations_on_the_legend_are_found():
    fig, axes = _panels()
    axes[1].legend(loc="lower left")
    slp.annotate_slope(axes[1], "k = \u22120.70 [\u22120.72, \u22120.68]", loc="lower left")
    assert _matching(slp.layout_problems(fig), '"k = ', "overlaps legend")


def test_unequal_widths_in_a_row_are_found_and_intended_ratios_are_not():
    fig, axes = _panels(ncols=3, figsize=(8, 2.6), layout=None)
    fig.colorbar(axes[0].contourf(np.arange(1.0, 5.0), np.arange(1.0, 4.0), np.arange(12.0).reshape(3, 4)),
                 ax=axes[0], fraction=0.3)  # the colour bar takes its width from the first panel only
    problems = slp.layout_problems(fig, max_width_ratio=1.15)
    assert _matching(problems, "row 1: axes (row 1, col 1)", "times narrower than")
    fig, axes = _panels(ncols=3, figsize=(8, 2.6), gridspec_kw={"width_ratios": [2, 1, 1]})
    assert not _matching(slp.layout_problems(fig), "narrower")


def test_panels_squeezed_into_strips_are_found():
    fig, axes = _panels()
    for ax in axes:  # long texts beside each panel make the layout shrink both alike
        ax.set_ylabel("a y label that is\nfar too long for this " * 2)
    fig.set_size_inches(3.4, 2.6)
    problems = slp.layout_problems(fig)
    assert _matching(problems, "axes (row 1, col 1)", "is squeezed to")


def test_save_figure_writes_the_layout_report(tmp_path):
    fig, axes = _panels()
    slp.save_figure(fig, tmp_path, "clean", PROV, CAPTION)
    report = json.loads((tmp_path / "clean.layout.json").read_text(encoding="utf-8"))
    assert report == {"name": "clean", "dpi": slp.DPI, "tolerance_px": slp.LAYOUT_TOLERANCE_PX,
                      "max_width_ratio": slp.MAX_WIDTH_RATIO, "problems": []}
    fig, axes = _panels()
    axes[1].text(0.9, 0.5, "out of bounds text", transform=axes[1].transAxes)
    with pytest.warns(UserWarning, match=r"bad: \d+ layout problem"):
        slp.save_figure(fig, tmp_path, "bad", PROV, CAPTION)
    problems = json.loads((tmp_path / "bad.layout.json").read_text(encoding="utf-8"))["problems"]
    assert _matching(problems, 'text "out of bounds text"', "sticks out of its axes")


# ----------------------------------------------------------------------------------------------------------------
# every notebook's figure, from the shared tiny run
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_figures(shared):
    return shared.results / "figures"


@pytest.mark.workflow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_figure_layout_is_clean(tiny_figures, name):
    report = json.loads((tiny_figures / f"{name}.layout.json").read_text(encoding="utf-8"))
    assert report["name"] == name and report["dpi"] == slp.DPI
    assert report["problems"] == [], f"{name}.png at its saved size:\n  " + "\n  ".join(report["problems"])
