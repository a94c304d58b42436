# The README's commands. Each target sets itself up: uv is installed into .tools/ if missing.
SHELL := /bin/bash
UV_SYSTEM := $(shell command -v uv 2>/dev/null)
UV := $(if $(UV_SYSTEM),$(UV_SYSTEM),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: setup test demo sample-data psql luigid bench bench-serving audit clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

setup: $(UV)
	$(UV) sync --frozen

test: setup
	$(RUN) pytest

demo: setup
	$(RUN) python -m devtools.demo

# Sample data for docker compose (or any run): the dates of .env.example's backfill into data/incoming.
sample-data: setup
	$(RUN) python -m devtools.generate 2025-12-13 7 --dirty-rate 0.02

psql: setup
	$(RUN) python -m pipeline.serving.pg psql

# The central scheduler, on loopback only (it has no authentication); port = luigi.cfg [core] scheduler_port.
luigid: setup
	mkdir -p lake/_luigid/log
	$(RUN) luigid --address 127.0.0.1 --port 8082 --logdir lake/_luigid/log --state-path lake/_luigid/state.pickle

bench: setup
	$(RUN) python -m devtools.bench

bench-serving: setup
	$(RUN) python -m devtools.bench serving

audit: setup
	mkdir -p .tools
	$(UV) export --frozen --all-groups --no-emit-project --format requirements-txt > .tools/requirements.txt
	$(UV) tool run pip-audit --disable-pip --requirement .tools/requirements.txt

clean:
	rm -rf lake/raw lake/staging lake/warehouse lake/audit data/incoming
