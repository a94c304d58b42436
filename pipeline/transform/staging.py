"""Staging: one raw partition becomes typed, validated staging rows, quarantined rows and a reconciliation.

For a source and load date, `stage()` reads the raw partition through `sql/staging/int_<source>_checked.sql`
(every raw row typed, with the first row rule it breaks, `_row_reason_code`, and the standard columns the
shared models read: `_record_id`, `_raw_record`, `_version_ts`, `_failing_value`) without ever holding
the day's rows: a table of them outgrew [duckdb] memory_limit on big days and spilled to disk. It keeps:

- `int_flagged` (temp table, `sql/staging/int_flagged.sql`): the few checked rows whose outcome is more
  than their row rules: those a rule quarantines and those whose id is missing or repeated;
- `int_duplicates` (temp table, `sql/staging/int_duplicates.sql`, over int_flagged): the rows duplicate
  resolution drops, then marked on int_flagged in place (`staging_passes.mark_dropped_rows`);
- `int_validated` (temp view, `sql/staging/int_validated.sql`, over int_flagged): those rows with their
  outcome, `_reason_code` (NULL = staged) and `_is_duplicate`, which quarantine and counts read.

It then writes, in this order:

1. `audit/bad_records/load_date=D/source_table=stg_<source>`: the quarantined rows, with reason_code,
   a human message, the failing value and the raw record (`sql/staging/bad_records.sql`);
2. `staging/stg_<source>/load_date=D` (under a temporary name): the valid rows
   (`sql/staging/stg_<source>.sql` over int_validated over `sql/staging/int_kept.sql`: the checked
   rows streamed again from the raw partition, less the ones int_flagged's outcomes do not stage,
   looked up in a bitstring, so the row rules are not checked twice), in one pass in source-file
   order, so a rerun writes the same file;
3. `audit/reconciliation/load_date=D/source_table=stg_<source>`: the file's records = raw +
   rejected at landing, and raw = staged (as written) + quarantined + duplicates
   (`sql/staging/reconciliation.sql`); when either does not hold, ReconciliationError is raised
   after the record is written and nothing is staged;
4. the staging partition is moved into place, last, because it is the task's completion marker.

Rows are handled in three steps:

- Exact duplicates (identical in every source field; lineage columns aside: for orders and catalogs
  the JSON object's top-level fields in any key order, whitespace normalised, for events every CSV
  column) collapse to the first row in the file; the others are counted as duplicates, not quarantined.
- Row rules, checked in the order of REASON_CODES (the first failure is the row's reason).
- Same id, different content (among rows that pass the rules): one row is kept, deterministically:
  for orders and events the latest timestamp, then the highest `_row_number` (the later line of
  the file); for catalogs the highest `_row_number`. The others are quarantined, their message
  naming the kept row: as duplicate_id_conflict, or for an order line with another product_id as
  multiple_order_lines (the grain is one row per order: fact_orders has one line per order).

Parsing is strict and the same for every source (`sql/staging/macros.sql`); what is not a clean value
of its type is quarantined, never guessed at. Normalisations (documented rules, not failures):
- text is trimmed of Unicode whitespace at both ends (space, tab, CR, LF, VT, FF, U+0085, U+00A0,
  U+1680, U+2000-U+200B, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF) and empty text is NULL;
- ids are text in Unicode NFC; in JSON a string or an integer (515151 and "515151" are one id); a user or
  product id of digits alone is the catalog's numeric id in every source (89 -> PROD_0089, as the API's);
- numbers: sign, digits, optional fraction, optional exponent ('10', '10.0', '1e1', '.5');
  quantities are whole numbers; prices have at most 2 decimals and become DECIMAL(18,2); a zero
  price is valid (free items);
- event types and order statuses are lower-cased; timestamps are ISO 8601 / RFC 3339 with a time
  ('2025-12-14T17:30:00', '2025-12-14 17:30', '...:00.250', 't'/'z' in either case; a date alone is not
  one), an optional offset ('Z', '+01', '+0100', '+01:00'; at most 14:00), or epoch seconds (9-10 digits)
  or milliseconds (13); without an offset, a wall-clock time in [model] business_timezone (default UTC).
Timestamps are stored as naive UTC TIMESTAMPs. Late rows (an earlier day within [model] late_window_days)
are valid and staged. audit/bad_records holds any quarantined value: a NUL character
(which Postgres text rejects) is written as the six characters \\u0000.

The load date's boundaries are those of the business day ([model] business_timezone): a timestamp
after its end plus [model] future_tolerance_hours is future_timestamp, unless the date it was
written with (in its own offset, or the business zone) is the load date or earlier; one before the
start of the day [model] late_window_days earlier is ancient_timestamp; for a cancelled or refunded order (a
re-delivered status change: refunds come weeks later) the day [model] status_change_window_days earlier.

Reason codes (REASON_CODES; checked in this order, per source):
- orders: duplicate_json_key, missing_order_id, invalid_order_id, missing_user_id, invalid_user_id,
  missing_product_id, invalid_product_id, invalid_quantity, non_positive_quantity, invalid_price,
  negative_price, revenue_out_of_range, invalid_timestamp, future_timestamp, ancient_timestamp,
  invalid_status, then duplicate_id_conflict / multiple_order_lines
- events: missing_event_id, invalid_event_id, missing_user_id, invalid_user_id, unknown_event_type,
  missing_product_id (every type but page_view needs a product), invalid_product_id,
  invalid_timestamp, future_timestamp, ancient_timestamp, then duplicate_id_conflict
- products: duplicate_json_key, missing_product_id, invalid_product_id, invalid_text, invalid_price,
  negative_price, then duplicate_id_conflict
- users: duplicate_json_key, missing_user_id, invalid_user_id, invalid_text, then duplicate_id_conflict
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import config, lake
from pipeline.ingest import incoming
from pipeline.lake import sqlrun
from pipeline.transform import staging_passes
from pipeline.transform.staging_schemas import STAGING_SCHEMAS  # noqa: F401 - re-exported
from pipeline.transform.reconciliation import (  # noqa: F401 - ReconciliationError re-exported
    ReconciliationError,
    landing_counts,
    reconcile,
)

logger = logging.getLogger(__name__)

SOURCES = incoming.SOURCES
CATALOGS = incoming.CATALOG_SOURCES  # weekly snapshots: a date without one has nothing to stage
DAILY_SOURCES = incoming.DAILY_SOURCES

# The largest revenue of one order line. The marts and daily_metrics sum lines as DECIMAL(18,2) (below
# 10^16): one line just under that passed staging and then failed the date's marts, and broke every lake
# query over the facts, with an out-of-range cast. At 10^10 a million lines at the limit still fit.
MAX_LINE_REVENUE = 10_000_000_000

# ancient_timestamp's text: with the configured days in a quarantine message (`reason_descriptions`), without here
ANCIENT = ("timestamp is before 1970-01-01 or before the late window ([model] late_window_days{late}; a cancelled or"
           " refunded order: status_change_window_days{status_change}) before the load date")
REASON_CODES: dict[str, str] = {
    "duplicate_json_key": "the JSON object has this key twice, so which value is meant is unknown",
    "missing_order_id": "order_id is missing or empty",
    "invalid_order_id": (
        "order_id is not an id: not a JSON string or integer (a number with a fraction or an exponent, "
        "an object, an array, a boolean), or it holds a control or invisible character (NUL, tab, U+200B) "
        "or is longer than [model] max_id_length"
    ),
    "missing_event_id": "event_id is missing or empty",
    "invalid_event_id": (
        "event_id is not an id: it holds a control or invisible character (NUL, tab, U+200B) or is longer "
        "than [model] max_id_length"
    ),
    "missing_user_id": "user_id is missing or empty",
    "invalid_user_id": (
        "user_id is not an id: not a JSON string or integer (or a catalog API id that is not a whole number), "
        "or it holds a control or invisible character (NUL, tab, U+200B) or is longer than [model] max_id_length"
    ),
    "missing_product_id": (
        "product_id is missing or empty (orders, products, and every event type except page_view need one)"
    ),
    "invalid_product_id": (
        "product_id is not an id: not a JSON string or integer (or a catalog API id that is not a whole number), "
        "or it holds a control or invisible character (NUL, tab, U+200B) or is longer than [model] max_id_length"
    ),
    "invalid_quantity": (
        "quantity is not a whole number within INTEGER range (e.g. 'three', 10.5, 1e12, '1_000', '1,000')"
    ),
    "non_positive_quantity": "quantity is zero or negative",
    "invalid_price": (
        "price is missing, not a plain number (e.g. '1_999.00', '1,999.00', 'inf'), has more than 2 "
        "decimals or exceeds DECIMAL(18,2)"
    ),
    "negative_price": "price is below zero",
    "revenue_out_of_range": (
        f"quantity x price is above {MAX_LINE_REVENUE:,}.00 (MAX_LINE_REVENUE: a million such lines still sum"
        " within the DECIMAL(18,2) of the marts and daily_metrics)"
    ),
    "invalid_timestamp": (
        "timestamp is missing or not ISO 8601 with a time of day (offset at most +-14:00; hours 00-23) nor epoch "
        "seconds or milliseconds"
    ),
    "future_timestamp": (
        "timestamp is after the end of the load date (business time zone) plus the future tolerance (2 h by "
        "default), and was written with a later date"
    ),
    "ancient_timestamp": ANCIENT.format(late="", status_change=""),
    "invalid_status": "order status is missing or not one of paid, cancelled, refunded, pending",
    "unknown_event_type": (
        "event type is missing or not one of page_view, view_product, add_to_cart, checkout, purchase"
    ),
    "invalid_text": (
        "a catalog text field is a JSON object, array, boolean or number (not text), or holds a NUL (Postgres text "
        "cannot) or another control character (it would act on the terminal of whoever reads it), the product's name "
        "is missing or empty, or the category is longer than [model] max_id_length (it is indexed)"
    ),
    "duplicate_id_conflict": "another row with the same id and different content was kept for this load date",
    "multiple_order_lines": (
        "another line of this order (another product_id) was kept: fact_orders holds one row per order"
    ),
}

ORDER_STATUSES = ["paid", "cancelled", "refunded", "pending"]
# Statuses an order reaches after it was placed: a row with one re-delivers an earlier order (status_change_window_days)
STATUS_CHANGE_STATUSES = ["cancelled", "refunded"]
EVENT_TYPES = ["page_view", "view_product", "add_to_cart", "checkout", "purchase"]
# The ENUM types the staging models (sql/staging/stg_<source>.sql) cast their few-valued columns to.
STAGED_ENUMS = {"staged_event_type": EVENT_TYPES, "staged_order_status": ORDER_STATUSES}

# Postgres refuses a btree index row over ~2,704 bytes; a UTF-8 character takes up to 4.
MAX_ID_LENGTH_LIMIT = 512
# The largest offset a timestamp may carry (UTC-14:00 .. UTC+14:00).
MAX_OFFSET = dt.timedelta(hours=14)


class SettingInvalid(config.BadSetting):
    """A [model] setting has a value staging cannot use (a BadSetting: refused before a run, in one line)."""


class RawPartitionMissing(Exception):
    """The raw partition a staging run reads has not been landed."""


def staging_table(source: str) -> str:
    """The staging table of a source: `stg_<source>`."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    return f"stg_{source}"


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the staging macros (`sql/staging/macros.sql`) on a connection, and the raw ones they build on."""
    con.execute(sqlrun.sql_text("raw", "macros"))
    con.execute(sqlrun.sql_text("staging", "macros"))


@functools.lru_cache(maxsize=16)
def _known_timezone(name: str) -> bool:
    if name == "UTC":  # the default, in every zone list: no connection on the command's path to its first task
        return True
    with duckdb.connect() as con:  # ICU's zone list: the one the SQL converts with
        return con.execute("select count(*) from pg_timezone_names() where name = $n", {"n": name}).fetchone()[0] > 0


def business_timezone() -> str:
    """[model] business_timezone, checked to be a time zone name DuckDB knows (it also reaches check SQL)."""
    name = str(config.model().business_timezone).strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-/]*", name) or not _known_timezone(name):
        raise SettingInvalid(
            f"[model] business_timezone = {name!r} is not an IANA time zone name; set it in luigi.cfg to one"
            " such as UTC, Europe/Berlin or America/New_York"
        )
    return name


def max_id_length() -> int:
    """[model] max_id_length, checked to keep any id under Postgres's index row limit."""
    value = int(config.model().max_id_length)
    if not 1 <= value <= MAX_ID_LENGTH_LIMIT:
        raise SettingInvalid(
            f"[model] max_id_length = {value} must be between 1 and {MAX_ID_LENGTH_LIMIT} (characters of up to"
            " 4 bytes; Postgres cannot index a key over ~2,700 bytes); fix it in luigi.cfg"
        )
    return value


