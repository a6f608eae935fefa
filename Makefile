# Two set-up commands, both creating the environment when needed:
#   make test   - the whole test suite
#   make run    - the default scenario, 7 simulated days, Parquet files under out/
#   make bench  - the benchmarks (throughput and peak memory)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: env test lint bench run clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

env: $(VENV)/.installed

test: env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: env
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Runs the default scenario's first 7 days on the local disk (out/), resuming if interrupted.
run: env
	$(PY) -m pipelines.run_local --scenario telecom --days 7 --out out
