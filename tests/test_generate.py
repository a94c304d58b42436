"""Tests for the sample-data generator (devtools.generate): real files in tmp_path, small volumes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from devtools import generate as gen
from devtools.generate.day import EVENT_KINDS, ORDER_KINDS
from tests.support import tmpfs
from tests.support.paths import REPO

SEED_DIR = REPO / "tests" / "fixtures" / "seed-format" / "incoming"
CATALOG = REPO / "devtools" / "generate" / "dummyjson"
FIXTURE_DAY = "2025-12-14"
ORDER_KEYS = ["order_id", "user_id", "product_id", "quantity", "price", "timestamp", "status"]
PRODUCT_KEYS = ["product_id", "product_name", "category", "brand", "current_price"]
USER_KEYS = ["user_id", "first_name", "last_name", "email", "city", "country", "signup_date"]
EVENT_HEADER = "event_id,user_id,product_id,event_type,event_ts"
FUNNEL = ["page_view", "view_product", "add_to_cart", "checkout", "purchase"]
STATUSES = {"paid", "cancelled", "refunded", "pending"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
SMALL = dict(orders_per_day=300, events_per_day=3000, users=400, products=250)


def run(out: Path, start: str = "2025-12-14", days: int = 1, **kw) -> list[dict]:
    opts = {**SMALL, **kw}
    return gen.generate(dt.date.fromisoformat(start), days, out, **opts)


def orders(out: Path, day: str) -> list[dict]:
    return json.loads((out / "orders" / day / "orders.json").read_text())


def events(out: Path, day: str) -> list[dict]:
    with open(out / "events" / day / "events.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def secs(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


# --- format --------------------------------------------------------------------------------------
def test_orders_match_seed_format(tmp_path: Path) -> None:
    run(tmp_path)
    fixture = (SEED_DIR / "orders" / FIXTURE_DAY / "orders.json").read_text()
    text = (tmp_path / "orders" / FIXTURE_DAY / "orders.json").read_text()
    # the seed file is json.dumps(indent=2) output without a trailing newline; so is ours
    assert json.dumps(json.loads(fixture), indent=2) == fixture
    assert json.dumps(json.loads(text), indent=2) == text
    rows = json.loads(text)
    assert [list(r) for r in rows] == [ORDER_KEYS] * len(rows) == [list(r) for r in json.loads(fixture)][:1] * len(rows)
    assert len(rows) == SMALL["orders_per_day"]
    assert len({r["order_id"] for r in rows}) == len(rows)
    for r in rows:
        assert re.fullmatch(r"ORD_20251214_\d{6}", r["order_id"])
        assert re.fullmatch(r"USER_\d{4}", r["user_id"]) and re.fullmatch(r"PROD_\d{4}", r["product_id"])
        assert isinstance(r["quantity"], int) and 1 <= r["quantity"] <= 5
        assert isinstance(r["price"], float) and r["price"] > 0 and round(r["price"], 2) == r["price"]
        assert TS.match(r["timestamp"]) and r["timestamp"].startswith(FIXTURE_DAY)
        assert r["status"] in STATUSES


def test_events_match_seed_format(tmp_path: Path) -> None:
    run(tmp_path)
    fixture = (SEED_DIR / "events" / FIXTURE_DAY / "events.csv").read_bytes()
    data = (tmp_path / "events" / FIXTURE_DAY / "events.csv").read_bytes()
    assert data.split(b"\n", 1)[0] == fixture.split(b"\n", 1)[0] == EVENT_HEADER.encode()
    assert b"\r" not in data and b'"' not in data
    assert data.endswith(b"\n") == fixture.endswith(b"\n")  # same end-of-file convention
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert len(rows) == 1 + SMALL["events_per_day"] and all(len(r) == 5 for r in rows)
    assert len({r[0] for r in rows[1:]}) == len(rows) - 1
    for eid, user, product, etype, ts in rows[1:]:
        assert re.fullmatch(r"EVT_20251214_\d{7}", eid) and re.fullmatch(r"USER_\d{4}", user)
        assert etype in FUNNEL
        assert (product == "") == (etype == "page_view")
        assert product == "" or re.fullmatch(r"PROD_\d{4}", product)
        assert TS.match(ts) and ts.startswith(FIXTURE_DAY)


def test_products_and_users_files(tmp_path: Path) -> None:
    run(tmp_path, products=200, users=210)
    fixture = json.loads((SEED_DIR / "products" / "products_2025-12-15.json").read_text())
    text = (tmp_path / "products" / "products_2025-12-14.json").read_text()
    assert json.dumps(json.loads(text), indent=2) == text
    products = json.loads(text)
    assert [list(p) for p in products] == [list(fixture[0])] * 200 == [PRODUCT_KEYS] * 200
    assert [p["product_id"] for p in products] == [f"PROD_{i:04d}" for i in range(1, 201)]
    catalog = json.loads((CATALOG / "products.json").read_text())
    assert products[0]["product_name"] == catalog[0]["title"]
    assert products[194]["product_name"] == catalog[0]["title"] + " #2"
    assert products[199]["product_name"] == catalog[5]["title"] + " #2"
    no_brand = [i for i, c in enumerate(catalog) if "brand" not in c]
    assert no_brand and all(products[i]["brand"] is None for i in no_brand)
    assert all(p["brand"] == c.get("brand") for p, c in zip(products[:194], catalog, strict=True))
    assert all(isinstance(p["current_price"], float) and p["current_price"] > 0 for p in products)
    users = json.loads((tmp_path / "users" / "users_2025-12-14.json").read_text())
    raw = json.loads((CATALOG / "users.json").read_text())
    assert [list(u) for u in users] == [USER_KEYS] * 210
    assert users[0]["first_name"] == raw[0]["firstName"] and users[0]["city"] == raw[0]["address"]["city"]
    assert users[208]["last_name"] == raw[0]["lastName"]
    assert len({u["email"] for u in users}) == 210
    assert all(dt.date.fromisoformat(u["signup_date"]) < dt.date(2025, 1, 1) for u in users)


def test_synthetic_fallback_without_catalog(tmp_path: Path) -> None:
    run(tmp_path / "out", products=20, users=30, catalog_dir=tmp_path / "missing")
    products = json.loads((tmp_path / "out" / "products" / "products_2025-12-14.json").read_text())
    assert [list(p) for p in products] == [PRODUCT_KEYS] * 20
    assert re.fullmatch(r"PROD_0001 - \w+", products[0]["product_name"])
    assert all(re.fullmatch(r"Brand[A-E]", p["brand"]) for p in products)
    assert len({p["category"] for p in products}) > 2
    assert len(orders(tmp_path / "out", "2025-12-14")) == SMALL["orders_per_day"]


def test_ndjson_format(tmp_path: Path) -> None:
    run(tmp_path / "a", fmt="json")
    run(tmp_path / "b", fmt="ndjson")
    text = (tmp_path / "b" / "orders" / FIXTURE_DAY / "orders.ndjson").read_text()
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == SMALL["orders_per_day"] + 1
    assert all(json.dumps(json.loads(line)) == line for line in lines[:-1])  # one compact object a line
    assert [json.loads(line) for line in lines[:-1]] == orders(tmp_path / "a", FIXTURE_DAY)
    assert not (tmp_path / "b" / "orders" / FIXTURE_DAY / "orders.json").exists()
    run(tmp_path / "b", fmt="json")  # switching format leaves one orders file for the day
    assert sorted(os.listdir(tmp_path / "b" / "orders" / FIXTURE_DAY)) == ["orders.json"]


# --- layout and determinism ------------------------------------------------------------------------
def test_master_files_on_mondays_and_first_day(tmp_path: Path) -> None:
    summary = run(tmp_path, start="2025-12-10", days=14, orders_per_day=10, events_per_day=50)
    assert [r["date"] for r in summary] == [dt.date(2025, 12, 10) + dt.timedelta(days=i) for i in range(14)]
    expected = ["2025-12-10", "2025-12-15", "2025-12-22"]
    assert sorted(os.listdir(tmp_path / "products")) == [f"products_{d}.json" for d in expected]
    assert sorted(os.listdir(tmp_path / "users")) == [f"users_{d}.json" for d in expected]
    assert len(os.listdir(tmp_path / "orders")) == len(os.listdir(tmp_path / "events")) == 14
    assert [r["products"] > 0 for r in summary] == [str(r["date"]) in expected for r in summary]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("dirty", [0.0, 0.1])
def test_byte_identical_across_windows(tmp_path: Path, dirty: float) -> None:
    run(tmp_path / "a", start="2025-12-12", days=5, dirty_rate=dirty)
    run(tmp_path / "b", start="2025-12-15", days=2, dirty_rate=dirty)
    for day in ("2025-12-15", "2025-12-16"):
        for rel in (f"orders/{day}/orders.json", f"events/{day}/events.csv"):
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    for rel in ("products/products_2025-12-15.json", "users/users_2025-12-15.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    run(tmp_path / "c", start="2025-12-15", days=1, dirty_rate=dirty, seed=7)
    rel = "orders/2025-12-15/orders.json"
    assert (tmp_path / "c" / rel).read_bytes() != (tmp_path / "a" / rel).read_bytes()


def test_weekly_prices_change_a_little_and_orders_use_them(tmp_path: Path) -> None:
    run(tmp_path, start="2025-11-03", days=29, orders_per_day=60, events_per_day=200, products=300)
    mondays = sorted(os.listdir(tmp_path / "products"))
    snaps = [json.loads((tmp_path / "products" / m).read_text()) for m in mondays]
    price_changes, category_changes = 0, 0
    for prev, cur in zip(snaps, snaps[1:], strict=False):
        for a, b in zip(prev, cur, strict=True):
            assert (a["product_name"], a["brand"]) == (b["product_name"], b["brand"])
            if a["current_price"] != b["current_price"]:
                price_changes += 1
                assert 0.04 <= abs(b["current_price"] / a["current_price"] - 1) <= 0.21
            category_changes += a["category"] != b["category"]
    weeks = len(snaps) - 1
    assert 0.02 * 300 * weeks <= price_changes <= 0.09 * 300 * weeks
    assert category_changes <= 0.04 * 300 * weeks
    # a week's price is the same wherever it is looked up: an order on Thursday uses Monday's price
    monday = {p["product_id"]: p["current_price"] for p in snaps[1]}
    day = dt.date.fromisoformat(mondays[1][9:19]) + dt.timedelta(days=3)
    assert all(o["price"] == monday[o["product_id"]] for o in orders(tmp_path, day.isoformat()))


@pytest.mark.parametrize("catalog_dir", [None, "missing"])
def test_product_attributes_do_not_depend_on_product_count(tmp_path: Path, catalog_dir: str | None) -> None:
    where = None if catalog_dir is None else tmp_path / catalog_dir
    run(tmp_path / "a", start="2025-12-15", products=40, orders_per_day=5, events_per_day=20, catalog_dir=where)
    run(tmp_path / "b", start="2025-12-15", products=400, orders_per_day=5, events_per_day=20, catalog_dir=where)
    rel = "products/products_2025-12-15.json"
    small, big = (json.loads((tmp_path / x / rel).read_text()) for x in "ab")
    assert small == big[:40]


# --- realism ---------------------------------------------------------------------------------------
def test_funnel_sessions_and_purchase_orders(tmp_path: Path) -> None:
    run(tmp_path, orders_per_day=600, events_per_day=6000)
    evs = events(tmp_path, FIXTURE_DAY)
    counts = Counter(e["event_type"] for e in evs)
    assert [counts[t] for t in FUNNEL] == sorted((counts[t] for t in FUNNEL), reverse=True)
    assert len(set(counts.values())) == 5 and counts["purchase"] > 0  # strictly decreasing
    assert [e["event_ts"] for e in evs] == sorted(e["event_ts"] for e in evs)
    # every non-page_view event continues an earlier step of the same user (and product)
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    pv_users: set[str] = set()
    for e in evs:
        step = FUNNEL.index(e["event_type"])
        if step == 0:
            pv_users.add(e["user_id"])
        elif step == 1:
            assert e["user_id"] in pv_users
        else:
            assert FUNNEL[step - 1] in seen[(e["user_id"], e["product_id"])]
        seen[(e["user_id"], e["product_id"])].add(e["event_type"])
    ords = orders(tmp_path, FIXTURE_DAY)
    assert len(ords) >= counts["purchase"]
    by_key: dict[tuple[str, str], list[float]] = defaultdict(list)
    for o in ords:
        by_key[(o["user_id"], o["product_id"])].append(secs(o["timestamp"]))
    for e in (e for e in evs if e["event_type"] == "purchase"):
        t = secs(e["event_ts"])
        assert any(0 <= o - t <= 300 for o in by_key[(e["user_id"], e["product_id"])]), e


def test_fewer_orders_than_purchases_all_map(tmp_path: Path) -> None:
    run(tmp_path, orders_per_day=20, events_per_day=3000)
    evs = events(tmp_path, FIXTURE_DAY)
    purchases = {(e["user_id"], e["product_id"]) for e in evs if e["event_type"] == "purchase"}
    assert len(purchases) > 20
    assert all((o["user_id"], o["product_id"]) in purchases for o in orders(tmp_path, FIXTURE_DAY))


def test_popularity_returning_users_mix_and_diurnal_shape(tmp_path: Path) -> None:
    run(tmp_path, start="2025-12-01", days=5, orders_per_day=1000, events_per_day=2000, users=2000, products=194)
    ords = [o for d in range(1, 6) for o in orders(tmp_path, f"2025-12-0{d}")]
    products = Counter(o["product_id"] for o in ords).most_common()
    assert products[0][1] > 10 * len(ords) / 194  # Zipf head, far above uniform
    days_per_user = Counter(u for u, _ in {(o["user_id"], o["timestamp"][:10]) for o in ords})
    assert sum(n >= 2 for n in days_per_user.values()) > 200  # returning users
    status = Counter(o["status"] for o in ords)
    assert status["paid"] > status["cancelled"] > status["refunded"] and status["pending"] > 0.05 * len(ords)
    assert 0.6 < status["paid"] / len(ords) < 0.8
    qty = Counter(o["quantity"] for o in ords)
    assert qty[1] > 0.6 * len(ords) and set(qty) <= {1, 2, 3, 4, 5}
    hours = Counter(int(o["timestamp"][11:13]) for o in ords)
    assert sum(hours[h] for h in range(2, 6)) * 3 < sum(hours[h] for h in range(12, 16))


# --- dirty rows ------------------------------------------------------------------------------------
def _order_kinds(rows: list[dict], day: str, prev: str) -> set[str]:
    found, by_id = set(), defaultdict(list)
    for r in rows:
        by_id[r["order_id"]].append(r)
        found |= {"null_id"} if r["order_id"] is None else set()
        found |= {"null_user_id"} if r["user_id"] is None else set()
        found |= {"bad_quantity"} if r["quantity"] <= 0 else set()
        found |= {"negative_price"} if r["price"] < 0 else set()
        found |= {"unknown_product"} if r["product_id"] == "PROD_9999" else set()
        found |= {"dup_prev_day"} if (r["order_id"] or "").startswith(f"ORD_{prev}_") else set()
        found |= _ts_kind(r["timestamp"], day)
    return found | _dup_kinds(by_id)


def _event_kinds(rows: list[dict], day: str, prev: str) -> set[str]:
    found, by_id = set(), defaultdict(list)
    for r in rows:
        by_id[r["event_id"]].append(r)
        found |= {"null_id"} if r["event_id"] == "" else set()
        found |= {"null_user_id"} if r["user_id"] == "" else set()
        found |= {"unknown_product"} if r["product_id"] == "PROD_9999" else set()
        found |= {"dup_prev_day"} if r["event_id"].startswith(f"EVT_{prev}_") else set()
        found |= {"unknown_event_type"} if r["event_type"].lower() not in FUNNEL else set()
        found |= {"uppercase_event_type"} if r["event_type"] in {t.upper() for t in FUNNEL} else set()
        found |= _ts_kind(r["event_ts"], day)
    return found | _dup_kinds(by_id)


def _ts_kind(ts: str, day: str) -> set[str]:
    if not TS.match(ts):
        return {"bad_timestamp"}
    return {"future_timestamp"} if ts[:10] > day else {"late_record"} if ts[:10] < day else set()


def _dup_kinds(by_id: dict) -> set[str]:
    found = set()
    for key, group in by_id.items():
        if key not in (None, "") and len(group) > 1:
            found.add("dup_exact" if all(g == group[0] for g in group) else "dup_conflict")
    return found


def test_dirty_rate_zero_has_no_bad_rows(tmp_path: Path) -> None:
    run(tmp_path, start="2025-12-13", days=2)
    for day, prev in (("2025-12-13", "20251212"), ("2025-12-14", "20251213")):
        assert _order_kinds(orders(tmp_path, day), day, prev) == set()
        assert _event_kinds(events(tmp_path, day), day, prev) == set()


def test_dirty_rate_produces_every_documented_kind(tmp_path: Path) -> None:
    summary = run(tmp_path, dirty_rate=0.1)
    ords, evs = orders(tmp_path, FIXTURE_DAY), events(tmp_path, FIXTURE_DAY)
    assert len(ords) == SMALL["orders_per_day"] and len(evs) == SMALL["events_per_day"]
    order_kinds = set(ORDER_KINDS) | {"dup_exact", "dup_conflict"}
    event_kinds = set(EVENT_KINDS) | {"dup_exact", "dup_conflict"}
    assert _order_kinds(ords, FIXTURE_DAY, "20251213") == order_kinds
    assert _event_kinds(evs, FIXTURE_DAY, "20251213") == event_kinds
    assert sum(summary[0]["dirty_orders"].values()) == 30 and sum(summary[0]["dirty_events"].values()) == 300
    documented = set(re.findall(r"^([a-z_]+) +(?:yes|-) +(?:yes|-) ", gen.__doc__, re.M))
    assert documented == order_kinds | event_kinds
    # unknown ids and types are the documented ones
    assert {e["event_type"] for e in evs} - set(FUNNEL) - {t.upper() for t in FUNNEL} == {"hover"}
    assert {r["timestamp"] for r in ords if not TS.match(r["timestamp"])} == {"not-a-date"}


# --- CLI -------------------------------------------------------------------------------------------
def test_cli_writes_days_and_reports(tmp_path: Path) -> None:
    env = {**os.environ, "ECOMM_DATA_DIR": str(tmp_path / "env-out")}
    args = [sys.executable, "-m", "devtools.generate", "2025-12-14", "2", "--orders-per-day", "50",
            "--events-per-day", "400", "--users", "100", "--products", "30", "--seed", "3"]
    res = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("total ")
    assert "orders.json (50 rows)" in lines[0] and "events.csv (400 rows)" in lines[1]
    assert len(json.loads((tmp_path / "env-out" / "orders" / "2025-12-15" / "orders.json").read_text())) == 50
    res = subprocess.run(args + ["--out", str(tmp_path / "x"), "--format", "ndjson", "--dirty-rate", "0.2"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert (tmp_path / "x" / "orders" / "2025-12-14" / "orders.ndjson").exists()
    bad = subprocess.run(args + ["--dirty-rate", "2"], cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "dirty_rate" in bad.stderr


def test_cli_into_a_folder_it_may_not_write_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A read-only folder (a real read-only tmpfs, in a mount namespace of this command only; as a user, its own user
    namespace) and a file where the folder would be: each was a traceback."""
    read_only = tmp_path / "ro"
    read_only.mkdir()
    args = [sys.executable, "-m", "devtools.generate", "2025-12-14", "1", "--orders-per-day", "5",
            "--events-per-day", "20"]
    refused = subprocess.run(tmpfs.read_only(read_only, [*args, "--out", str(read_only / "incoming")]), cwd=REPO,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        f"python -m devtools.generate: error: cannot write {read_only / 'incoming'}: Read-only file system (the output"
        f" folder {read_only / 'incoming'}, from --out): give --out a folder you may write (see --help)"]

    (tmp_path / "file").write_text("")
    env = {**os.environ, "ECOMM_DATA_DIR": str(tmp_path / "file")}
    in_the_way = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert in_the_way.returncode == 2, in_the_way.stderr
    (said,) = in_the_way.stderr.splitlines()
    assert said.startswith(f"python -m devtools.generate: error: cannot write {tmp_path / 'file'}"), said
    assert said.endswith(f" (the output folder {tmp_path / 'file'}, from ECOMM_DATA_DIR): give --out a folder you may"
                         " write (see --help)"), said


