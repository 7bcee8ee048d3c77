# Two commands on a fresh Debian machine (root, Python 3.11):
#   make demo   installs what is missing, provisions PostGIS, loads the demo, serves :8000
#   make test   the same set-up, then the whole suite against a real PostGIS
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
PG_MAJOR ?= 15
export UV_LINK_MODE := copy

.PHONY: demo test bench chaos load fuzz lint setup system-deps python-deps db-url db-stop clean-db

demo: setup
	$(VENV)/bin/geo-service demo

test: python-deps
	@$(MAKE) --no-print-directory system-deps TEST_TOOLS=1
	$(VENV)/bin/pytest -q

bench: setup
	$(VENV)/bin/python -m benchmarks

# schemathesis over the whole API as the public and as each role, every check on, against a
# real uvicorn on a throw-away demo database (tests/fuzz.py; make test runs a small one)
fuzz: setup
	$(VENV)/bin/python -m tests.fuzz

# kill -9 the service (and once PostgreSQL, immediately) under idempotent intake: acknowledged,
# lost, stored twice (a small run is tests/test_chaos.py); its own cluster in .data/chaos-pg
chaos: setup
	$(VENV)/bin/python -m benchmarks.chaos

# locate, tiles, intake and indicators at fixed rates for 30 s (loopback): p50/p99, errors, RSS
load: setup
	$(VENV)/bin/python -m benchmarks.load

lint: python-deps
	$(VENV)/bin/ruff check geo_service tests benchmarks boundaries
	$(VENV)/bin/mypy geo_service

setup: system-deps python-deps

# Debian packages, in one apt-get run: PostgreSQL + PostGIS (only when DATABASE_URL is unset),
# fonts-noto-cjk and Pango (WeasyPrint prints the Chinese reports), with TEST_TOOLS=1 (make test)
# also chromium (the browser tests), gdal-bin (GDAL reads our OGC API over OAPIF) and
# poppler-utils (pdftotext reads the printed reports).
system-deps:
	@missing=""; \
	if [ -z "$$DATABASE_URL" ] && ! [ -f /usr/share/postgresql/$(PG_MAJOR)/extension/postgis.control ]; then \
	  missing="$$missing postgresql-$(PG_MAJOR)-postgis-3"; fi; \
	[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing="$$missing fonts-noto-cjk"; \
	ldconfig -p | grep -q libpangoft2-1.0 || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	if [ -n "$(TEST_TOOLS)" ]; then \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  command -v ogrinfo >/dev/null 2>&1 || missing="$$missing gdal-bin"; \
	  command -v pdftotext >/dev/null 2>&1 || missing="$$missing poppler-utils"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (need root, or set DATABASE_URL)"; exit 1; fi; \
	  echo "installing$$missing ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

python-deps:
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || $(PYTHON) -m pip install -q --user uv || $(PYTHON) -m pip install -q uv
	@$$(command -v uv || echo $(UV)) sync --frozen -q

db-url: python-deps
	@$(VENV)/bin/geo-service db url

db-stop:
	@$(VENV)/bin/geo-service db stop
