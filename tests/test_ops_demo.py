"""`python -m devtools.demo` (what `make demo` runs): a week through the pipeline, then a rerun that changes nothing."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.ops import Ops
from tests.support.paths import REPO

# The demo's own defaults are 7 days of 3,000 orders and 30,000 events; a lighter 3 days keeps the suite fast.
ARGS = ["--days", "3", "--orders-per-day", "200", "--events-per-day", "1500"]


def demo(ops: Ops) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devtools.demo", *ARGS], cwd=REPO, env=ops.env,
                          capture_output=True, text=True, timeout=300, check=False)


def fingerprint(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root (logs aside): mtime and content hash."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and "_logs" not in p.parts}


@pytest.mark.slow
def test_the_demo_backfills_its_days_and_a_rerun_changes_nothing(ops: Ops) -> None:
    for path in ops.incoming.iterdir():  # the demo writes its own week
        subprocess.run(["rm", "-rf", str(path)], check=True)
    first = demo(ops)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    out = first.stdout
    assert "luigi --module pipeline.tasks RangeDaily --of DailyPipeline --start 2025-12-13 --stop 2025-12-16" in out
    assert "--workers 2 --local-scheduler" in out and "exit code 0" in out
    assert "3 of 3 date(s) published" in out
    for day in range(13, 16):
        assert f"2025-12-{day}  200>" in out
    bi_dsn = f"postgresql://bi_reader@127.0.0.1:{ops.server.port}/{ops.database}"
    assert "make psql" in out and bi_dsn in out
    with psycopg.connect(bi_dsn) as conn:  # the printed connection string works, read-only
        assert conn.execute("select count(distinct load_date) from warehouse.fact_orders_all").fetchone() == (3,)
    assert "How much revenue does each product category make per day" in out
    assert "For the last 10 load dates" in out and "orders_completion_rate" in out
    assert ops.query("select count(*), count(runtime_seconds) from warehouse.daily_metrics") == [(3, 3)]
    assert ops.query("select count(*) from audit.bad_records") != [(0,)], "the dirty share was quarantined"

    incoming, lake = fingerprint(ops.incoming), fingerprint(ops.lake)
    published = ops.query("select load_date, published_at from audit.publish_log order by 1")
    runs = ops.query("select count(*) from audit.pipeline_runs")
    second = demo(ops)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert "3 of 3 date(s) published" in second.stdout
    assert {k: v[1] for k, v in fingerprint(ops.incoming).items()} == {k: v[1] for k, v in incoming.items()}, \
        "the generator wrote the same bytes"
    assert fingerprint(ops.lake) == lake, "no lake file was rewritten"
    assert ops.query("select load_date, published_at from audit.publish_log order by 1") == published
    assert ops.query("select count(*) from audit.pipeline_runs") == runs, "no task ran"
