# The two commands of the README. Each bootstraps .venv on a fresh machine
# (Python 3.11 and PyPI access), then runs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint

$(INSTALLED): setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/grok-tf demo --out runs/demo

test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# A worker per core (at most 4), each taking whole files, so module
	# fixtures are built once: 22 -> 13 min on 2 cores.
	$(VENV)/bin/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
