"""Sample-data generator writing exactly the seed system's incoming format and layout.

Usage::

    python -m devtools.generate START_DATE DAYS [--orders-per-day N] [--events-per-day N]
        [--users N] [--products N] [--seed S] [--out DIR] [--dirty-rate R] [--format {json,ndjson}]
        [--catalog-dir DIR]

Layout under ``--out`` (default ``$ECOMM_DATA_DIR`` or ``data/incoming``):

- ``orders/YYYY-MM-DD/orders.json``: JSON array (``json.dumps(indent=2)`` layout, no trailing
  newline) of ``order_id, user_id, product_id, quantity, price, timestamp, status``;
  with ``--format ndjson`` it is ``orders.ndjson`` instead, one object per line.
- ``events/YYYY-MM-DD/events.csv``: ``event_id,user_id,product_id,event_type,event_ts``,
  unquoted, ``\\n`` line ends, ``product_id`` empty for ``page_view``.
- ``products/products_YYYY-MM-DD.json`` and ``users/users_YYYY-MM-DD.json``: on every Monday and
  on the first generated day (weekly price/category snapshot; users master data).

Data model: product n is ``PROD_%04d`` built on DummyJSON catalog entry (n-1) % 194 (title,
category, brand or null, price), user n is ``USER_%04d`` on users entry (n-1) % 208; without the
catalog directory, synthetic attributes are used. Sessions walk the funnel page_view ->
view_product -> add_to_cart -> checkout -> purchase (continue with p 0.6, 0.35, 0.6, 0.7) with
Zipf product popularity and Zipf user activity, diurnal timestamps; each purchase gets an order
(same user and product, 15 s..4 min later) and the rest of ``--orders-per-day`` are other-channel
orders. Prices follow a weekly random walk from 2020-01-06 (~5% of products change by 5..20% a
week, ~1% change category), a pure function of (seed, week).

Determinism: every day uses ``numpy.random.default_rng([seed, date.toordinal(), stream])`` and
master data depends on the seed only, so a given (seed, date, options) gives byte-identical files
whatever START_DATE and DAYS were.

Dirty rows (``--dirty-rate R``): round(R x rows) rows of each orders/events file are replaced,
cycling through the kinds below in equal shares (none at all when R = 0). "Valid" kinds are
legitimate data a pipeline must accept; the others must be rejected or quarantined.

========================  =======  ======  =====================================================
kind                      orders   events  what the row looks like
========================  =======  ======  =====================================================
null_id                   yes      yes     ``order_id`` null / ``event_id`` empty
null_user_id              yes      yes     ``user_id`` null (JSON) / empty (CSV)
bad_quantity              yes      -       ``quantity`` 0, -1 or -2
negative_price            yes      -       ``price`` < 0
bad_timestamp             yes      yes     timestamp ``not-a-date``
unknown_product           yes      yes     ``product_id`` PROD_9999 (a page_view becomes view_product)
unknown_event_type        -        yes     ``event_type`` ``hover``
uppercase_event_type      -        yes     VALID: ``PAGE_VIEW`` etc., to be normalised to lower case
future_timestamp          yes      yes     timestamp 1..3 days after the file's date
late_record               yes      yes     VALID: timestamp 1..2 days before the file's date
dup_prev_day              yes      yes     id of the previous day's file (``..._YYYYMMDD-1_n``)
dup_exact                 yes      yes     exact copy of another row of the same file
dup_conflict              yes      yes     id of another row of the file, different content (orders: the
                                           same user, product and price; another quantity, status, time)
========================  =======  ======  =====================================================
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from devtools.generate.day import EVENT_KINDS, ORDER_KINDS, inject_dirty, make_events, make_orders
from devtools.generate.master import Master, build_master, load_catalog
from devtools.generate.text import (
    OutputNotWritable,
    enc,
    id_text,
    int_text,
    join,
    price_text,
    quoted,
    timestamp_text,
    write_csv,
    write_json,
)
from pipeline import cli

log = logging.getLogger(__name__)

STATUSES = ["paid", "pending", "cancelled", "refunded"]
EVENT_TYPES = ["page_view", "view_product", "add_to_cart", "checkout", "purchase"]
EVENT_TYPE_TEXT = pa.array(EVENT_TYPES + [t.upper() for t in EVENT_TYPES] + ["hover"], pa.string())
STREAM_EVENTS, STREAM_ORDERS, STREAM_DIRTY_EVENTS, STREAM_DIRTY_ORDERS = 1, 2, 3, 4


def _rng(seed: int, day: dt.date, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), stream])


def _take(table: pa.Array, idx: np.ndarray) -> pa.Array:
    return pc.take(table, pa.array(np.asarray(idx, np.int64)))


def _write_orders(path: Path, day: dt.date, t: dict[str, np.ndarray], master: Master, ndjson: bool) -> None:
    n_u, n_p = master.n_users, master.n_products
    users = pa.concat_arrays([join('"', master.user_ids[:n_u], '"'), pa.array(["null"])])
    columns = {
        "order_id": quoted(id_text("ORD", day, t["id"], t["id_day"], 6), t["id_null"]),
        "user_id": _take(users, t["user"]),
        "product_id": _take(join('"', master.product_ids[: n_p + 1], '"'), t["product"]),
        "quantity": int_text(t["qty"]),
        "price": price_text(t["cents"]),
        "timestamp": quoted(timestamp_text(day, t["ts"], t["ts_bad"])),
        "status": _take(enc(STATUSES), t["status"]),
    }
    write_json(path, columns, ndjson=ndjson)


def _write_events(path: Path, day: dt.date, t: dict[str, np.ndarray], master: Master) -> None:
    columns = {
        "event_id": pc.if_else(pa.array(t["id_null"]), "", id_text("EVT", day, t["id"], t["id_day"], 7)),
        "user_id": _take(master.user_ids, t["user"]),
        "product_id": _take(master.product_ids, t["product"]),
        "event_type": _take(EVENT_TYPE_TEXT, t["etype"]),
        "event_ts": timestamp_text(day, t["ts"], t["ts_bad"]),
    }
    write_csv(path, columns)


def _write_master(out: Path, day: dt.date, master: Master) -> list[Path]:
    cents, cats = master.week_state(day)
    rows = master.product_rows
    products = {
        "product_id": rows["product_id"],
        "product_name": rows["product_name"],
        "category": _take(enc(master.category_names), cats),
        "brand": rows["brand"],
        "current_price": price_text(cents),
    }
    paths = [out / "products" / f"products_{day.isoformat()}.json", out / "users" / f"users_{day.isoformat()}.json"]
    write_json(paths[0], products)
    write_json(paths[1], master.user_rows)
    return paths


def generate(
    start: dt.date,
    days: int,
    out: Path,
    *,
    orders_per_day: int = 2000,
    events_per_day: int = 20000,
    users: int = 5000,
    products: int = 194,
    seed: int = 42,
    dirty_rate: float = 0.0,
    fmt: str = "json",
    catalog_dir: Path | None = None,
    on_day: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Write ``days`` days from ``start`` under ``out``; return per-day row counts and paths.

    ``on_day`` (optional) is called with each day's summary as soon as its files are written.
    """
    if days < 0 or orders_per_day < 0 or events_per_day < 0:
        raise ValueError("days, orders_per_day and events_per_day must be >= 0")
    if users < 1 or products < 1:
        raise ValueError("users and products must be >= 1")
    if not 0.0 <= dirty_rate <= 1.0:
        raise ValueError("dirty_rate must be within [0, 1]")
    if fmt not in ("json", "ndjson"):
        raise ValueError("fmt must be 'json' or 'ndjson'")
    out = Path(out)
    master = build_master(load_catalog(catalog_dir), products, users, seed)
    summary: list[dict[str, Any]] = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        cents, _ = master.week_state(day)
        events = make_events(master, events_per_day, _rng(seed, day, STREAM_EVENTS))
        orders = make_orders(master, orders_per_day, events, cents, _rng(seed, day, STREAM_ORDERS))
        dirty_orders = inject_dirty(orders, ORDER_KINDS, dirty_rate, _rng(seed, day, STREAM_DIRTY_ORDERS), master)
        dirty_events = inject_dirty(events, EVENT_KINDS, dirty_rate, _rng(seed, day, STREAM_DIRTY_EVENTS), master)

        orders_path = out / "orders" / day.isoformat() / f"orders.{fmt}"
        other = orders_path.with_suffix(".ndjson" if fmt == "json" else ".json")
        if other.exists():  # regenerating a day in the other format: keep one orders file per day
            log.info("removing %s (replaced by %s)", other, orders_path.name)
            other.unlink()
        _write_orders(orders_path, day, orders, master, ndjson=fmt == "ndjson")
        events_path = out / "events" / day.isoformat() / "events.csv"
        _write_events(events_path, day, events, master)
        files = [orders_path, events_path]
        if i == 0 or day.weekday() == 0:
            files += _write_master(out, day, master)
        row = {
            "date": day,
            "orders": orders_per_day,
            "events": events_per_day,
            "products": products if len(files) > 2 else 0,
            "users": users if len(files) > 2 else 0,
            "dirty_orders": dirty_orders,
            "dirty_events": dirty_events,
            "files": [str(p) for p in files],
        }
        log.info("%s: %d orders, %d events", day, orders_per_day, events_per_day)
        summary.append(row)
        if on_day is not None:
            on_day(row)
    return summary


