"""int_flagged: of a day's checked rows, only those a rule quarantines or whose id is missing or repeated."""
from __future__ import annotations

import pyarrow as pa

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.transform import staging, staging_passes
from tests.support import rows as r

D = r.DAY


def flagged_row_numbers(tmp_path, monkeypatch, records: list[dict]) -> list[int]:
    r.use_lake(tmp_path, monkeypatch)
    r.write_events(D, records)
    sql = staging_passes.reading_from({"checked_records": sqlrun.sql_text("staging", "int_events_checked")},
                                      sqlrun.sql_text("staging", "int_flagged"))
    with sqlrun.connect() as con:
        staging.define_macros(con)
        sqlrun.register_parquet(con, "raw_events", lake.partition_file("raw", "events", D))
        con.register("reason_codes", pa.table({"reason_code": ["x"], "description": ["x"]}))
        rows = con.execute(f"select _row_number from ({sql})",
                           sqlrun.bind(sql, staging.model_params(D, "stg_events"))).fetchall()
    return sorted(row[0] for row in rows)


def test_only_quarantined_and_repeated_or_missing_ids_are_kept(tmp_path, monkeypatch):
    assert flagged_row_numbers(tmp_path, monkeypatch, [
        r.event(event_id="EVT_A"),                                   # 1: valid, unique: streamed, not held
        r.event(event_id="EVT_B", event_ts="yesterday"),             # 2: a row rule quarantines it
        r.event(event_id="EVT_C", event_ts=f"{D}T10:00:00"),         # 3, 4: same id, different content
        r.event(event_id="EVT_C", event_ts=f"{D}T11:00:00"),
        r.event(event_id="EVT_D"),                                   # 5, 6: exact duplicates
        r.event(event_id="EVT_D"),
        r.event(event_id=None),                                      # 7: no id
        r.event(event_id="EVT_E", event_type="add_to_cart"),         # 8: valid, unique
    ]) == [2, 3, 4, 5, 6, 7]


def test_a_clean_day_holds_no_row(tmp_path, monkeypatch):
    assert flagged_row_numbers(tmp_path, monkeypatch, [r.event(event_id=f"EVT_{i}") for i in range(500)]) == []
