# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run manage test lint bench bench-quick bench-clients clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(PY) -m devtools.run

# manage.py against the server of `make run`, e.g.
#   make manage ARGS="issue_token --sub alice --name Alice"
manage: install
	@DJANGO_DEBUG=$${DJANGO_DEBUG:-1} JWT_DEV_ISSUER=$${JWT_DEV_ISSUER:-1} \
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-local} \
	DYNAMODB_ENDPOINT_URL=$${DYNAMODB_ENDPOINT_URL:-http://127.0.0.1:$${DYNAMODB_LOCAL_PORT:-8001}} \
	$(PY) manage.py $(ARGS)

# Starts its own dynalite (and Redis if none answers) unless
# DYNAMODB_ENDPOINT_URL / REDIS_URL point elsewhere.
test: install
	DJANGO_DEBUG=1 $(PY) -m pytest $(PYTEST_ARGS)

# The tooling gate (pyproject.toml): lint, formatting, strict types.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(VENV)/bin/mypy

# Benchmarks: P against the Channels tutorial consumer (B0), the reference
# algorithm (B1), a bare websockets server (L) and P under uvicorn (PU);
# ratios in one run. bench-quick is small and asserts nothing.
bench: install
	$(PY) -m bench.run

bench-quick: install
	$(PY) -m bench.run --quick

# The candidate DynamoDB clients of the data plane, CPU per call.
bench-clients: install
	$(PY) -m bench.storage_clients

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
