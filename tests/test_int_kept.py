"""int_kept: the rows staging stages, streamed in their order, the unstaged ones looked up in a bitstring."""
from __future__ import annotations

from pipeline.lake import sqlrun
from pipeline.transform import staging

ROWS = 300_000  # several of DuckDB's row groups, so that its threads share the scan


def kept(order: list[int], unstaged: set[int], reason: str | None = None) -> list[tuple[int, str | None]]:
    with sqlrun.connect() as con:
        con.execute("set threads = 2")
        con.execute(
            "create table checked_records as select unnest($rows::bigint[]) as _row_number,"
            " $reason::varchar as _row_reason_code", {"rows": order, "reason": reason},
        )
        con.execute("create table unstaged as select unnest($rows::bigint[]) as _row_number",
                    {"rows": sorted(unstaged)})
        bits = con.execute("select bitstring_agg(_row_number, 0, $last)::varchar from unstaged",
                           {"last": max(order)}).fetchone()[0]
        sql = sqlrun.sql_text("staging", "int_kept")
        return con.execute(f"select _row_number, _row_reason_code from ({sql})", {"unstaged_rows": bits}).fetchall()


def test_the_unstaged_rows_are_left_out_and_the_rest_keep_their_order():
    order = [ROWS - i for i in range(ROWS)]  # not sorted: the output must follow the input, not the numbers
    unstaged = {1, 2, 77_777, 150_000, ROWS}
    assert [row[0] for row in kept(order, unstaged)] == [n for n in order if n not in unstaged]


def test_nothing_unstaged_keeps_every_row():
    assert [row[0] for row in kept([3, 1, 2], set())] == [3, 1, 2]


def test_the_row_rules_are_not_read_again():
    # the bitstring holds every row a rule quarantines (int_flagged decided them), so a row left in is
    # staged: its row rule column is NULL whatever the checked select computed, and DuckDB can skip the rules
    assert kept([3, 1, 2], {1}, reason="invalid_event_id") == [(3, None), (2, None)]
