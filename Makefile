# Herald: `make run` starts the demo, `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# make test talks to the real services; override with the same variables.
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/herald
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test install lint migrate seed clean help

help:
	@echo "make run    start Herald (web + worker + beat) with a demo workspace on http://127.0.0.1:8000"
	@echo "make test   run the whole test suite against PostgreSQL and Redis"

$(STAMP): pyproject.toml
	@PYBIN=$$(scripts/find-python) || exit 1; \
	  if [ ! -x $(PY) ]; then echo "Creating $(VENV) with $$PYBIN"; $$PYBIN -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	@mkdir -p var
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(PY) manage.py seed_demo
	DEBUG=$${DEBUG:-1} $(VENV)/bin/honcho --procfile Procfile start

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	  SECRET_KEY=$${SECRET_KEY:-test-only-secret-key-not-for-production-use-0123456789} DEBUG=0 \
	  SECURE_SSL_REDIRECT=0 STATIC_MANIFEST=0 \
	  ALLOWED_HOSTS=localhost,127.0.0.1,testserver \
	  $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/*.sqlite3 var/broker var/celerybeat-schedule*