def sold_statuses() -> list[str]:
    """[model] sold_statuses, checked: one or more order statuses staging knows (a typo would zero net revenue)."""
    statuses = config.sold_statuses()
    unknown = [status for status in statuses if status not in ORDER_STATUSES]
    if not statuses or unknown:
        raise SettingInvalid(
            f"[model] sold_statuses = {config.model().sold_statuses!r} must list one or more of"
            f" {', '.join(ORDER_STATUSES)} (comma separated){'; unknown: ' + ', '.join(unknown) if unknown else ''};"
            " fix it in luigi.cfg"
        )
    return statuses


def _windows() -> dict[str, int]:
    settings = config.model()
    values = {name: int(getattr(settings, name))
              for name in ("future_tolerance_hours", "late_window_days", "status_change_window_days")}
    for name, value in values.items():
        if value < 0:
            raise SettingInvalid(f"[model] {name} = {value} must be 0 or more; fix it in luigi.cfg")
    if values["status_change_window_days"] < values["late_window_days"]:
        raise SettingInvalid(
            f"[model] status_change_window_days = {values['status_change_window_days']} must be at least"
            f" late_window_days ({values['late_window_days']}); fix it in luigi.cfg")
    return values


def hours_and_days() -> tuple[int, int]:
    """[model] future_tolerance_hours and late_window_days, not negative (status_change_window_days checked too)."""
    return tuple(map(_windows().get, ("future_tolerance_hours", "late_window_days")))


