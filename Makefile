# autojoin — every target the README names. Run `make help`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help setup demo test lint typecheck unit localcloud swarm template cov clean lab-up lab-down bench-swarm bench-replay sync-project check-install

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

lab-up: setup    ## a real swarm lab: 3 managers, 2 workers over 3 AZs
	$(BIN)/autojoin lab up --managers 3 --workers 2

lab-down: setup
	$(BIN)/autojoin lab down

bench-replay: setup ## one replay (and the demo scenario): median of 5 fresh processes beside `import boto3`
	$(BIN)/python scripts/bench_replay.py --runs 5 --simulate scenarios/seed-2-2-1-survives-az-loss.yaml

sync-project:    ## copy template.yaml and functions/*/app.py into the package (what replay uses when installed)
	rm -rf layers/autojoin/autojoin/project
	mkdir -p layers/autojoin/autojoin/project
	cp template.yaml layers/autojoin/autojoin/project/
	for f in functions/*/app.py; do mkdir -p layers/autojoin/autojoin/project/$$(dirname $$f); \
	  cp $$f layers/autojoin/autojoin/project/$$f; done

check-install:   ## slow: a fresh venv, `pip install .` with every dependency, replay + simulate from /tmp
	rm -rf /tmp/autojoin-check-install && $(PY) -m venv /tmp/autojoin-check-install
	/tmp/autojoin-check-install/bin/pip install -q .
	cp events/autoscaling_launch_worker.json scenarios/seed-2-2-1-survives-az-loss.yaml /tmp/autojoin-check-install/
	cd /tmp/autojoin-check-install && bin/autojoin replay autoscaling_launch_worker.json >/dev/null && \
	  bin/autojoin simulate seed-2-2-1-survives-az-loss.yaml && echo "check-install: ok"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
