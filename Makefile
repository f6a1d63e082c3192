# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-app install-bench lock run manage test test-unit lint bench bench-quick bench-clients clean

# The lock files (README "Dependencies"): the app's for `make run`, the dev
# set for the tests and the tooling, plus plotting for the benchmark. One stamp
# per lock, so an unchanged lock installs nothing.
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check

install: $(VENV)/.installed-dev node_modules/.installed

install-app: $(VENV)/.installed-app node_modules/.installed

install-bench: $(VENV)/.installed-bench node_modules/.installed

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-app: requirements.txt | $(PY)
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt | $(PY)
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

$(VENV)/.installed-bench: requirements-bench.txt | $(PY)
	$(PIP_INSTALL) -r requirements-bench.txt
	touch $@

# Recompiles the lock files from the .in files with pip-tools (installed into
# the venv for this only), keeping every pin that still fits; to move some,
#   make lock LOCK_ARGS="--upgrade-package django"   (or --upgrade for all)
lock: | $(PY)
	$(PIP_INSTALL) pip-tools==7.6.2
	for lock in requirements requirements-dev requirements-bench; do \
	  CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --strip-extras --allow-unsafe \
	    --no-emit-index-url --no-emit-find-links --annotation-style=line $(LOCK_ARGS) -o $$lock.txt $$lock.in \
	    || exit 1; \
	done

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install-app
	$(PY) -m devtools.run

# manage.py against the server of `make run`, whatever PORT, REDIS_URL or
# DynamoDB it was given (it writes them to var/run.env: devtools/manage.py), e.g.
#   make manage ARGS="issue_token --sub alice --name Alice"
manage: $(VENV)/.installed-app
	@$(PY) -m devtools.manage $(ARGS)

# Debian's packages the tests run for real: chromium, which Playwright drives
# (never a browser download), and nginx in front of daphne. Installed with
# apt when missing (as root, else through sudo).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
CHROMIUM ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx

$(CHROMIUM) $(NGINX):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium nginx-light >/dev/null

# Starts its own dynalite (and Redis if none answers) unless
# DYNAMODB_ENDPOINT_URL / REDIS_URL point elsewhere.
test: install $(CHROMIUM) $(NGINX)
	DJANGO_DEBUG=1 $(PY) -m pytest $(PYTEST_ARGS)

# The tests marked `unit` alone, in seconds: nothing started, and Redis and
# DynamoDB pointed at closed ports, so a test that needs them fails.
test-unit: install
	DJANGO_DEBUG=1 REDIS_URL=redis://127.0.0.1:1 DYNAMODB_ENDPOINT_URL=http://127.0.0.1:1 \
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

# The tooling gate (pyproject.toml): lint, formatting, strict types.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(VENV)/bin/mypy

# Benchmarks: P against the Channels tutorial consumer (B0), the reference
# algorithm (B1), a bare websockets server (L) and P under uvicorn (PU);
# ratios in one run. bench-quick is small and asserts nothing.
bench: install-bench
	$(PY) -m bench.run

bench-quick: install-bench
	$(PY) -m bench.run --quick

# The candidate DynamoDB clients of the data plane, CPU per call.
bench-clients: install
	$(PY) -m bench.storage_clients

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
