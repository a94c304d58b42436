"""The unknown-product checks' messages: which products a date's order lines or events name that the catalog lacks.

checks/warehouse/fact_orders.yml and fact_events.yml measure the share of rows whose product the catalog snapshot
covering the date does not list (`unknown_product_pct`; the attribute `figure: unknown_product` marks them). Soda's
message says only the share; `explain` puts the counts and a few of the products (the most named first:
sql/gate/unknown_products.sql) into it, as the unknown-user checks do (pipeline.quality.gate_views), so that an
operator sees at once whether the catalog is short or the file names products wrongly.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.lake import sqlrun
from pipeline.quality.results import CheckResult, described
from pipeline.quality.soda import format_number
from pipeline.transform import staging_passes, warehouse

FIGURE = "unknown_product"
ROWS = {"fact_orders": "order lines", "fact_events": "events with a product"}


def covering_snapshot(day: dt.date) -> str | None:
    """The date of the products snapshot the warehouse models read for `day` (the latest on or before it), or
    None: there is none, or one is landed but not staged (then the gate's other checks say so)."""
    try:
        files = warehouse.input_files(warehouse.lake_input("stg_products_snapshot"), day)
    except warehouse.InputPartitionMissing:
        return None
    dates = [part.split("=", 1)[1] for path in files for part in path.replace("\\", "/").split("/")
             if part.startswith("load_date=")]
    return max(dates) if dates else None


def explain(con: Any, result: CheckResult, day: str, *, covered: bool = True,
            snapshot: str | None = None) -> CheckResult | None:
    """An unknown-product share's message with its counts and examples (None: not such a check, or it passed or
    errored, so its message stays Soda's). `con` has the date's fact table as a view of its name; `covered`:
    whether a products snapshot covers the date (dim_product has a catalog member), `snapshot` its date."""
    attributes = result.attributes or {}
    fact = attributes.get("fact_table")
    if attributes.get("figure") != FIGURE or fact not in ROWS or result.outcome not in ("warn", "fail"):
        return None
    sql = staging_passes.reading_from({"fact_rows": f"select * from {sqlrun.quote_ident(fact)}"},
                                      sqlrun.sql_text("gate", "unknown_products"))
    rows, unknown_rows, products, examples = con.execute(sql).fetchone()
    more = ", ..." if products > len(examples) else ""
    share = format_number(round(100.0 * unknown_rows / rows, 2)) if rows else "0"
    named = (f"{products:,} product{'s' if products != 1 else ''}"
             f"{': ' + ', '.join(examples) + more if examples else ''}")
    counted = f"{fact}: {unknown_rows:,} of the {rows:,} {ROWS[fact]} of {day}"
    if not covered:
        detail = (f"{counted} name a product no products snapshot lists: there is none on or before {day}, so every"
                  f" product is unknown and the share cannot block the date ({named})")
    else:
        which = f"of {snapshot} (the latest on or before {day})" if snapshot else f"covering {day}"
        detail = f"{counted} name a product that the products snapshot {which} does not list: {share} % ({named})"
    return described(result, detail, attributes.get("advice"))
