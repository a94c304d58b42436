# The pipeline's image for docker-compose.yml (luigid and the worker): the product only. The project
# is installed as a wheel (not editable) with the locked runtime dependencies (uv.lock, no dependency
# groups): no tests/, no devtools/. The wheel carries sql/, checks/, queries/ and the default
# luigi.cfg (pipeline/resources.py finds them). Sample data is generated on the host into the
# mounted ./data (see docker-compose.yml); incoming data, the lake and the scheduler state are
# volumes, never baked in.
FROM python:3.11-slim

# DuckDB spills what outgrows [duckdb] memory_limit to [duckdb] temp_directory, by default
# /var/tmp/ecomm-duckdb-<uid> (pipeline/lake/spill.py): made here for ecomm, on disk and writable by it
# (DuckDB's own default, .tmp in the folder a command runs from, was /app/.tmp, which ecomm may not make).
RUN pip install --no-cache-dir uv==0.13.9 \
 && useradd --create-home --uid 1000 ecomm \
 && mkdir -p /app/data /app/lake /state/log \
 && chown ecomm /app/data /app/lake /state /state/log \
 && install -d -m 0700 -o ecomm /var/tmp/ecomm-duckdb-1000

ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH=/opt/venv/bin:$PATH

# Built in /src, which is removed afterwards: dependencies first (cached until uv.lock changes), then
# the project's wheel (hatchling reads README.md for the package metadata).
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY luigi.cfg ./
COPY pipeline ./pipeline
COPY sql ./sql
COPY checks ./checks
COPY queries ./queries
RUN uv sync --frozen --no-default-groups --no-editable && rm -rf /src

# Runs start here. luigid reads ./luigi.cfg ([scheduler] retries, disable times); the worker takes
# the packaged copy as its defaults. Mount a file over /app/luigi.cfg to change settings.
WORKDIR /app
COPY luigi.cfg ./

USER ecomm
CMD ["luigi", "--help"]
