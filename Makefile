# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test clean

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

# Starts its own dynalite (and Redis if none answers) unless
# DYNAMODB_ENDPOINT_URL / REDIS_URL point elsewhere.
test: install
	DJANGO_DEBUG=1 $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
