"""Publish errors that name the table, the column and the record, mapped back to the lake.

Postgres says little about what failed in a bulk load: a COPY error's context names the stage or
temp table, the line of the COPY and the column; an index error names the index; a unique
violation the key. `Target` is what the publish is writing at the moment (the serving table, the
lake partition feeding it, the DuckDB SELECT whose rows the COPY sends, in order, and the columns
that name a record). `describe` turns an error into
`<table>.<column>, row <n> of lake <partition> (<key> <value>): <what Postgres said>`.
This runs only after an error: nothing is added per row.

A record is named by the serving table's own key: order_id / event_id for the facts, the
dimension's id, and for the audit tables their positional key (source_table with row_number or
line_number), never a value of a rejected record: publish errors reach audit.pipeline_runs, which
BI reads. Postgres's own DETAIL (which may quote a whole row) is left out, except a unique
violation's key. A failure of the server or its resources (a lost connection, a full disk: SQLSTATE
classes 08, 57P, 53) names no table or record: the data is not at fault.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import duckdb
import psycopg

from pipeline import config
from pipeline.lake import sqlrun

logger = logging.getLogger(__name__)

_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (?P<line>\d+)(?:, column (?P<column>[^\s:,]+))?")
_KEY_DETAIL = re.compile(r"^Key \((?P<columns>[^)]*)\)=")
VALUE_CHARS = 60  # a key value longer than this is cut in messages
DISK_FULL = "53100"  # SQLSTATE disk_full: "could not extend file ...: No space left on device", "wrote only ..."


@dataclasses.dataclass
class Target:
    """What is being written: a serving table, and where its rows come from in the lake."""

    table: str  # schema.name in Postgres
    path: str | None = None  # the lake partition file
    select: Callable[[], str] | None = None  # SQL of the COPY's rows in order, with a `_lake_row` column (1-based)
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # its bound parameters
    keys: Sequence[str] = ()  # columns that name a record
    text_columns: Sequence[str] = ()  # candidates when an index row is too large


@dataclasses.dataclass
class Progress:
    """The publish's current target (set before each step that writes)."""

    target: Target | None = None

    def at(self, table: str, **where: Any) -> Target:
        self.target = Target(table, **where)
        return self.target


def _lake_name(path: str) -> str:
    root = config.lake_dir().rstrip("/")
    return path[len(root) + 1:] if path.startswith(root + "/") else path


def _value(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 4] + "...'"


def _first_row(target: Target | None, duck: duckdb.DuckDBPyConnection, condition: str, order: str = "_lake_row",
               params: Mapping[str, Any] | None = None) -> str | None:
    """'row n of lake P (key value, ...)' for the first of the target's rows matching `condition`."""
    if target is None or target.select is None:
        return None
    keys = ", ".join(sqlrun.quote_ident(k) for k in target.keys) or "null"
    query = (f"select _lake_row, {keys} from ({target.select()}) as _rows"
             f" where {condition} order by {order} limit 1")
    row = duck.execute(query, sqlrun.bind(query, {**target.params, **(params or {})})).fetchone()
    if row is None:
        return None
    named = ", ".join(f"{k} {_value(v)}" for k, v in zip(target.keys, row[1:], strict=True))
    where = f"row {row[0]} of lake {_lake_name(target.path)}" if target.path else f"row {row[0]}"
    return f"{where} ({named})" if named else where


def _longest(target: Target | None, duck: duckdb.DuckDBPyConnection) -> tuple[str | None, str | None]:
    """The text column with the longest value among the target's rows, and that row."""
    if target is None or target.select is None or not target.text_columns:
        return None, None
    lengths = ", ".join(f"max(strlen({sqlrun.quote_ident(c)}))" for c in target.text_columns)
    query = f"select {lengths} from ({target.select()}) as _rows"
    found = duck.execute(query, sqlrun.bind(query, dict(target.params))).fetchone()
    column = max(zip(target.text_columns, found, strict=True), key=lambda pair: pair[1] or 0)[0]
    return column, _first_row(target, duck, "true", f"strlen({sqlrun.quote_ident(column)}) desc, _lake_row")


def reason(err: psycopg.Error) -> str:
    """What Postgres said, one line, without DETAIL or CONTEXT (they may quote a whole row)."""
    primary = err.diag.message_primary
    if primary:
        return primary
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def describe(err: psycopg.Error, target: Target | None, duck: duckdb.DuckDBPyConnection | None) -> str:
    """`<table>.<column>, <record>: <reason>` for an error raised while writing `target`."""
    diag = err.diag
    state = diag.sqlstate or ""
    if state == DISK_FULL:  # Postgres's own disk, not the lake's (runbook: Postgres disk full)
        return f"the serving Postgres's disk is full ({reason(err)})"
    if not state or state.startswith(("08", "57P", "53")):
        return reason(err)  # the connection, the server or its resources failed, not a value: no table to blame
    column, record = diag.column_name, None
    try:
        copy = _COPY_CONTEXT.search(diag.context or "")
        if copy and duck is not None:
            column = column or copy["column"]
            record = (_first_row(target, duck, "_lake_row = $_line", params={"_line": int(copy["line"])})
                      or f"line {copy['line']} of the COPY")
        elif state == "23505" and diag.message_detail:
            key = _KEY_DETAIL.match(diag.message_detail)
            column = column or (key["columns"] if key else None)
            record = diag.message_detail.rstrip(".")
        elif state == "23502" and column and duck is not None:
            record = _first_row(target, duck, f"{sqlrun.quote_ident(column)} is null")
        elif state == "54000" and duck is not None:
            longest, record = _longest(target, duck)
            column = column or longest
    except Exception:  # noqa: BLE001 - the diagnosis must never hide the error itself
        logger.debug("could not map the error to a lake row", exc_info=True)
    table = target.table if target is not None else (
        f"{diag.schema_name}.{diag.table_name}" if diag.schema_name and diag.table_name else diag.table_name)
    where = ", ".join(part for part in (
        f"{table}.{column}" if table and column and "," not in table + column else table, record) if part)
    return f"{where}: {reason(err)}" if where else reason(err)
