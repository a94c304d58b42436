"""A catalog snapshot delivered under a name nobody reads but evidently meant as one (`users_D.JSON`,
`users_D (1).json`) refuses the dates it would cover, saying the name to give it, as a misnamed daily file does; it
was ignored with a warning, and the date published without that catalog (users_snapshot_date NULL)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipeline.ingest import landing
from tests.support.ops import SEED_DAY, Ops
from tests.support.rows import user

USERS = json.dumps([user(user_id=f"USER_{n:04d}") for n in range(1, 501)])


@pytest.mark.slow
def test_a_users_snapshot_in_capitals_refuses_the_date_until_it_is_renamed(ops: Ops) -> None:
    folder = ops.incoming / "users"
    folder.mkdir()
    misnamed = folder / f"users_{SEED_DAY}.JSON"
    misnamed.write_text(USERS, encoding="utf-8")
    refused = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    said = (f"UnexpectedSourceFiles: users snapshot {SEED_DAY}: no file named users_{SEED_DAY}.json (names are"
            f" case-sensitive); {folder} holds 'users_{SEED_DAY}.JSON': rename it to users_{SEED_DAY}.json, then run"
            " again; nothing was landed")
    assert refused.returncode == 30, refused.stdout[-2000:] + refused.stderr[-3000:]
    assert said in refused.stdout and "Traceback" not in refused.stderr, refused.stdout[-3000:]
    assert "0 of 1 date(s) published" in refused.stdout and not (ops.lake / "raw" / "users").exists()
    misnamed.rename(folder / f"users_{SEED_DAY}.json")
    renamed = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert renamed.returncode == 0, renamed.stdout[-2000:] + renamed.stderr[-3000:]
    assert ops.query("select users_snapshot_date from warehouse.daily_metrics where run_date = %s",
                     [SEED_DAY]) == [(SEED_DAY,)]


def _folder(incoming: Path, *names: str) -> Path:
    folder = incoming / "users"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text(USERS, encoding="utf-8")
    return folder


@pytest.mark.parametrize("name", ["users_2025-12-08 (1).json", "Users_2025-12-08.json", "users_2025-12-08 - Copy.json",
                                  "users_2025-12-08.JSON.gz"])
def test_a_misnamed_snapshot_that_would_cover_the_date_is_refused_naming_the_name_to_give_it(
        incoming: Path, name: str) -> None:
    others = ("users-2025-12-08.json", "users_20251208.json", "users_2025-12-08.json.bak")  # not evidently snapshots
    folder = _folder(incoming, "users_2025-12-01.json", name, *others)
    accepted = "users_2025-12-08.json" + (".gz" if name.endswith(".gz") else "")
    with pytest.raises(landing.UnexpectedSourceFiles) as refused:
        landing.catalog_file("users", dt.date(2025, 12, 10))
    cased = " (names are case-sensitive)" if name.lower() == accepted.lower() else ""  # only when it is the case
    assert str(refused.value) == (
        f"users snapshot 2025-12-08: no file named {accepted}{cased}; {folder} holds {name!r}:"
        f" rename it to {accepted}, then run again; nothing was landed")
    # a date it does not cover (before it) still reads the snapshot before it; the others are only named as ignored
    assert landing.catalog_file("users", dt.date(2025, 12, 7)) == (str(folder / "users_2025-12-01.json"),
                                                                  dt.date(2025, 12, 1))
    why = "not a users snapshot name (users_YYYY-MM-DD.json, optionally ending in .gz or .zst)"
    assert landing.ignored_catalog_files("users") == {
        str(folder / name): f"{why}: rename it to {accepted} to have it read", **{str(folder / o): why for o in others}}


def test_a_copy_beside_the_snapshot_is_refused_as_a_second_copy_never_to_be_renamed_over_it(incoming: Path) -> None:
    folder = _folder(incoming, "users_2025-12-08.json", "users_2025-12-08 (1).json")
    with pytest.raises(landing.UnexpectedSourceFiles) as refused:
        landing.catalog_file("users", dt.date(2025, 12, 10))
    # renamed to users_2025-12-08.json it would overwrite the snapshot's file: not advised
    assert str(refused.value) == (
        f"users snapshot 2025-12-08: {folder} holds 'users_2025-12-08 (1).json' beside users_2025-12-08.json, a second"
        " copy of it; a snapshot is one file: move 'users_2025-12-08 (1).json' out of the folder, or replace"
        " users_2025-12-08.json with it and restate (`python -m pipeline restate --catalog users --date 2025-12-08`),"
        " then run again; nothing was landed")
    assert landing.ignored_catalog_files("users") == {str(folder / "users_2025-12-08 (1).json"): (
        "not a users snapshot name (users_YYYY-MM-DD.json, optionally ending in .gz or .zst): a second copy of"
        " users_2025-12-08.json")}
    (folder / "users_2025-12-08 (1).json").unlink()
    assert landing.catalog_file("users", dt.date(2025, 12, 10)) == (str(folder / "users_2025-12-08.json"),
                                                                   dt.date(2025, 12, 8))


@pytest.mark.parametrize("space", ["\n", "\t", "\r"])
def test_a_name_with_a_line_break_or_a_tab_is_no_copy_of_a_snapshot(incoming: Path, space: str) -> None:
    # a copy's suffix is spaces: a newline in the name would break the one-line error the refusal prints
    folder = _folder(incoming, "users_2025-12-01.json", f"users_2025-12-08{space}(1).json")
    assert landing.catalog_file("users", dt.date(2025, 12, 10)) == (str(folder / "users_2025-12-01.json"),
                                                                   dt.date(2025, 12, 1))
    assert list(landing.ignored_catalog_files("users").values()) == [
        "not a users snapshot name (users_YYYY-MM-DD.json, optionally ending in .gz or .zst)"]


@pytest.mark.slow
def test_a_misnamed_snapshot_after_the_date_was_published_says_to_rename_it_before_the_restatement(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    folder = ops.incoming / "users"
    folder.mkdir()
    day = SEED_DAY - dt.timedelta(days=1)
    (folder / f"users_{day}.JSON").write_text(USERS, encoding="utf-8")
    rerun = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert rerun.returncode == 30, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    # the restatement alone refuses the misnamed file ("rename it"): the rename comes first, then the restatement
    rename = (f"users snapshot {day}: no file named users_{day}.json (names are case-sensitive); {folder} holds"
              f" 'users_{day}.JSON': rename it to users_{day}.json, then: the users snapshot of {day} arrived after")
    assert f"what to do (late catalog snapshot): {rename}" in rerun.stdout, rerun.stdout[-3000:]
    assert f"`python -m pipeline restate --catalog users --date {day}`" in rerun.stdout
    summary = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert rename in summary.stdout, summary.stdout[-3000:] + summary.stderr[-3000:]
    (folder / f"users_{day}.JSON").rename(folder / f"users_{day}.json")
    restated = ops.pipeline("restate", "--catalog", "users", "--date", str(day))
    assert restated.returncode == 0, restated.stdout[-2000:] + restated.stderr[-3000:]
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    assert ops.query("select users_snapshot_date from warehouse.daily_metrics where run_date = %s",
                     [SEED_DAY]) == [(day,)]
