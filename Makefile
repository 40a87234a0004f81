# Herald: `make run` starts the demo, `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint migrate seed clean help

help:
	@echo "make run    start Herald (web + worker + beat) with a demo workspace on http://127.0.0.1:8000"
	@echo "make test   run the whole test suite against PostgreSQL and Redis"

$(STAMP): pyproject.toml
	@PYBIN=$$(scripts/find-python) || exit 1; \
	  if [ ! -x $(PY) ]; then echo "Creating $(VENV) with $$PYBIN"; $$PYBIN -m venv $(VENV) || exit 1; fi
	@# uv installs the same packages from PyPI in about a fifth of pip's time (it resolves
	@# and downloads in parallel); pip is the fallback when uv cannot be had.
	@echo "Installing Herald and its packages into $(VENV)"
	@( $(PY) -m pip install --quiet --disable-pip-version-check uv 2>/dev/null \
	    && $(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]' ) \
	  || $(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP)

# Starts the embedded PostgreSQL and Valkey unless DATABASE_URL / REDIS_URL name servers,
# migrates, loads the demo, then web + worker + beat (config/launch.py).
run: $(STAMP)
	@$(PY) -m config.launch run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	SECRET_KEY=$${SECRET_KEY:-test-only-secret-key-not-for-production-use-0123456789} DEBUG=0 \
	  PROVIDER_SECRET_KEYS=$${PROVIDER_SECRET_KEYS:-dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=} \
	  SECURE_SSL_REDIRECT=0 STATIC_MANIFEST=0 \
	  ALLOWED_HOSTS=localhost,127.0.0.1,testserver \
	  $(PY) -m config.launch test $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/celerybeat-schedule*
