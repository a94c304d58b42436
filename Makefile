# The README's commands. Each target sets itself up: uv is installed into .tools/ if missing.
SHELL := /bin/bash
UV_SYSTEM := $(shell command -v uv 2>/dev/null)
UV := $(if $(UV_SYSTEM),$(UV_SYSTEM),.tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: setup test demo sample-data psql luigid notebook bench bench-serving audit clean

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

setup: $(UV)
	$(UV) sync --frozen

test: setup
	$(RUN) pytest

# DEMO_ARGS: the demo's options for a smaller or longer week, e.g. make demo DEMO_ARGS="--orders-per-day 300"
demo: setup
	$(RUN) python -m devtools.demo $(DEMO_ARGS)

# Sample data for docker compose (or any run): the dates of .env.example's backfill into data/incoming.
sample-data: setup
	$(RUN) python -m devtools.generate 2025-12-13 7 --dirty-rate 0.02

psql: setup
	$(RUN) python -m pipeline.serving.pg psql

# The central scheduler, on loopback only (it has no authentication); port 8082, the one luigi.cfg [core]
# scheduler_port names: change both together.
luigid: setup
	mkdir -p lake/_luigid/log
	@echo "luigid: UI on http://127.0.0.1:8082 , Prometheus metrics on http://127.0.0.1:8082/metrics (Ctrl-C stops it)"
	$(RUN) luigid --address 127.0.0.1 --port 8082 --logdir lake/_luigid/log --state-path lake/_luigid/state.pickle

# JupyterLab (the notebook dependency group) on localhost, the repository as its root, opening
# queries/explore.ipynb (the URL it prints opens it too); Ctrl-C stops it.
# NOTEBOOK_ARGS: more options for jupyter lab, e.g. make notebook NOTEBOOK_ARGS="--port 8890 --no-browser".
# As root (a container's usual user) JupyterLab refuses to start without --allow-root.
notebook: setup
	$(RUN) jupyter lab --ip 127.0.0.1 --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/queries/explore.ipynb \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(NOTEBOOK_ARGS)

bench: setup
	$(RUN) python -m devtools.bench

bench-serving: setup
	$(RUN) python -m devtools.bench serving

audit: setup
	mkdir -p .tools
	$(UV) export --frozen --all-groups --no-emit-project --format requirements-txt > .tools/requirements.txt
	$(UV) tool run pip-audit --disable-pip --requirement .tools/requirements.txt

# Back to a fresh clone's state (to start the demo over): the checkout's lake/ (every layer, the archive,
# luigid's state), data/incoming/, reports/ and the embedded Postgres's data, .pgdata/ (stopped first), go
# together, so that no published date outlives its lake. Only what lives in the checkout: ECOMM_LAKE_DIR,
# ECOMM_DATA_DIR and a Postgres named by ECOMM_PG_DSN are not touched; data/bench/ (make bench) is kept.
clean:
	@if [ -d .pgdata ]; then ECOMM_PG_DATA="$(CURDIR)/.pgdata" $(RUN) python -m pipeline.serving.pg stop; fi
	find lake -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf data/incoming reports .pgdata ..pgdata.initdb-*
