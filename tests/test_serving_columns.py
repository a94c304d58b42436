"""The lake and Postgres have the same columns in the same order, for every table the publish serves.

An analyst's `select *` on the lake (DuckDB, `pipeline.lake.views`) and a BI tool's on Postgres must give the
same columns in the same order, or an export of one does not line up with the other. The publish maps the lake
to Postgres by column name (`pipeline.serving.lake_rows.lake_select`, from the Postgres table's columns), so
nothing but this test keeps the orders alike. The tables are the publish's own declarations (the facts, the
feeds, the per-load-date marts), so a table added to the publish is checked too. A real lake from the real
pipeline (2 generated days), published to a fresh database on the embedded Postgres.
"""
from __future__ import annotations

import datetime as dt

import psycopg
import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.lake import views
from pipeline.serving import publish
from pipeline.serving.facts import FACTS
from pipeline.serving.feeds import FEEDS
from pipeline.transform import marts
from tests.support import analytics_dataset

# (lake layer, lake table, partition keys, Postgres table) of every table the publish writes from the lake
PUBLISHED = (
    *(("warehouse", spec.lake_table, (), f"warehouse.{spec.parent}") for spec in FACTS),
    *((feed.layer, feed.lake_table, feed.sources, feed.table) for feed in FEEDS),
    *(("marts", table, (), f"marts.{table}") for table in marts.LOAD_DATE_MARTS),
)

# Columns that exist on one side only, by Postgres table: (lake only, Postgres only). Every other column is on
# both sides, in the same order.
ONE_SIDED: dict[str, tuple[set[str], set[str]]] = {
    # the lake's partition key, a column of every partition file: Postgres keeps the merged (or summed) rows
    # without it; a dimension's load date a merge needs is its own *_as_of column instead
    "warehouse.dim_date": ({"load_date"}, set()),
    # city_as_of: the load date city/country came from (the merge's as_of); updated_at: the last merge's time
    "warehouse.dim_user": ({"load_date"}, {"city_as_of", "updated_at"}),
    # product_key: the lake's surrogate key of a catalog version, not served (BI joins on product_id);
    # valid_as_of: the load date of the version kept
    "warehouse.dim_product": ({"product_key", "load_date"}, {"valid_as_of"}),
    "warehouse.dim_product_history": ({"product_key", "load_date"}, {"valid_as_of"}),
    # products_snapshot_dates: every catalog snapshot the date's build read (lake lineage); published_at: when
    # the date's row was published
    "warehouse.daily_metrics": ({"products_snapshot_dates", "load_date"}, {"published_at"}),
    # (complete_days' files lack it: its lake view reads it from the folder name)
    **{f"marts.{table}": ({"load_date"}, set()) for table in marts.LOAD_DATE_MARTS},
}
# The keyed audit tables' partition keys: the lake has them as folder names (load_date=D/source_table=S, read as
# columns at the end of the view; rejected_lines' files lack them), Postgres as the leading columns of its key.
# Their place is not compared; every other column is, in order.
PARTITION_KEYS = ("load_date", "source_table")


def _compared(columns: list[str], one_sided: set[str], keyed: bool) -> list[str]:
    return [c for c in columns if c not in one_sided and not (keyed and c in PARTITION_KEYS)]


def _postgres_columns(conn: psycopg.Connection, table: str) -> list[str]:
    schema, name = table.split(".")
    return [row[0] for row in conn.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
        " order by ordinal_position", [schema, name]).fetchall()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedded_server):
    root = tmp_path_factory.mktemp("serving-columns")
    with analytics_dataset.pipeline_dataset(root, embedded_server, days=2) as data:
        yield data


@pytest.fixture(scope="module")
def serving(built):
    with psycopg.connect(built.dsn, autocommit=True) as conn:
        yield conn


def _partition_columns(layer: str, table: str, day: dt.date, sources: tuple[str, ...]) -> list[list[str]]:
    """The columns of each of the date's partitions of a lake table (one per source_table of a keyed one), as the
    lake's views read them: the file's, then the folder names' keys the file lacks (hive partitioning)."""
    found = []
    for source in sources or ("",):
        path = lake.partition_file(layer, table, day, **({"source_table": source} if source else {}))
        if lake.exists(path):
            names = pq.read_schema(path).names
            found.append(names + [key for key in PARTITION_KEYS[:2 if source else 1] if key not in names])
    return found


