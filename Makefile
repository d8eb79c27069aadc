# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 5000
FLASK = $(VENV)/bin/flask --app wsgi

.PHONY: run test install install-test system-libs translations messages db demo vendor bench worker cron

run: install translations db demo
	@echo ""
	@echo "Prepaid Billing Portal: http://$(HOST):$(PORT)"
	@echo "  customer admin: demo@example.com / demo-password"
	@echo "  customer member: member@example.com / member-password"
	@echo "  staff admin:    staff@example.com / staff-password"
	@echo "  staff support:  support@example.com / support-password"
	@echo "  usage API key:  demo-calls-key   (try: .venv/bin/flask --app wsgi calls simulate --company demo@example.com --count 20)"
	@echo ""
	PORTAL_BASE_URL=http://$(HOST):$(PORT) $(FLASK) run --host $(HOST) --port $(PORT)

test: install-test translations
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Background work (REDIS_URL set): the workers of the three queues, and the cron scheduler. Each idle
# worker looks for jobs whose worker died (no heartbeat for a minute) every minute and runs them again.
worker: install
	@test -n "$$REDIS_URL" || { echo "REDIS_URL must be set"; exit 1; }
	$(VENV)/bin/rq worker --url "$$REDIS_URL" -w worker.AppWorker --with-scheduler --maintenance-interval 60 \
	  --worker-ttl 60 invoices emails billing

cron: install
	@test -n "$$REDIS_URL" || { echo "REDIS_URL must be set"; exit 1; }
	$(VENV)/bin/rq cron --url "$$REDIS_URL" app/cron.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: system-libs $(VENV)/.installed

# WeasyPrint (PDF invoices) needs Pango and a font; install them from Debian if they are missing.
system-libs:
	@if ! ldconfig -p | grep -q libpangoft2-1.0 || ! fc-list 2>/dev/null | grep -qi dejavu; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core >/dev/null; \
	  else echo "Please install Pango and a font: apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core"; exit 1; fi; \
	fi

install-test: $(VENV)/.installed-test

translations: install
	$(VENV)/bin/pybabel compile --use-fuzzy -d translations 2>&1 | grep -v "^compiling" || true
	@test -f translations/de/LC_MESSAGES/messages.mo

# After changing visible strings: extract them and merge into both catalogues.
messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k N_ -o translations/messages.pot app api core demo portal staff templates
	$(VENV)/bin/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching

db: install
	$(FLASK) db upgrade

demo: db
	$(FLASK) seed-demo

# Refresh the vendored front-end files from npm (needs the npm registry, not needed to run).
vendor:
	rm -rf /tmp/portal-vendor && mkdir -p /tmp/portal-vendor && cp package.json /tmp/portal-vendor/
	cd /tmp/portal-vendor && npm install --no-audit --no-fund
	cp /tmp/portal-vendor/node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx/
	cp /tmp/portal-vendor/node_modules/htmx.org/LICENSE static/vendor/htmx/LICENSE
	cp /tmp/portal-vendor/node_modules/@picocss/pico/css/pico.min.css static/vendor/pico/
	cp /tmp/portal-vendor/node_modules/@picocss/pico/LICENSE.md static/vendor/pico/LICENSE.md

bench: install-test
	$(VENV)/bin/python bench/ledger_pages.py