def test_cli_a_reader_that_stops_or_a_full_disk_is_no_output_folder_error(tmp_path: Path) -> None:
    """`... | head -1` and a full disk were each "cannot write ...: give --out a folder you may write" (exit 2)."""
    args = [sys.executable, "-m", "devtools.generate", "2025-12-14", "2", "--orders-per-day", "5",
            "--events-per-day", "20"]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        piped = subprocess.run([*args, "--out", str(tmp_path / "out")], cwd=REPO, stdout=write, stderr=subprocess.PIPE,
                               text=True, timeout=120, check=False)
    finally:
        os.close(write)
    assert (piped.returncode, piped.stderr) == (141, "")
    assert (tmp_path / "out" / "orders" / "2025-12-14" / "orders.json").exists()
    assert not (tmp_path / "out" / "orders" / "2025-12-15").exists()  # it stopped with the reader

    with tmpfs.tmpfs(tmp_path / "small", "64k") as small:
        tmpfs.fill(small)
        full = subprocess.run([*args, "--out", str(small / "incoming")], cwd=REPO, capture_output=True, text=True,
                              timeout=120, check=False)
    assert full.returncode == 1, full.stderr
    assert full.stderr.splitlines() == ["python -m devtools.generate: error: [Errno 28] No space left on device"]
