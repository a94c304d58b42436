"""int_kept: the rows duplicate resolution keeps, streamed in their order, the dropped ones looked up in a bitstring."""
from __future__ import annotations

from pipeline.transform import sqlrun, staging

ROWS = 300_000  # several of DuckDB's row groups, so that its threads share the scan


def kept(order: list[int], dropped: set[int]) -> list[int]:
    with sqlrun.connect() as con:
        con.execute("set threads = 2")
        con.execute("create table checked_records as select unnest($rows::bigint[]) as _row_number", {"rows": order})
        con.execute("create table int_duplicates as select unnest($rows::bigint[]) as _row_number",
                    {"rows": sorted(dropped)})
        bits = con.execute("select bitstring_agg(_row_number, 0, $last)::varchar from int_duplicates",
                           {"last": max(order)}).fetchone()[0]
        sql = sqlrun.sql_text("staging", "int_kept")
        return [row[0] for row in con.execute(f"select _row_number from ({sql})", {"dropped_rows": bits}).fetchall()]


def test_the_dropped_rows_are_left_out_and_the_rest_keep_their_order():
    order = [ROWS - i for i in range(ROWS)]  # not sorted: the output must follow the input, not the numbers
    dropped = {1, 2, 77_777, 150_000, ROWS}
    assert kept(order, dropped) == [n for n in order if n not in dropped]


def test_nothing_dropped_keeps_every_row():
    assert kept([3, 1, 2], set()) == [3, 1, 2]
