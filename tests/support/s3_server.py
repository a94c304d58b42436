"""A real S3-compatible server on 127.0.0.1 for the object-storage lake tests (moto's standalone
server, in its own process: real HTTP, real S3 requests, nothing mocked inside the pipeline).

Fixtures (registered by tests/conftest.py): `s3_env`, the session's server as the AWS environment a
client needs; `s3_lake`, this process's lake root set to a fresh prefix in its bucket.

Standalone: `python -m tests.support.s3_server` prints the `export` lines for a shell."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import pyarrow.fs as pafs
import pytest

from pipeline.lake import s3
from tests.support.processes import free_port

BUCKET = "ecomm-lake"


@contextlib.contextmanager
def s3_server(*, checks_credentials: bool = False) -> Iterator[dict[str, str]]:
    """Start the server, create BUCKET; yield the AWS environment a client needs to reach it.

    checks_credentials: a server that checks every request's keys from the first one on and knows none (so no
    bucket is made): the environment's keys are wrong credentials, refused as a real store refuses them.
    """
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: nobody reads it, and a full pipe blocks the server
    auth = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if checks_credentials else {}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, **auth})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the S3 server did not start: {log.read()[-2000:]}") from None
                time.sleep(0.1)
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
        if checks_credentials:
            yield env
            return
        filesystem = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], access_key="test",
                                       secret_key="test", region="us-east-1", allow_bucket_creation=True)
        filesystem.create_dir(BUCKET)
        yield env
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    """The session's S3 server: the AWS environment variables that reach it."""
    with s3_server() as env:
        yield env


@pytest.fixture
def s3_lake(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's lake root set to a fresh prefix in the bucket (by environment only)."""
    root = f"s3://{BUCKET}/t-{uuid.uuid4().hex[:8]}"
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ECOMM_LAKE_DIR", root)
    s3._client.cache_clear()  # built from the environment on first use
    yield root
    s3._client.cache_clear()


def main() -> None:
    """Run the server until interrupted, printing the environment a pipeline run needs to use it."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the moto child too
    with s3_server() as env:
        print("\n".join(f"export {name}={value}" for name, value in env.items()), flush=True)
        print(f"# bucket {BUCKET} exists; e.g. export ECOMM_LAKE_DIR=s3://{BUCKET}/lake  (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