@pytest.mark.slow
def test_every_published_lake_table_has_postgres_s_columns_in_postgres_s_order(built, serving) -> None:
    assert set(ONE_SIDED) <= {table for *_, table in PUBLISHED}, "a ONE_SIDED entry names no published table"
    day = built.dates[-1]
    for layer, table, sources, target in PUBLISHED:
        partitions = _partition_columns(layer, table, day, sources)
        assert partitions, f"the pipeline built no {layer}/{table} partition of {day}"
        pg_columns = _postgres_columns(serving, target)
        lake_only, pg_only = ONE_SIDED.get(target, (set(), set()))
        for lake_columns in partitions:
            keyed = bool(sources)
            assert set(lake_columns) - set(PARTITION_KEYS if keyed else ()) - set(pg_columns) == lake_only, (
                f"lake {layer}/{table} columns that {target} lacks (list them in ONE_SIDED with why)")
            assert set(pg_columns) - set(PARTITION_KEYS if keyed else ()) - set(lake_columns) == pg_only, (
                f"{target} columns that lake {layer}/{table} lacks (list them in ONE_SIDED with why)")
            assert _compared(lake_columns, lake_only, keyed) == _compared(pg_columns, pg_only, keyed), (
                f"lake {layer}/{table} and {target} order their columns differently: a `select *` of one does not"
                " line up with the other's; order the lake model's select as Postgres's table (Postgres cannot"
                " reorder a table's columns without rewriting it)")


@pytest.mark.slow
def test_the_lake_s_views_have_postgres_s_columns_in_postgres_s_order(built, serving) -> None:
    """What users `select *` from: the lake's views of the warehouse and marts schemas, named as Postgres's."""
    con = views.open_lake(built.lake)
    compared = set()
    for schema, view in views.relations(con):
        if schema not in ("warehouse", "marts") or not (pg_columns := _postgres_columns(serving, f"{schema}.{view}")):
            continue  # a lake-only relation: the partitions of a dimension, a mart's contributions (`<table>_all`)
        lake_columns = [row[0] for row in con.execute(f"describe {schema}.{view}").fetchall()]
        lake_only, pg_only = ONE_SIDED.get(f"{schema}.{view}", (set(), set()))
        assert _compared(lake_columns, lake_only, False) == _compared(pg_columns, pg_only, False), f"{schema}.{view}"
        compared.add(f"{schema}.{view}")
    # every published table of those schemas (the audit feeds are the test above's), and the views over them
    assert {table for *_, table in PUBLISHED if table.startswith(("warehouse.", "marts."))} <= compared
    assert {"warehouse.fact_orders", "warehouse.dim_date", "marts.daily_kpis"} <= compared


@pytest.mark.slow
def test_a_dim_date_partition_in_the_old_column_order_still_reads_and_publishes(built, serving) -> None:
    """A partition written before dim_date's columns took Postgres's order (iso_year before is_weekend), the
    oldest one: the lake's view still reads it, in the model's order, and a publish of its date still works."""
    day = built.dates[0]
    path = lake.partition_file("warehouse", "dim_date", day)
    current = pq.read_table(path)
    names = [name for name in current.column_names if name != "iso_year"]
    old = names[:names.index("is_weekend")] + ["iso_year"] + names[names.index("is_weekend"):]
    assert old != current.column_names, "the model writes iso_year after is_weekend, as Postgres has it"
    before = serving.execute("select * from warehouse.dim_date order by date_id").fetchall()
    pq.write_table(current.select(old), path)
    try:
        assert publish.publish(day)["dim_date_rows"] == current.num_rows
        assert serving.execute("select * from warehouse.dim_date order by date_id").fetchall() == before
        con = views.open_lake(built.lake)
        described = [row[0] for row in con.execute("describe warehouse.dim_date").fetchall()]
        assert described == [name for name in current.column_names]
        for relation in ("warehouse.dim_date_all", "warehouse.dim_date"):
            total, right = con.execute(
                f"select count(*), count(*) filter (where iso_year = isoyear(full_date)"
                f" and is_weekend = (isodow(full_date) >= 6)) from {relation}").fetchone()
            assert total == right > 0, relation
    finally:
        pq.write_table(current, path)
