# autojoin — every target the README names. Run `make help`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help setup demo test lint typecheck unit localcloud swarm template cov clean lab-up lab-down bench-swarm mutate bench-burst

help:            ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/autojoin: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/autojoin  ## create .venv and install autojoin with its dev tools

demo: setup      ## the main job on the embedded local cloud
	$(BIN)/autojoin simulate scenarios/seed-2-2-1-survives-az-loss.yaml

lint: setup      ## ruff lint + format check, cfn-lint on the template
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

typecheck: setup ## mypy --strict on the package
	$(BIN)/mypy

swarm-deps:      ## install Debian's docker.io (for the real-swarm lab) if missing
	bash layers/autojoin/autojoin/lab/swarm-lab.sh install

test: setup swarm-deps lint typecheck  ## EVERY test: lint, types, unit+localcloud+template+real swarm, branch-coverage gate
	$(BIN)/pytest --cov --cov-branch --cov-report=term --cov-fail-under=90 tests

unit: setup      ## fast tests only (no real swarm)
	$(BIN)/pytest -m 'not swarm' tests

mutate: setup    ## mutation testing (mutmut; slow, not part of test): kill rate per file + survivors; FILES=events.py for one
	nice -n 19 $(BIN)/python scripts/mutate.py $(FILES)

bench-burst: setup ## the 200-launch worker burst on the local cloud, timed against `import boto3`
	nice $(BIN)/python scripts/bench_burst.py

lab-up: setup    ## a real swarm lab: 3 managers, 2 workers over 3 AZs
	$(BIN)/autojoin lab up --managers 3 --workers 2

lab-down: setup
	$(BIN)/autojoin lab down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
