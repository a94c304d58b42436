# The pipeline's image for docker-compose.yml (luigid and the worker): the locked dependencies
# (uv.lock) and the code. Incoming data, the lake and the scheduler state are volumes, never baked in.
FROM python:3.11-slim

RUN pip install --no-cache-dir uv==0.13.9 \
 && useradd --create-home --uid 1000 ecomm \
 && mkdir -p /app /state/log \
 && chown ecomm /app /state /state/log

ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies first (cached until uv.lock changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
COPY luigi.cfg ./
COPY pipeline ./pipeline
COPY sql ./sql
COPY checks ./checks
COPY queries ./queries
# The DummyJSON catalog the sample-data generator builds on.
COPY tests/fixtures/dummyjson ./tests/fixtures/dummyjson
RUN uv sync --frozen && mkdir -p data lake && chown ecomm data lake

USER ecomm
CMD ["luigi", "--help"]
