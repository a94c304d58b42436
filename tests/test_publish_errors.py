"""A publish error names the table, the column and the record, mapped back to the lake row.

The lake partitions here are crafted to hold values Postgres cannot store (a NUL character, an id
longer than a btree index row), bypassing staging, which quarantines such values before they get
this far: the publish is the last line of defence and must say exactly where the value is.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import re
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline import config, lake
from pipeline.serving import preload, publish
from tests.support.serving import USER_SCHEMA, event, order, write_facts, write_rows
from tests.support.tmpfs import tmpfs

D = dt.date(2025, 12, 14)
POSITIONS = {"first": 0, "middle": 2, "last": 4}  # of five rows, two per COPY batch


def lake_name(path: str) -> str:
    """A lake path as messages show it: relative to the lake root."""
    return path[len(config.lake_dir()) + 1:]


def published_dates(target) -> list:
    with target.connect() as conn:
        if not conn.execute("select to_regclass('audit.publish_log') is not null").fetchone()[0]:
            return []
        return [d for (d,) in conn.execute("select load_date from audit.publish_log").fetchall()]


@pytest.fixture
def small_batches(luigi_settings):
    luigi_settings("publish", copy_batch_rows=2)  # the bad row may sit in a later batch than the first


@pytest.mark.parametrize("position", POSITIONS)
def test_a_nul_in_a_fact_names_the_column_and_the_order(fresh_db, serving_lake, small_batches, position) -> None:
    index = POSITIONS[position]
    orders = [order(f"ORD_{i}", D) for i in range(1, 6)]
    orders[index]["status"] = "pa\x00id"
    write_facts(D, orders, [event("EVT_1", D)])
    with pytest.raises(publish.PublishError) as caught:
        publish.publish(D)
    path = lake_name(lake.partition_file("warehouse", "fact_orders", D))
    assert str(caught.value) == (
        f"publishing {D} failed: warehouse.fact_orders_all.status, row {index + 1} of lake {path}"
        f" (order_id 'ORD_{index + 1}'): invalid byte sequence for encoding \"UTF8\": 0x00;"
        " it was rolled back, Postgres is unchanged")
    assert published_dates(fresh_db) == []


def test_a_preload_error_names_the_column_and_the_event(fresh_db, serving_lake, small_batches) -> None:
    events = [event(f"EVT_{i}", D) for i in range(1, 6)]
    events[3]["event_type"] = "view\x00"
    write_facts(D, [order("ORD_1", D)], events)
    with pytest.raises(publish.PublishError,
                       match=r"^preloading fact_events of 2025-12-14 failed: warehouse\.fact_events_all\.event_type,"
                             r" row 4 of lake warehouse/fact_events/load_date=2025-12-14/data\.parquet"
                             r" \(event_id 'EVT_4'\): invalid byte sequence .*0x00; it was rolled back"):
        preload.preload("fact_events", D)


def bad_record(row_number: int, **overrides) -> dict:
    row = {"record_id": f"ORD_{row_number}", "reason_code": "invalid_price", "message": "price is not a number",
           "failing_value": "abc", "raw_record": '{"price": "abc"}', "source_file": "orders.json",
           "row_number": row_number, "load_date": D}
    row.update(overrides)
    return row


@pytest.mark.parametrize("position", POSITIONS)
def test_a_nul_in_a_quarantined_record_names_it_by_its_key(fresh_db, serving_lake, small_batches, position) -> None:
    """In an audit table the record is named by its key in the table, not by a value of the rejected record."""
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("audit", "bad_records", D, [bad_record(n) for n in (1, 2)], source_table="stg_orders")
    rows = [bad_record(n, record_id=f"EVT_{n}") for n in (11, 12, 13, 14, 15)]
    rows[POSITIONS[position]]["raw_record"] = '{"event_type": "vi\x00ew"}'
    write_rows("audit", "bad_records", D, rows, source_table="stg_events")
    with pytest.raises(publish.PublishError) as caught:
        publish.publish(D)
    path = lake_name(lake.partition_file("audit", "bad_records", D, source_table="stg_events"))
    assert str(caught.value) == (
        f"publishing {D} failed: quarantine.bad_records.raw_record, row {POSITIONS[position] + 1} of lake {path}"
        f" (source_table 'stg_events', row_number {11 + POSITIONS[position]}): invalid byte sequence for encoding"
        " \"UTF8\": 0x00; it was rolled back, Postgres is unchanged")
    assert "EVT_" not in str(caught.value), "no value of the rejected record is quoted"
    assert published_dates(fresh_db) == []


def test_a_nul_in_a_rejected_line_names_its_file_line(fresh_db, serving_lake) -> None:
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("audit", "rejected_lines", D, [
        {"source_file": "events.csv", "line_number": 9, "raw_text": "x,y", "error": "TOO FEW COLUMNS: 2"},
        {"source_file": "events.csv", "line_number": 12, "raw_text": "a,\x00", "error": "TOO FEW COLUMNS: 2"},
    ], source_table="events")
    with pytest.raises(publish.PublishError, match=(
            r"failed: quarantine\.rejected_lines\.raw_text, row 2 of lake audit/rejected_lines/load_date=2025-12-14/"
            r"source_table=events/data\.parquet \(source_table 'events', line_number 12\): invalid byte sequence")):
        publish.publish(D)


def long_id() -> str:
    """An id no btree index row can hold (random, so that Postgres cannot compress it small)."""
    rng, chars = random.Random(13), string.ascii_letters + string.digits
    return "USER_" + "".join(rng.choice(chars) for _ in range(3000))


def test_an_id_too_long_for_an_index_names_the_column_and_the_record(fresh_db, serving_lake) -> None:
    write_facts(D, [order("ORD_1", D), order("ORD_2", D, user_id=long_id()), order("ORD_3", D)], [event("EVT_1", D)])
    with pytest.raises(publish.PublishError, match=(
            r"failed: warehouse\.fact_orders_all\.user_id, row 2 of lake warehouse/fact_orders/load_date=2025-12-14/"
            r"data\.parquet \(order_id 'ORD_2'\): index row size \d+ exceeds btree version 4 maximum 2704")):
        publish.publish(D)
    user = {"user_id": long_id(), "first_seen_date": D, "first_order_date": None, "last_seen_date": D,
            "city": None, "country": None, "load_date": D}
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("warehouse", "dim_user", D, [dict(user, user_id="USER_1"), user], USER_SCHEMA)
    with pytest.raises(publish.PublishError) as caught:
        publish.publish(D)
    message = str(caught.value)
    assert message.startswith(f"publishing {D} failed: warehouse.dim_user.user_id, row 2 of lake warehouse/dim_user/")
    assert "(user_id 'USER_" in message and "...')" in message, "a long key value is cut"
    assert len(message) < 400
    assert published_dates(fresh_db) == []


def test_a_unique_violation_names_the_key(fresh_db, serving_lake) -> None:
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("audit", "bad_records", D, [bad_record(3), bad_record(3, record_id="ORD_X")], source_table="stg_orders")
    with pytest.raises(publish.PublishError, match=(
            r"failed: quarantine\.bad_records, Key \(load_date, source_table, row_number\)=\(2025-12-14, stg_orders, 3\)"
            r" already exists: duplicate key value violates unique constraint \"bad_records_pkey\"")):
        publish.publish(D)


# ------------------------------------------------------------------ Postgres's own disk full (SQLSTATE 53100)
@contextlib.contextmanager
def tiny_disk_for(target, size: str = "1m") -> Iterator[str]:
    """A tmpfs of `size` as the database's default tablespace: Postgres's tables fill it, not the lake's disk.

    As root or as any user (tests/support/tmpfs.py); its folder is given to the user Postgres runs as."""
    folder = Path(tempfile.mkdtemp(prefix="ecomm-pgfull-"))
    space = f"full_{target.database}"
    try:
        with tmpfs(folder, size) as disk:
            try:
                with target.connect(autocommit=True) as conn:
                    owner = Path(conn.execute("show data_directory").fetchone()[0]).stat()
                    os.chown(disk, owner.st_uid, owner.st_gid)
                    disk.chmod(0o700)
                    conn.execute(f'create tablespace "{space}" location \'{disk}\'')
                    conn.execute(f'grant create on tablespace "{space}" to public')  # the publish writes as ecomm_writer
                    conn.execute(f'alter database "{target.database}" set default_tablespace = "{space}"')
                yield str(disk)
            finally:
                with psycopg.connect(target.dsn.replace(f"/{target.database}", "/postgres", 1), autocommit=True) as conn:
                    conn.execute(f'drop database if exists "{target.database}" with (force)')
                    conn.execute(f'drop tablespace if exists "{space}"')
    finally:
        folder.rmdir()


def test_postgres_out_of_disk_blames_its_disk_not_a_row_nor_the_lake(fresh_db, serving_lake) -> None:
    from pipeline.serving import migrations, pg
    from pipeline.tasks import runbook

    write_facts(D, [order(f"ORD_{i:06d}", D, status="paid" * 20) for i in range(20000)], [event("EVT_1", D)])
    with pg.connect() as conn:
        migrations.ensure_schema(conn)  # the schema itself fits; the day's rows do not
    with tiny_disk_for(fresh_db), pytest.raises(publish.PublishError) as caught:
        preload.preload("fact_orders", D)
    message = str(caught.value)
    assert re.fullmatch(r"preloading fact_orders of 2025-12-14 failed: the serving Postgres's disk is full \(could not"
                        r" extend file \"pg_tblspc/[^\"]+\"(: No space left on device| with FileFallocate\(\): No space"
                        r" left on device|: wrote only \d+ of \d+ bytes at block \d+)\); it was rolled back, Postgres is"
                        r" unchanged", message), message
    assert "row" not in message.replace("rolled", "") and "ORD_" not in message, "no row is to blame"
    said = runbook.explain("PreloadFactOrders", D, caught.value, local_scheduler=True)
    assert said.splitlines()[1].startswith("What to do (Postgres disk full): free space on the serving Postgres's disk")
    assert "ECOMM_PG_DATA" in said and "lake/_archive" not in said
    assert runbook.remedy_for_text(runbook.reason(caught.value)).kind == "Postgres disk full"


def test_each_postgres_disk_full_message_gets_its_advice(fresh_db) -> None:
    """As the run audit records them, including a short write, which says nothing of space."""
    from pipeline.serving import publish_errors
    from pipeline.serving.transaction import failure
    from pipeline.tasks import runbook

    short_write = 'could not extend file "base/16384/17414": wrote only 4096 of 8192 bytes at block 1502'
    with fresh_db.connect() as conn, pytest.raises(psycopg.errors.DiskFull) as caught:  # a real server's error
        conn.execute(f"do $$ begin raise exception using errcode = 'disk_full', message = '{short_write}'; end $$")
    target = publish_errors.Progress()
    target.at("warehouse.fact_orders_all", keys=("order_id",))
    said = failure(f"preloading fact_orders of {D}", caught.value, target, None)
    assert said == (f"preloading fact_orders of {D} failed: the serving Postgres's disk is full ({short_write});"
                    " it was rolled back, Postgres is unchanged")
    assert runbook.remedy_for(caught.value).kind == "Postgres disk full"
    assert runbook.remedy_for(publish.PublishError(said)).kind == "Postgres disk full"
    for recorded in (f"PublishError: {said}", f"DiskFull: {short_write}",
                     f"PublishError: preloading fact_orders of {D} failed: warehouse.fact_orders_all, row 84000 of lake"
                     f" warehouse/fact_orders/load_date={D}/data.parquet (order_id 'ORD_1'): could not extend file"
                     ' "base/16384/17414" with FileFallocate(): No space left on device; it was rolled back, Postgres'
                     " is unchanged"):
        assert runbook.remedy_for_text(recorded).kind == "Postgres disk full", recorded
    # a disk so full that Postgres refuses new sessions: not "Postgres refuses" (the login is not at fault)
    refused = ('connection failed: connection to server on socket "/srv/pg/.s.PGSQL.5432" failed: FATAL:  could not'
               " write init file")
    assert runbook.remedy_for_text(f"OperationalError: {refused}").kind == "Postgres disk full"
    assert runbook.remedy_for(psycopg.OperationalError(refused)).kind == "Postgres disk full"
    # the lake's own full disk keeps the lake's advice
    assert runbook.remedy_for_text("OSError: [Errno 28] No space left on device: 'lake/x.tmp'").kind == "disk full"
    assert runbook.remedy_for(OSError(28, "No space left on device")).kind == "disk full"


def test_an_embedded_server_that_cannot_start_on_a_full_disk_says_so_not_start_it(monkeypatch) -> None:
    """A start writes before it serves (its lock file; after a crash, WAL): on a full disk it failed as "Postgres down:
    start it", which fails the same way until there is room."""
    from pipeline.serving import data_folder, embedded, pg
    from pipeline.tasks import runbook
    from tests.support.processes import free_port

    folder = Path(tempfile.mkdtemp(prefix="ecomm-pgstart-"))
    try:
        with tmpfs(folder, "80m") as disk:
            for name in ("ECOMM_PG_DSN", "PGHOST", "PGDATABASE", "PGSERVICE", "PGPORT"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("ECOMM_PG_DATA", str(disk / "pgdata"))
            monkeypatch.setenv("ECOMM_PG_PORT", str(free_port()))
            pg.start_embedded()
            try:
                pg.stop_embedded()
                with open(disk / "filler", "wb") as filler, contextlib.suppress(OSError):
                    while True:
                        filler.write(b"\0" * 65536)
                        filler.flush()
                with pytest.raises(data_folder.EmbeddedDiskFull) as caught:
                    pg.start_embedded()
                assert embedded._disk_full(disk / "pgdata"), "found full without the log's word for it too"
            finally:
                (disk / "filler").unlink(missing_ok=True)
                with contextlib.suppress(pg.EmbeddedServerError):
                    pg.stop_embedded()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    first = str(caught.value).splitlines()[0]
    assert "No space left on device" in first and "Its disk is full: free space on it" in first, first
    assert runbook.remedy_for(caught.value).kind == "Postgres disk full"
