# Two entry points, each doing all of its own set-up on a fresh clone:
#   make run    install into .venv and run the quickstart study on a local Dask cluster
#   make test   install into .venv (with test tools) and run the test suite; the suite
#               starts a single-node SLURM itself (root + apt) via cluster/local_slurm.sh
PYTHON ?= python3
VENV   ?= .venv
CONSTRAINTS ?= requirements/cpu.txt
PIP_FLAGS = --disable-pip-version-check --quiet

.PHONY: run test acceptance install install-test clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/pip install $(PIP_FLAGS) -c $(CONSTRAINTS) -e .

install-test: $(VENV)/bin/python
	$(VENV)/bin/pip install $(PIP_FLAGS) -c $(CONSTRAINTS) -e '.[test]'

run: install
	$(VENV)/bin/emustudy run configs/quickstart.yaml

# Two pytest processes share the 2 cores while one imports, waits on a hung sample or renders a
# report; a test file stays on one of them (module fixtures are built once). The SLURM tests
# share one local SLURM and run after, on their own.
test: install-test
	$(VENV)/bin/python -m pytest -m "not acceptance and not slurm" -n 2 --dist loadfile $(PYTEST_ARGS)
	$(VENV)/bin/python -m pytest -m "slurm and not acceptance" $(PYTEST_ARGS)

acceptance: install-test
	$(VENV)/bin/python -m pytest -m acceptance -s $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) studies .slurm