def _parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog="python -m devtools.generate", description=__doc__.split("\n\n")[0],
                   epilog="Dirty rows, the data model and determinism: see devtools/generate/__init__.py.")
    p.add_argument("start", type=cli.date_arg, metavar="START_DATE", help="first day, YYYY-MM-DD")
    p.add_argument("days", type=int, metavar="DAYS", help="number of days to write")
    p.add_argument("--orders-per-day", type=int, default=2000, help="orders in each day's file (default: %(default)s)")
    p.add_argument("--events-per-day", type=int, default=20000, help="events in each day's file (default: %(default)s)")
    p.add_argument("--users", type=int, default=5000, help="distinct users, USER_0001 ... (default: %(default)s)")
    p.add_argument("--products", type=int, default=194, help="distinct products, PROD_0001 ... (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="random seed: the same seed and date give the same bytes (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: $ECOMM_DATA_DIR, else data/incoming)")
    p.add_argument("--dirty-rate", type=float, default=0.0,
                   help="fraction of each file's rows made bad, 0.02 = 2 %% (default: %(default)s: none)")
    p.add_argument("--format", choices=["json", "ndjson"], default="json", dest="fmt",
                   help="orders file: a JSON array (orders.json) or one object per line (orders.ndjson) (default: %(default)s)")
    p.add_argument("--catalog-dir", type=Path, default=None,
                   help="folder with DummyJSON products.json/users.json (default: the bundled devtools/generate/dummyjson)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each day as it is written")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = args.out or Path(os.environ.get("ECOMM_DATA_DIR") or "data/incoming")
    began = time.perf_counter()

    def report(row: dict[str, Any]) -> None:
        counts = [row["orders"], row["events"]] + ([row["products"], row["users"]] if row["products"] else [])
        files = ", ".join(f"{path} ({n} rows)" for path, n in zip(row["files"], counts, strict=True))
        dirty = sum(row["dirty_orders"].values()) + sum(row["dirty_events"].values())
        print(f"{row['date']}: {files}" + (f"; {dirty} dirty rows" if dirty else ""), flush=True)

    try:
        summary = generate(args.start, args.days, out, orders_per_day=args.orders_per_day,
                           events_per_day=args.events_per_day, users=args.users, products=args.products,
                           seed=args.seed, dirty_rate=args.dirty_rate, fmt=args.fmt,
                           catalog_dir=args.catalog_dir, on_day=report)
        print(f"total {time.perf_counter() - began:.2f}s for {len(summary)} day(s)", flush=True)
    except ValueError as exc:
        parser.error(str(exc))
    except OutputNotWritable as exc:  # a folder it may not write (another user's, read-only), a file in its place
        given = "--out" if args.out else "ECOMM_DATA_DIR" if os.environ.get("ECOMM_DATA_DIR") else "the default"
        parser.error(f"cannot write {exc.filename or out}: {exc.strerror or exc} (the output folder {out}, from"
                     f" {given}): give --out a folder you may write")
    except BrokenPipeError:  # what reads the report stopped (`| head -1`): stop too, quietly, as a killed writer would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141
    except OSError as exc:  # a catalog it cannot read, a full disk: one line, what it is
        print(f"python -m devtools.generate: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
