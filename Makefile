# The README's two commands are `make run` and `make test`; both install what is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/api:$(CURDIR)/scripts

.PHONY: alertmanager run ha patroni test test-fast migrate serve smoke dispatch ticker collect bench schema where deps venv promtool senders lint pytest clean

deps:
	@scripts/bootstrap.sh system

$(VENV)/.installed: pyproject.toml
	@scripts/bootstrap.sh venv

venv: deps $(VENV)/.installed

run: venv
	@scripts/run.sh

# Debian's patroni, etcd-server and etcd-client, for make ha and its tests (tests/test_ha_failover.py)
patroni:
	@scripts/bootstrap.sh ha

# make run on etcd and three Patroni nodes (docs/ha.md); HA_ARGS="--pg-ports A,B,C --rest-ports
# D,E,F --etcd-ports G,H --dir D" (a second run reuses the first one's ports and data)
ha: venv patroni
	@scripts/run.sh ha $(HA_ARGS)

test: venv promtool senders patroni lint pytest

# the edit-test loop: every test that starts no outside server and waits on no clock (pytest -m "not slow")
test-fast: venv promtool
	$(PY) -m pytest -m "not slow" -q

promtool:
	@scripts/bootstrap.sh promtool

# Prometheus and Alertmanager for tests/test_intake_real_senders.py, unpacked into .local/
senders:
	@scripts/bootstrap.sh senders

# a real Alertmanager sending to the running make run (HOST, default http://localhost:3000) with
# docs/intake.md's configuration and fresh keys; prints how to push a test alert. AM_PORT=9093
alertmanager: venv senders
	@$(PY) scripts/alertmanager.py

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

# the Prometheus collector alone (docs/release-guard.md#metrics-from-prometheus); make run starts it when a source exists
collect: venv
	$(PY) -m opsguard.collector --dsn $${DATABASE_URL:-$$($(PY) scripts/localpg.py url)}

# make bench [PART="guard oncall"] [CHECK=1]: CHECK=1 exits non-zero when a figure misses its goal
bench: venv
	$(PY) -m bench $(PART) $(if $(CHECK),--check)

# db/schema.sql: the ops schema the migrations leave (tests/test_schema_file.py keeps it honest)
schema: venv
	$(PY) scripts/schema.py

# the migrations that define a function, oldest first: make where FN=ops.escalation_tick
where:
	@python3 scripts/where.py $(FN)

clean:
	-$(PY) scripts/localpg.py stop
	rm -rf .local
