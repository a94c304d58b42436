"""The staging passes' plumbing: the relations a pass reads, the rows it leaves out, the types it writes.

`pipeline.transform.staging` runs two passes over a raw partition: int_flagged (the few rows whose
outcome is more than their row rules) and the staging partition's pass, which streams the checked
rows again, less the unstaged ones (int_kept). This module builds the SQL and the lookups they share.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb

from pipeline.lake import sqlrun


def mark_dropped_rows(con: duckdb.DuckDBPyConnection, checked: str) -> None:
    """Mark the rows int_duplicates drops on the table of checked rows itself (int_flagged; in place).

    int_validated then reads one table, a single-table select like its streamed use for the staging
    partition (where nothing is dropped: int_kept has left those rows out).
    """
    table = sqlrun.quote_ident(checked)
    con.execute(f"alter table {table} add column _drop_is_duplicate boolean")
    con.execute(f"alter table {table} add column _drop_reason_code varchar")
    con.execute(f"alter table {table} add column _drop_kept_row_number bigint")
    con.execute(
        f"update {table} as checked set _drop_is_duplicate = dropped.is_duplicate,"
        " _drop_reason_code = dropped.reason_code, _drop_kept_row_number = dropped.kept_row_number"
        " from int_duplicates as dropped where checked._row_number = dropped._row_number"
    )


def reading_from(relations: dict[str, str], select_sql: str) -> str:
    """`select_sql` with the relations it reads given as SQL (CTEs, not materialized: each streams where read)."""
    ctes = ",\n".join(f"{sqlrun.quote_ident(name)} as not materialized (\n{sql}\n)" for name, sql in relations.items())
    return f"with {ctes}\nselect * from (\n{select_sql}\n)"


def staging_pass(checked_sql: str, table: str) -> str:
    """The staging partition's SELECT: the checked rows streamed from the raw partition, less the unstaged ones.

    One pass in source-file order (int_kept, int_validated and stg_<source> are single-table selects),
    so the day's rows are never held: a table of them outgrew [duckdb] memory_limit on big days.
    """
    kept = reading_from({"checked_records": checked_sql}, sqlrun.sql_text("staging", "int_kept"))
    validated = reading_from({"checked_records": kept}, sqlrun.sql_text("staging", "int_validated"))
    return reading_from({"int_validated": validated}, sqlrun.sql_text("staging", table))


def unstaged_rows(con: duckdb.DuckDBPyConnection, source: str) -> str | None:
    """The row numbers of the rows not staged, as a bitstring's text (bit n set for row n; None: none).

    Quarantined or dropped as duplicates: every such row is in int_flagged, and int_validated over it
    holds its outcome, so the staging pass looks the outcome up instead of checking the row rules again.
    """
    last = con.execute(f"select max(_row_number) from {sqlrun.quote_ident('raw_' + source)}").fetchone()[0]
    if last is None:
        return None
    return con.execute(
        "select bitstring_agg(_row_number, 0, $last)::varchar from int_validated"
        " where _reason_code is not null or _is_duplicate",
        {"last": last},
    ).fetchone()[0]


def create_staged_types(con: duckdb.DuckDBPyConnection, source: str, enums: Mapping[str, Sequence[str]]) -> None:
    """The ENUM types the staging models cast their few-valued text columns to before the write.

    DuckDB writes an ENUM column to Parquet as the same dictionary-encoded UTF8 strings (readers see
    text), from the enum's codes: without hashing every value into a dictionary and building a bloom
    filter, ~20 % of the events' staging write. staged_source_file: the raw partition's file (one);
    `enums`: type name -> its values, what the row rules let through (a value outside them would fail
    the cast: an error, not a loss).
    """
    raw = sqlrun.quote_ident(f"raw_{source}")
    con.execute(f"create type {sqlrun.quote_ident('staged_source_file')} as enum"
                f" (select distinct _source_file from {raw} where _source_file is not null)")
    for name, values in enums.items():
        con.execute(f"create type {sqlrun.quote_ident(name)} as enum (select unnest($values::varchar[]))",
                    {"values": list(values)})
