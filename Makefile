# make run · make test · make bench — on a fresh machine with Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# links in e-mails (password reset) and the accepted Host headers (TRUSTED_HOSTS) derive from it;
# serving on every interface, the machine's first address stands in for 0.0.0.0
PUBLIC_HOST := $(if $(filter 0.0.0.0 ::,$(HOST)),$(or $(firstword $(shell hostname -I 2>/dev/null)),127.0.0.1),$(HOST))
PUBLIC_BASE_URL ?= http://$(PUBLIC_HOST):$(PORT)

.PHONY: run test bench lint translations clean cluster cluster-stop cluster-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

translations/zh_Hans_CN/LC_MESSAGES/messages.mo: translations/zh_Hans_CN/LC_MESSAGES/messages.po translations/zh_Hans_CN/LC_MESSAGES/admin.po $(VENV)/.runtime
	$(BIN)/pybabel compile --use-fuzzy -d translations
	$(BIN)/pybabel compile --use-fuzzy -D admin -d translations

translations: $(VENV)/.runtime  ## re-extract the messages into the .po catalogue (then translate)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs=".venv tests bench migrations" -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete

run: export PUBLIC_BASE_URL := $(PUBLIC_BASE_URL)
run: $(VENV)/.runtime translations/zh_Hans_CN/LC_MESSAGES/messages.mo
	$(BIN)/flask --app app init
	@echo "message worker started (e-mails: instance/mail/*.eml, SMS: instance/sms.log unless configured)"
	@echo "links in e-mails: $(PUBLIC_BASE_URL) (set PUBLIC_BASE_URL to change)"
	$(BIN)/flask --app app outbox run & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask --app app run --host $(HOST) --port $(PORT)

test: $(VENV)/.dev translations/zh_Hans_CN/LC_MESSAGES/messages.mo
	$(BIN)/ruff check .
	@[ -x /usr/bin/chromium ] || echo "NOTE: /usr/bin/chromium is missing: the browser tests (tests/browser: the journeys, \
	accessibility) are SKIPPED. apt-get install chromium to run them (.ci/run always does)."
	$(BIN)/python -m pytest

# BENCH_DATABASE_URL=postgresql+psycopg://… make bench: on that database, seeded once with 5,000,000 filings and
# reused (bench/common.py); BENCH_SMALL_DATABASE_URL: the 1,000-filing one the console benchmarks compare with
bench: $(VENV)/.dev translations/zh_Hans_CN/LC_MESSAGES/messages.mo
	$(BIN)/python bench/run.py
	$(BIN)/python bench/filings.py
	$(BIN)/python bench/public_lookup.py
	$(BIN)/python bench/imports.py
	$(BIN)/python bench/console_search.py
	$(BIN)/python bench/ip_reports.py
	$(BIN)/python bench/domain_reports.py
	$(BIN)/python bench/approval_contention.py
	$(BIN)/python bench/exchange.py
	$(BIN)/python bench/special_query.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/inspection.py

cluster: $(VENV)/.dev translations/zh_Hans_CN/LC_MESSAGES/messages.mo  ## PostgreSQL, Redis, 2 nodes, nginx :8080, 2 workers
	deploy/cluster.sh start

cluster-stop:
	deploy/cluster.sh stop

cluster-test: $(VENV)/.dev  ## the multi-node test, against a running `make cluster`
	CLUSTER_URL=http://127.0.0.1:$${CLUSTER_PORT:-8080} $(BIN)/python -m pytest -p no:cacheprovider tests/cluster

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
