# The README's two commands are `make run` and `make test`; both install what is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/api:$(CURDIR)/scripts

.PHONY: run test migrate serve smoke dispatch ticker bench schema deps venv promtool senders lint pytest clean

deps:
	@scripts/bootstrap.sh system

$(VENV)/.installed: pyproject.toml
	@scripts/bootstrap.sh venv

venv: deps $(VENV)/.installed

run: venv
	@scripts/run.sh

test: venv promtool senders lint pytest

promtool:
	@scripts/bootstrap.sh promtool

# Prometheus and Alertmanager for tests/test_intake_real_senders.py, unpacked into .local/
senders:
	@scripts/bootstrap.sh senders

lint:
	$(VENV)/bin/sqlfluff lint db/migrations tests/sql
	$(VENV)/bin/ruff check api scripts tests

pytest:
	$(PY) -m pytest

migrate: venv
	$(PY) -m opsguard.migrate $${DATABASE_URL:-$$($(PY) scripts/localpg.py url)}

# body-only signatures stay refused unless asked for (make run turns them on for the smoke test)
serve: export OPS_HMAC_BODY_ONLY ?= off
serve: venv
	DATABASE_URL=$${DATABASE_URL:-$$($(PY) scripts/localpg.py url)} \
	  $(VENV)/bin/gunicorn -c api/gunicorn.conf.py 'opsguard.app:create_app()'

smoke: venv
	@scripts/smoke.sh

dispatch: venv
	$(PY) -m opsguard.dispatcher --dsn $${DATABASE_URL:-$$($(PY) scripts/localpg.py url)}

ticker: venv
	$(PY) -m opsguard.ticker --dsn $${DATABASE_URL:-$$($(PY) scripts/localpg.py url)}

bench: venv
	$(PY) scripts/bench.py

# db/schema.sql: the ops schema the migrations leave (tests/test_schema_file.py keeps it honest)
schema: venv
	$(PY) scripts/schema.py

clean:
	-$(PY) scripts/localpg.py stop
	rm -rf .local
