# Two commands (see README): `make replicate` and `make test`. Both install first, from the lock file.
# The environment is .venv (created by uv from uv.lock, exactly, with bytecode precompiled so that each of the
# workflow's many short Python jobs starts fast even under PYTHONDONTWRITEBYTECODE); uv itself lives in .tools/.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
CORES ?= 2

.PHONY: replicate test install ci-artifacts envs clean-results

replicate: install
	$(VENV)/bin/snakemake --profile profiles/default --cores $(CORES)

test: install
	$(VENV)/bin/python -m pytest -q

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --all-extras --compile-bytecode --python $(PYTHON)
	touch $@

# The tiny configuration into results/ (what CI keeps as artifacts).
ci-artifacts: install
	$(VENV)/bin/snakemake --profile profiles/default --cores $(CORES) --configfile config/test.yaml

# Regenerate the conda environment file from the lock (a test checks they agree).
envs: $(UV)
	$(VENV)/bin/python scripts/dev/conda_env.py > envs/sketchlaw.yaml

clean-results:
	rm -rf results/*/ results/index.html results/provenance.json