def reason_descriptions() -> dict[str, str]:
    """REASON_CODES as a quarantine message states them: the windows as configured."""
    windows = _windows()
    return {**REASON_CODES, "ancient_timestamp": ANCIENT.format(
        late=f", {windows['late_window_days']}", status_change=f", {windows['status_change_window_days']}")}


def business_day_start(day: dt.date, timezone: str | None = None) -> dt.datetime:
    """The naive UTC instant at which `day` begins in the business time zone."""
    timezone = timezone or business_timezone()
    midnight = dt.datetime.combine(day, dt.time())
    if timezone == "UTC":
        return midnight
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute("select timezone($tz, $ts::timestamp)::timestamp", {"tz": timezone, "ts": midnight}).fetchone()[0]


def timestamp_limits(load_date: dt.date) -> dict[str, dt.datetime]:
    """The UTC instants that bound a load date's timestamps (naive UTC, as staged).

    - future_limit_ts: the end of the business day plus [model] future_tolerance_hours; later is
      future_timestamp, unless the timestamp was written with the load date or an earlier one;
    - latest_accepted_ts: the latest instant staging can accept at all, for the quality gate: the
      later of future_limit_ts and the end of the load date at UTC-14:00 (the westernmost offset);
    - ancient_limit_ts: the start of the business day [model] late_window_days before the load date;
    - status_change_limit_ts: the same for a cancelled or refunded order, [model] status_change_window_days
      before it (never later than ancient_limit_ts: a narrower window is refused).
    """
    tolerance_hours, late_window_days, status_change_days = map(_windows().get, (
        "future_tolerance_hours", "late_window_days", "status_change_window_days"))
    timezone = business_timezone()
    future_limit = business_day_start(load_date + dt.timedelta(days=1), timezone) + dt.timedelta(
        hours=tolerance_hours)
    own_day_end = dt.datetime.combine(load_date + dt.timedelta(days=1), dt.time()) + MAX_OFFSET
    return {
        "future_limit_ts": future_limit,
        "latest_accepted_ts": max(future_limit, own_day_end),
        "ancient_limit_ts": business_day_start(
            load_date - dt.timedelta(days=late_window_days), timezone),
        "status_change_limit_ts": business_day_start(
            load_date - dt.timedelta(days=status_change_days), timezone),
    }


