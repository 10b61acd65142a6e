# Two commands (see README): `make replicate` and `make test`. Both install first, from the lock file.
# The environment is .venv (created by uv from uv.lock, exactly, with bytecode precompiled so that each of the
# workflow's many short Python jobs starts fast even under PYTHONDONTWRITEBYTECODE); uv itself lives in .tools/.
SHELL := /bin/bash
# Without numpy's huge-page madvise (see Snakefile: on this project's 2-core VM first touching huge pages costs far more
# than they save), for the tests' own processes as for the workflow's jobs; a value set in the environment wins.
export NUMPY_MADVISE_HUGEPAGE ?= 0
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
CORES ?= 2

.PHONY: replicate report test test-fast test-configs check-science install ci-artifacts followups assumptions envs captions config-doc clean-results explore style

# Snakemake's output is condensed (scripts/condense_log.py: progress every 5 %, errors and failed jobs' logs in
# full); the complete log is in .snakemake/log/, each job's own output in results/logs/.
SNAKEMAKE := set -o pipefail; $(VENV)/bin/snakemake --profile profiles/default --cores $(CORES)
CONDENSE := 2>&1 | $(VENV)/bin/python scripts/condense_log.py
CI_RESULTS := results_ci

replicate: install
	$(SNAKEMAKE) $(CONDENSE)

# Snakemake's report of the default replication (after `make replicate`): every figure and table with its caption.
report: install
	$(SNAKEMAKE) --report results/report.zip $(CONDENSE)

# Everything (CI's command). test-fast: the everyday tier — unit tests, configuration checks in-process, notebook
# structure, static repository checks, `snakemake -n` and `--lint`; no Snakemake job runs (markers: tests/conftest.py).
test: install
	$(VENV)/bin/python -m pytest -q --durations=15

test-fast: install
	$(VENV)/bin/python -m pytest -q -m "not workflow and not slow and not slurm"

# The default replication, then the assertions on its science (tests/test_results.py: exponents within their stated
# tolerances of theory, no verdict `disagrees`, every figure drawn and reading cleanly); a missing run fails here
# instead of skipping. CI runs it after `make test`.
check-science: replicate
	SKETCHLAW_REQUIRE_RESULTS=1 $(VENV)/bin/python -m pytest -q tests/test_results.py

# The generated configuration suite (tests/test_generated_configs.py) at a larger budget than `make test`'s 3 draws:
# every schema-valid draw must be refused naming a field or run to the end (README: its cost).
CONFIG_EXAMPLES ?= 100
test-configs: install
	SKETCHLAW_CONFIG_EXAMPLES=$(CONFIG_EXAMPLES) $(VENV)/bin/python -m pytest -q \
		tests/test_generated_configs.py -k refused_naming_a_field

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Then the numba kernels are compiled once into their cache beside the sources, so no workflow job compiles them.
$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --all-extras --compile-bytecode --python $(PYTHON)
	$(VENV)/bin/python -m sketchlaw.workflow.warm_up
	touch $@

# The tiny configuration and its Snakemake report into results_ci/ (what CI keeps as artifacts), apart from a
# replication's results/.
ci-artifacts: install
	$(SNAKEMAKE) --configfile config/test.yaml --config results_dir=$(CI_RESULTS) $(CONDENSE)
	$(SNAKEMAKE) --configfile config/test.yaml --report $(CI_RESULTS)/report.zip --config results_dir=$(CI_RESULTS) $(CONDENSE)

# The follow-ups at full size (config/followups.yaml, into results_followups/): schedules, batch and reuse with
# grids that give their exponents; too large for the default run's budget (README: what it costs).
followups: install
	$(SNAKEMAKE) --configfile config/followups.yaml $(CONDENSE)

# Beyond the paper's assumptions (config/assumptions.yaml, into results_assumptions/): other sketch families at sizes
# that give their exponents (README: what it costs).
assumptions: install
	$(SNAKEMAKE) --configfile config/assumptions.yaml $(CONDENSE)

# The live explorer of the exact engine (notebooks/explore.ipynb) as a local web app: Voilà on 127.0.0.1 only,
# serving that notebook and nothing else; it prints its address. EXPLORE_PORT=... picks another port.
EXPLORE_PORT ?= 8866
explore: install
	$(VENV)/bin/python scripts/dev/explore.py --port $(EXPLORE_PORT)

# Regenerate the conda environment file from the lock (a test checks they agree).
envs: $(UV)
	$(VENV)/bin/python scripts/dev/conda_env.py > envs/sketchlaw.yaml

# seaborn's figure theme as rcParams (src/sketchlaw/present/seaborn_theme.json), after a seaborn or matplotlib update
# (a test checks the file against the locked seaborn).
style: install
	$(VENV)/bin/python scripts/dev/seaborn_theme.py

# report/<notebook>.rst from the notebooks' CAPTION cells (a test checks they agree).
captions: install
	$(VENV)/bin/python scripts/dev/captions.py

# config/README.md from the schema's descriptions (a test checks they agree).
config-doc: install
	$(VENV)/bin/python scripts/dev/config_doc.py > config/README.md

clean-results:
	rm -rf results/*/ results/index.html results/provenance.json results/report.zip $(CI_RESULTS)
