# autojoin — every target the README names. Run `make help`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

TOOLS   ?= .venv-tools
SAM     := $(TOOLS)/bin/sam
CHECKOV := $(TOOLS)/bin/checkov
# The local deploy check's build: this machine's architecture and Python (the shipped one is arm64/3.12).
CHECK_PLATFORM ?= manylinux2014_$(shell uname -m)
CHECK_PYTHON   ?= $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

.PHONY: help setup demo test lint typecheck unit localcloud swarm template cov clean lab-up lab-down bench-swarm \
        tools build build-check deploy checkov bench-cold-start lock bench-replay sync-project check-install \
        mutate bench-burst bench-resilience bench

help:            ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/autojoin: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/autojoin  ## create .venv and install autojoin with its dev tools

# aws-sam-cli and checkov live in their own venv: both pin boto3/botocore below the project's (README
# Dependencies). Every version is pinned in tools/requirements-tools.txt.
$(SAM): tools/requirements-tools.txt
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q --no-deps -r tools/requirements-tools.txt
	@touch $@

tools: $(SAM)    ## create .venv-tools with aws-sam-cli and checkov

# Both builds are file targets: make rebuilds only when an input changed (the test suite relies on it).
BUILD_INPUTS := template.yaml samconfig.toml layers/autojoin/Makefile layers/autojoin/requirements.lock \
  $(shell find layers/autojoin/autojoin functions tools -type f \( -name '*.py' -o -name Makefile \
    -o -name '*.sh' -o -name '*.mjs' -o -name '*.json' -o -name py.typed \) -not -path '*/node_modules/*')

.aws-sam/build/template.yaml: $(BUILD_INPUTS) | $(SAM)
	SAM_CLI_TELEMETRY=0 $(SAM) build --build-dir .aws-sam/build
	@touch $@

.aws-sam/build-check/template.yaml: $(BUILD_INPUTS) | $(SAM)
	SAM_CLI_TELEMETRY=0 AUTOJOIN_BUILD_PLATFORM=$(CHECK_PLATFORM) AUTOJOIN_BUILD_PYTHON=$(CHECK_PYTHON) \
	  $(SAM) build --build-dir .aws-sam/build-check
	@touch $@

build: .aws-sam/build/template.yaml  ## sam build: arm64 / python3.12 artifacts in .aws-sam/build (no Docker, no python3.12)

build-check: .aws-sam/build-check/template.yaml  ## sam build for THIS machine (its arch and Python): the local deploy check

deploy: build    ## sam deploy with samconfig.toml (give the parameters: see README, Deploy)
	SAM_CLI_TELEMETRY=0 $(SAM) deploy $(DEPLOY_ARGS)

checkov: tools   ## checkov on template.yaml (skips are justified inline in the template)
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f template.yaml

bench-cold-start: setup build-check  ## every handler's import vs `import boto3` (paired runs, built artifacts)
	$(BIN)/python scripts/bench_cold_start.py --build-dir .aws-sam/build-check

lock: setup      ## re-resolve the layer's requirements.lock (pinned + hashed) from its requirements.txt
	$(BIN)/python scripts/lock_layer.py

demo: setup      ## the main job on the embedded local cloud
	$(BIN)/autojoin simulate scenarios/seed-2-2-1-survives-az-loss.yaml

lint: setup tools ## ruff lint + format check, cfn-lint and checkov on the template
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f template.yaml

# `mypy` alone checks the package (pyproject's packages); the tests are held to the same strict settings.
typecheck: setup ## mypy --strict on the package and on tests/
	$(BIN)/mypy -p autojoin -p tests

swarm-deps:      ## install Debian's docker.io (for the real-swarm lab) if missing
	bash layers/autojoin/autojoin/lab/swarm-lab.sh install

# The real-swarm tests mostly wait on dockerd (membership, Raft elections): they run beside the rest, in a
# process of their own (they share nothing: their own lab namespaces, their own moto), and print when done.
# Coverage is combined from both before the 90 % branch gate.
test: setup swarm-deps lint typecheck  ## EVERY test: lint, types, unit+localcloud+template+real swarm, branch-coverage gate
	rm -f .coverage .coverage.swarm .coverage.rest
	COVERAGE_FILE=.coverage.swarm $(BIN)/pytest -m swarm --cov --cov-branch --cov-report= tests \
	  > .test-swarm.log 2>&1 & swarm=$$!; \
	COVERAGE_FILE=.coverage.rest $(BIN)/pytest -m 'not swarm' --cov --cov-branch --cov-report= tests; rest=$$?; \
	wait $$swarm; sw=$$?; echo "---- real-swarm tests (ran beside the others) ----"; cat .test-swarm.log; \
	$(BIN)/coverage combine -q .coverage.swarm .coverage.rest && \
	$(BIN)/coverage report --fail-under=90; cov=$$?; \
	if [ $$sw != 0 ]; then echo "---- real-swarm failures: the first error lines of each (whole log above) ----"; \
	  grep -E '^(_{5,} test|E   )' .test-swarm.log | grep -A3 '^_' | cut -c1-700 | head -60; fi; \
	echo "tests: rest exit $$rest, real swarm exit $$sw, coverage gate exit $$cov"; \
	test $$rest = 0 && test $$sw = 0 && test $$cov = 0

unit: setup      ## fast tests only (no real swarm)
	$(BIN)/pytest -m 'not swarm' tests

mutate: setup    ## mutation testing (mutmut; slow, not part of test): kill rate per file + survivors; FILES=events.py for one
	nice -n 19 $(BIN)/python scripts/mutate.py --jobs $(or $(JOBS),1) $(FILES)

bench-burst: setup ## the 200-launch worker burst on the local cloud, timed against `import boto3`
	nice $(BIN)/python scripts/bench_burst.py

bench-resilience: setup ## chaos timelines, plain Auto Scaling vs autojoin (TIMELINES=2000 JOBS=2, ~65 min here): build/bench, docs/img
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/pip install -q 'matplotlib>=3.8'
	nice $(BIN)/python scripts/bench_resilience.py --timelines $(or $(TIMELINES),2000) --jobs $(or $(JOBS),2)
	cp build/bench/resilience.json docs/benchmarks-resilience.json

# make bench: every benchmark on this machine, side by side in one run -> docs/benchmarks.md, .json, docs/img/.
# RESILIENCE_ARGS go to scripts/bench_resilience.py (its defaults when empty); BENCH_ARGS to scripts/bench.py
# (e.g. BENCH_ARGS='--only calls,policy'). Real-swarm piece: root, lab prefix ajb under /tmp/ajb-lab.
RESILIENCE_ARGS ?=
BENCH_ARGS ?=
bench: setup build-check swarm-deps ## every benchmark (ratios, one run): docs/benchmarks.md, benchmarks.json, plots
	$(BIN)/pip install -q -e '.[bench]'
	nice $(BIN)/python scripts/bench.py --resilience-args "$(RESILIENCE_ARGS)" $(BENCH_ARGS)

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
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
