"""A catalog snapshot's audit rows reach Postgres even when its date is not a published load date.

A weekly catalog is staged under its snapshot's date, and its quarantined rows and reconciliation
record are filed there. A backfill may start after that date, or a newer snapshot may supersede it
before any date is published: the serving audit must still hold what the lake holds, once, whatever
order the dates are published in.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from tests.support.ops import Ops

SUNDAY, MONDAY, TUESDAY = (dt.date(2025, 12, 7) + dt.timedelta(days=i) for i in range(3))


def lake_counts(ops: Ops, table: str) -> Counter:
    """Rows per (load_date, source_table) of the lake's catalog audit partitions up to TUESDAY."""
    counts: Counter = Counter()
    for path in (ops.lake / "audit" / table).glob("load_date=*/source_table=stg_*/data.parquet"):
        day = dt.date.fromisoformat(path.parts[-3].removeprefix("load_date="))
        source = path.parts[-2].removeprefix("source_table=")
        if day <= TUESDAY and source in ("stg_products", "stg_users"):
            counts[(day, source)] += pq.ParquetFile(path).metadata.num_rows
    return counts


def serving_counts(ops: Ops, table: str) -> Counter:
    return Counter({(day, source): rows for day, source, rows in ops.query(
        f"select load_date, source_table, count(*) from audit.{table}"  # noqa: S608 - a fixed table name
        " where source_table in ('stg_products', 'stg_users') group by 1, 2")})


@pytest.mark.slow
def test_snapshots_before_the_published_dates_reach_the_serving_audit(ops: Ops) -> None:
    ops.generate(SUNDAY, 3, dirty=0.0)
    products = ops.incoming / "products" / f"products_{SUNDAY}.json"
    catalog = json.loads(products.read_text())
    products.write_text(json.dumps([*catalog, {**catalog[0], "product_id": None}]))  # one quarantined row

    result = ops.luigi("DailyPipeline", "--date", str(TUESDAY), "--local-scheduler")
    assert result.returncode == 0, result.stderr[-3000:]
    bad, reconciled = lake_counts(ops, "bad_records"), lake_counts(ops, "reconciliation")
    assert bad[(SUNDAY, "stg_products")] == 1
    assert set(reconciled) == {(d, s) for d in (SUNDAY, MONDAY) for s in ("stg_products", "stg_users")}
    assert serving_counts(ops, "bad_records") == bad
    assert serving_counts(ops, "reconciliation") == reconciled

    # an earlier date published afterwards, and the date again: the same rows, once
    for day in (MONDAY, TUESDAY):
        result = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")
        assert result.returncode == 0, result.stderr[-3000:]
    assert serving_counts(ops, "bad_records") == bad
    assert serving_counts(ops, "reconciliation") == reconciled
