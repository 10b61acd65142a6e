"""The experiment registry is the one list of experiments: adding one touches only the registry, a config block and
a notebook, and the workflow plans its jobs, its fit and its figure from that alone."""

import json
import shutil

import yaml

from sketchlaw.workflow import registry

from .harness import job_stats, snakemake, workdir

TOY_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": ['tables_dir = "results/tables"\n', 'figures_dir = "results/figures"\n',
                    'provenance_path = "results/provenance.json"\n']},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["from sketchlaw.present import plotting as slp\n",
                    "import matplotlib.pyplot as plt\n",
                    'CAPTION = """Toy\\nR − σ² of the toy experiment."""\n',
                    "paths = slp.resolve_paths(tables_dir, figures_dir, provenance_path)\n",
                    'toy = slp.load_table(paths.tables_dir, "toy")\n',
                    "fig, ax = plt.subplots()\n",
                    'ax.loglog(toy["N_eff"], toy["reducible"], ".")\n',
                    'slp.save_figure(fig, paths.figures_dir, "toy_figure", slp.load_provenance(paths.provenance_path),'
                    ' CAPTION)\n']},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def test_registry_lists_every_notebook_once():
    names = list(registry.notebooks())
    assert len(names) == len(set(names))
    assert set(registry.notebooks().values()) <= set(registry.EXPERIMENTS)
    assert all(e.kind in registry.KINDS for e in registry.EXPERIMENTS.values())


def test_a_toy_experiment_needs_only_a_registry_entry_a_config_block_and_a_notebook(request, tmp_path_factory,
                                                                                     tmp_path):
    wd = workdir(request.config, tmp_path_factory, "toy")
    reg = wd / "src" / "sketchlaw" / "workflow" / "registry.py"
    reg.write_text(reg.read_text() + '\nEXPERIMENTS["toy"] = Experiment("toy", "scaling", ("scaling",), '
                   '(Notebook("toy_figure"),), limit=True, theory="main")\n')
    (wd / "notebooks" / "toy_figure.ipynb").write_text(json.dumps(TOY_NOTEBOOK))
    config = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    config["experiments"] = {"toy": {"spectrum": "power", "a": [2.0], "M": [8, 16], "N": [1000, 10000],
                                     "sketch_seeds": [0]}}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(request.config, wd, "-n", "--cores", "1", "--configfile", path,
                    "--config", f"results_dir={tmp_path / 'results'}", log=tmp_path / "toy.log", timeout=600)
    assert run.returncode == 0, run.tail()
    stats = job_stats(run.output)
    assert stats.get("aggregate") == 1 and stats.get("train_limit") == 1 and stats.get("notebook") == 1, stats
    assert "toy_figure" in run.output and "tables/toy.parquet" in run.output
    shutil.rmtree(wd, ignore_errors=True)
