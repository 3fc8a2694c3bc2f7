# scorer: `make demo` runs the main job, `make test` the whole test suite, each from a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m devstack.stack
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv up down status fetch schema test unit integration lint rules prometheus-tools demo bench clean

help:
	@echo "make demo | test | up | down | status | lint | rules | bench | clean"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "scorer needs Python >= 3.11; set PYTHON=python3.11 (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

## Real services (Cassandra 5.0 + KRaft Kafka from Maven Central, no docker).
up: venv prometheus-tools
	@$(STACK) up

down: venv
	@$(STACK) down

status: venv
	@$(STACK) status

fetch: venv
	@$(STACK) fetch

schema: up
	$(VENV)/bin/scorer schema apply

lint: venv
	$(PY) -m ruff check $(wildcard scorer trainers devstack tests benchmarks)

## Alert rules: promtool (Debian's prometheus package, installed here when missing) checks the Prometheus
## config and runs the rules' unit tests (monitoring/alerts_test.yml).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
rules: prometheus-tools
	promtool check config monitoring/prometheus.yml
	promtool test rules monitoring/alerts_test.yml

prometheus-tools:
	@command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Starts the services it needs, runs everything, and stops only what it started.
test: lint rules
	@rec=$$(mktemp); trap '$(STACK) down --record '"$$rec" INT TERM; \
	$(STACK) up --record $$rec || { $(STACK) down --record $$rec; exit 1; }; \
	status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	$(STACK) down --record $$rec; exit $$status

# The main job end to end (scripts/demo.sh): train per-city models, score a live stream, swap two models
# mid-stream, report. Leaves the services running (make down stops them). Sizes: DEMO_EVENTS, DEMO_RATE.
demo: up
	@bash scripts/demo.sh

# Every benchmarks/bench_*.py in turn (each writes reports/bench_*.json; the soak runs 10 minutes), then one report:
# reports/bench.md, bench.json and bench.png with the environment. BENCH_ARGS=--quick for short runs,
# BENCH_ARGS="--only compare,kernels" for some. A failed benchmark is marked failed in the report (exit 1).
bench: up
	$(PY) -m pip install -q -e '.[dev,bench]'  # the ONNX Runtime peer of bench_compare.py
	$(PY) benchmarks/report.py --run $(BENCH_ARGS)

clean: down
	rm -rf $(VENV) reports .pytest_cache .ruff_cache .hypothesis
