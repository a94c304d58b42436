"""stg_users: weekly user snapshots in file or DummyJSON API shape -> one staging shape."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from pipeline import lake
from pipeline.ingest import landing
from pipeline.transform import staging
from tests.support import rows as r
from tests.support.paths import DUMMYJSON

MONDAY = dt.date(2025, 12, 15)


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def test_users_from_files_and_from_the_api():
    api = r.dummyjson("users", 2)
    r.write_users(MONDAY, [r.user(user_id="USER_0100", city=" ", country="France")])
    staging.stage("users", MONDAY)
    (row,) = r.read("staging", "stg_users", MONDAY)
    assert row == {
        "user_id": "USER_0100", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
        "city": None, "country": "France", "snapshot_date": MONDAY, "load_date": MONDAY,
        "_source_file": "users_2025-12-15.json", "_row_number": 1,
    }
    later = MONDAY + dt.timedelta(days=7)
    r.write_users(later, api + [{"firstName": "No", "lastName": "Id"}], source_kind="api")
    counts = staging.stage("users", later)
    assert (counts["staged_count"], counts["quarantined_count"]) == (2, 1)
    staged = r.read("staging", "stg_users", later, "user_id")
    assert [(u["user_id"], u["first_name"], u["last_name"], u["email"], u["city"], u["country"]) for u in staged] == [
        (f"USER_000{a['id']}", a["firstName"], a["lastName"], a["email"], a["address"]["city"],
         a["address"]["country"]) for a in api]
    assert [row["reason_code"] for row in r.bad_records("stg_users", later)] == ["missing_user_id"]


def test_a_date_without_a_snapshot_stages_nothing():
    assert staging.stage("users", MONDAY) is None


def test_quarantined_api_user_never_carries_credentials_into_bad_records(tmp_path, monkeypatch):
    """The users API sends passwords, SSNs and cards; bad_records (readable by BI) must not."""
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("ECOMM_DATA_DIR", str(tmp_path / "in"))
    day = "2025-12-15"

    # A real DummyJSON user (it carries a password, an SSN, a bank card and an IP), with an id
    # that is not a number so that staging quarantines it.
    secret = {**json.loads((DUMMYJSON / "users.json").read_text())[0], "id": "not-a-number"}
    folder = tmp_path / "in" / "users"
    folder.mkdir(parents=True)
    (folder / f"users_{day}.json").write_text(json.dumps([secret]))
    landing.land_catalog("users", lake.parse_date(day))
    staging.stage("users", lake.parse_date(day))
    ((raw_record,),) = duckdb.sql(
        "select raw_record from read_parquet($p)",
        params={"p": lake.partition_file("audit", "bad_records", day, source_table="stg_users")},
    ).fetchall()
    assert secret["address"]["city"] in raw_record and secret["firstName"] in raw_record
    for leaked in (secret["password"], secret["ssn"], secret["bank"]["cardNumber"], secret["ip"], "password"):
        assert leaked not in raw_record


def test_strict_parsing_of_user_records():
    r.write_users(MONDAY, [
        '{"user_id": "USER_0001", "city": "Oslo", "user_id": "USER_9999"}',
        '{"id": 2, "firstName": "A", "address": {"city": "Rome", "city": "Milan"}}',
        r.user(user_id=True),
        r.user(user_id=3.0),
        r.user(user_id="USER_0005", city="Par\u0000is"),
        r.user(user_id="\u2003USER_0006\t", country="\u00a0Norway\n"),
        r.user(user_id="U" * 300),
        r.user(user_id=7),
    ])
    counts = staging.stage("users", MONDAY)
    staged = r.read("staging", "stg_users", MONDAY, "_row_number")
    assert [(row["user_id"], row["country"]) for row in staged] == [
        ("USER_0006", "Norway"), ("USER_0007", "United Kingdom")]
    bad = r.bad_records("stg_users", MONDAY)
    assert [(row["row_number"], row["reason_code"], row["failing_value"]) for row in bad] == [
        (1, "duplicate_json_key", "user_id"),
        (2, "duplicate_json_key", "address.city"),
        (3, "invalid_user_id", "true"),
        (4, "invalid_user_id", "3.0"),
        (5, "invalid_text", "Par\\u0000is"),
        (7, "invalid_user_id", "U" * 200 + "… (300 characters)"),
    ]
    assert bad[4]["message"].endswith("(city contains a NUL character)")
    assert counts["is_balanced"]


def test_a_text_field_that_is_not_a_json_string_is_quarantined_naming_it():
    """The API's nested city, an object or a list where the file has text, is not published as its JSON."""
    api = r.dummyjson("users", 3)
    api[0]["address"]["city"] = {"name": "Phoenix"}
    api[1]["firstName"] = ["Ann", "Marie"]
    r.write_users(MONDAY, [
        r.user(user_id="USER_0100", city={"name": "Phoenix"}),
        r.user(user_id="USER_0101", country=True),
        r.user(user_id="USER_0102", last_name=7),
        r.user(user_id="USER_0103", city="{Phoenix}", email="[x]@example.com"),  # text that looks like JSON
    ])
    counts = staging.stage("users", MONDAY)
    assert [row["user_id"] for row in r.read("staging", "stg_users", MONDAY, "_row_number")] == ["USER_0103"]
    later = MONDAY + dt.timedelta(days=7)
    r.write_users(later, api, source_kind="api")
    staging.stage("users", later)
    assert [row["user_id"] for row in r.read("staging", "stg_users", later, "_row_number")] == ["USER_0003"]
    bad = r.bad_records("stg_users", MONDAY) + r.bad_records("stg_users", later)
    assert [(row["record_id"], row["reason_code"], row["failing_value"], row["message"].rsplit("(", 1)[-1])
            for row in bad] == [
        ("USER_0100", "invalid_text", '{"name":"Phoenix"}', "city is a JSON object)"),
        ("USER_0101", "invalid_text", "true", "country is a JSON boolean)"),
        ("USER_0102", "invalid_text", "7", "last_name is a JSON number)"),
        ("USER_0001", "invalid_text", '{"name":"Phoenix"}', "city is a JSON object)"),
        ("USER_0002", "invalid_text", '["Ann","Marie"]', "first_name is a JSON array)"),
    ]
    assert counts["is_balanced"]
