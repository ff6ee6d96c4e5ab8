# Two commands on a fresh machine: `make demo` and `make test`.
# Each target installs only what it needs: the demo the package and matplotlib (the `plot`
# extra), the notebooks JupyterLab as well (`lab`), the tests everything (`dev`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A python3 that has pip 22.3 or newer installs into the venv from outside (`pip --python`),
# so the venv is made without its own pip: ensurepip took 11.1 s at load 7.6 (0.5 s without it).
# Without such a pip, the venv gets its own as usual.
HOST_PIP := $(shell $(PYTHON) -c 'import pip, sys; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (22, 3))' 2>/dev/null && echo yes)
VENV_FLAGS := $(if $(HOST_PIP),--without-pip)
PIP_RUN := $(if $(HOST_PIP),$(PYTHON) -m pip --python $(PY),$(PY) -m pip)
# --no-compile: byte-compiling every installed module costs more than the first imports do.
PIP := $(PIP_RUN) install --quiet --disable-pip-version-check --no-compile
DEMO_STAMP := $(VENV)/.installed-demo
LAB_STAMP := $(VENV)/.installed-lab
DEV_STAMP := $(VENV)/.installed-dev
# This machine's environment sets PYTHONDONTWRITEBYTECODE=1: every process (each test worker and
# child, the demo, each benchmark child) would compile every module it imports (polars, pyarrow,
# duckdb, ...) from source again. `from eventlog import Inventory` took 7.4-8.9 s that way against
# 3.0-3.5 s with the bytecode cache, at load 13. The targets below write and use the cache (.venv
# and the repo's __pycache__/, ignored by git).
unexport PYTHONDONTWRITEBYTECODE
# JupyterLab refuses to start as root without this flag; these machines run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: demo test test-fast bench bench-quick bench-publish lab clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)

# A larger install also satisfies the smaller ones: it touches their stamps.
$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[plot]'
	touch $@

$(LAB_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[lab]'
	touch $@ $(DEMO_STAMP)

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[dev]'
	touch $@ $(LAB_STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) -m eventlog.demo

# Two pytest workers (one per core here); tests that must share one process, such as the Spark
# session, are grouped with @pytest.mark.xdist_group.
PYTEST_PARALLEL := -n auto --dist loadgroup

test: $(DEV_STAMP)
	$(PY) -m mypy eventlog
	$(PY) -m pytest -q $(PYTEST_PARALLEL)

test-fast: $(DEV_STAMP)
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow"

# Runs land in benchmarks/runs (ignored by git); `make bench-publish` copies the newest one
# into benchmarks/results, the copy the repository keeps.
bench: $(DEV_STAMP)
	$(PY) -m benchmarks.run --full

bench-quick: $(DEV_STAMP)
	$(PY) -m benchmarks.run --quick

bench-publish: $(DEMO_STAMP)
	$(PY) -m benchmarks.run --publish

lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) notebooks/

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