def model_params(load_date: dt.date, source_table: str) -> dict[str, Any]:
    """The bound parameters of the staging models."""
    return {
        "load_date": load_date,
        "source_table": source_table,
        "business_timezone": business_timezone(),
        **timestamp_limits(load_date),  # the SQL binds those it names
        "status_change_statuses": STATUS_CHANGE_STATUSES,
        "max_id_length": max_id_length(),
        "max_line_revenue": MAX_LINE_REVENUE,
        "order_statuses": ORDER_STATUSES,
        "event_types": EVENT_TYPES,
    }


def _create_temp(con: duckdb.DuckDBPyConnection, kind: str, model: str, params: dict[str, Any]) -> None:
    """Create `sql/staging/<model>.sql` as a temp table or view of the same name."""
    sql = sqlrun.sql_text("staging", model)
    if kind == "view":  # a view cannot hold bound parameters: the shared models take none
        con.execute(f"create temp view {sqlrun.quote_ident(model)} as {sql}")
    else:
        con.execute(f"create temp table {sqlrun.quote_ident(model)} as {sql}", sqlrun.bind(sql, params))


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> int:
    return con.execute(f"select count(*) from ({sql})", sqlrun.bind(sql, params or {})).fetchone()[0]


def stage(source: str, load_date: dt.date) -> dict[str, Any] | None:
    """Stage one source's raw partition of a date; return its counts (None: no catalog snapshot that day)."""
    table = staging_table(source)
    load_date = lake.parse_date(load_date)
    raw_file = lake.partition_file("raw", source, load_date)
    if not lake.exists(raw_file):
        if source in CATALOGS:
            logger.info("no raw %s snapshot for %s: nothing to stage", source, load_date)
            return None
        raise RawPartitionMissing(f"raw/{source} for {load_date} is not landed ({raw_file}); land it first")
    params = model_params(load_date, table)
    checked_sql = sqlrun.sql_text("staging", f"int_{source}_checked")
    with sqlrun.connect() as con:
        define_macros(con)
        sqlrun.register_parquet(con, f"raw_{source}", raw_file)
        descriptions = reason_descriptions()
        con.register("reason_codes", pa.table({  # typed: inferring a list's type imports pandas
            "reason_code": pa.array(list(descriptions), pa.string()),
            "description": pa.array(list(descriptions.values()), pa.string()),
        }))
        # the one table staging keeps: the few rows whose outcome is more than their row rules
        flagged_sql = staging_passes.reading_from(
            {"checked_records": checked_sql}, sqlrun.sql_text("staging", "int_flagged"))
        con.execute(f"create temp table int_flagged as {flagged_sql}", sqlrun.bind(flagged_sql, params))
        con.execute("create temp view checked_records as select * from int_flagged")
        _create_temp(con, "table", "int_duplicates", params)
        staging_passes.mark_dropped_rows(con, "int_flagged")
        _create_temp(con, "view", "int_validated", params)
        counts = {
            "raw_count": _count(con, f"select * from {sqlrun.quote_ident('raw_' + source)}"),
            "quarantined_count": sqlrun.run_model(
                con, "staging", "bad_records", params,
                lake.partition_file("audit", "bad_records", load_date, source_table=table),
            ),
            "duplicate_count": _count(con, "select * from int_validated where _is_duplicate"),
        }
        counts.update(landing_counts(con, source, load_date, counts["raw_count"]))
        records: list[dict[str, Any]] = []

        def reconcile_staged(staged_count: int) -> None:
            # the staged rows are counted as written; the record is written (and checked) before the
            # partition is moved into place, so an unbalanced day stages nothing
            counts["staged_count"] = staged_count
            records.append(reconcile(con, table, load_date, counts))

        staging_passes.create_staged_types(con, source, STAGED_ENUMS)
        stg_sql = staging_passes.staging_pass(checked_sql, table)
        sqlrun.copy_to_partition(
            con, stg_sql, {**params, "unstaged_rows": staging_passes.unstaged_rows(con, source)},
            lake.partition_file("staging", table, load_date), check=reconcile_staged,
        )
        record = records[0]
    logger.info(
        "staged %s %s: %s raw, %s staged, %s quarantined, %s duplicates", table, load_date,
        counts["raw_count"], counts["staged_count"], counts["quarantined_count"], counts["duplicate_count"],
    )
    return {"source_table": table, "load_date": load_date, **record}
