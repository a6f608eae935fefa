# Two set-up commands, both creating the environment when needed:
#   make test   - the whole test suite
#   make run    - Dagster materialises the default scenario's first 7 days (files under out/dagster)
#   make ui     - the Dagster UI
#   make bench  - the benchmarks (throughput and peak memory)
#   make demo   - the whole graph incl. GCS export and Pub/Sub publishing, on local emulators
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: env sysdeps test lint bench run demo ui docs clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dagster,gcp,dev]'
	touch $@

env: $(VENV)/.installed

# Debian packages the tests need: PostgreSQL's server (the SQL sink is tested against a real one,
# pipelines/postgres.py starts it).  Installed when missing; needs root (CI is), else says how.
sysdeps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] || { echo "PostgreSQL's server is missing: sudo apt-get install postgresql" >&2; exit 1; }; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

test: env sysdeps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: env
	$(PY) -m benchmarks $(ARGS)

# The API reference: docs/api.md (the index, kept in the repository) and the pdoc HTML in docs/api/.
docs: env
	$(PY) docs/apidoc.py --html docs/api

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Materialises the default scenario's first 7 days with Dagster on local defaults
# (files under out/dagster, Dagster instance in .dagster_home) and prints where the files are.
run: env
	$(PY) -m pipelines.materialize --scenario telecom --days 7

# Simulation, GCS export and Pub/Sub publishing of 2 days, against emulators the demo starts and
# stops itself (Pub/Sub emulator from google-cloud-cli, gcp-storage-emulator); shows where things went.
demo: env
	$(PY) -m pipelines.demo --scenario telecom --days 2

# The Dagster UI on http://127.0.0.1:3000 (same instance and files as make run).
ui: env
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(VENV)/bin/circus ui --host 127.0.0.1 --port 3000
