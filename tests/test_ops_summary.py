"""The run summary shows the dates asked for and this run's outcome; a date's gate verdict does not depend
on the order a backfill runs its dates in (issue 17, point 2 and the coordinator's point 10)."""
from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support.luigid import Luigid
from tests.support.ops import SEED_DAY, Ops, restate_with_unusable_orders
from tests.support.paths import REPO

# Monday 2025-12-08: the generator's first day, so its catalog snapshot is that Monday's; the dates
# after it need that snapshot staged (a task of 2025-12-08 that nobody asked about).
MONDAY = dt.date(2025, 12, 8)


def _summary_rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"\d{4}-\d{2}-\d{2}  ", line)]


@pytest.mark.slow
def test_the_summary_lists_the_requested_dates_only(ops: Ops) -> None:
    ops.generate(MONDAY, 2)
    day = MONDAY + dt.timedelta(days=1)
    result = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(day), "--stop",
                       str(day + dt.timedelta(days=1)), "--local-scheduler")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["load_date"] for r in ops.executions(MONDAY)}, "the run staged the Monday snapshot"
    rows = _summary_rows(result.stdout)
    assert [row[:10] for row in rows] == [str(day)], result.stdout
    assert "1 of 1 date(s) published" in result.stdout
    # raw - staged is accounted for: quarantined + duplicates (the generator's dirty rows include both)
    cells = rows[0].split()
    counted = {}
    for source, (flow, dropped) in (("orders", cells[1:3]), ("events", cells[3:5])):
        raw, staged = (int(v) for v in flow.split(">")[:2])
        quarantined, duplicates, rejected = (int(v) for v in dropped.split("+"))
        assert raw == staged + quarantined + duplicates and rejected == 0, rows[0]
        counted[source] = duplicates
    assert counted["events"] > 0, "the duplicates are shown, not hidden in raw - staged"

    # the same backfill again: every date is published, so Luigi makes no task of a date; still a summary
    again = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(day), "--stop",
                      str(day + dt.timedelta(days=1)), "--local-scheduler")
    assert again.returncode == 0, again.stderr[-3000:]
    (row,) = _summary_rows(again.stdout)
    assert row.startswith(str(day)) and row.endswith("published"), again.stdout
    assert "1 of 1 date(s) published" in again.stdout


@pytest.mark.slow
def test_after_a_restate_the_summary_shows_this_runs_outcome(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    orders = json.loads(path.read_text())
    path.write_text(json.dumps(orders[:-1]))  # a corrected file: one order fewer
    # a monitor's summary sees it before any run has (a date with a changed file is not done)
    unseen = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert unseen.returncode == 1 and "published, source CHANGED" in unseen.stdout, unseen.stdout
    assert f"incoming file changed: orders for {SEED_DAY}: {path} changed since it was landed" in unseen.stdout
    assert "what to do (changed source file): `python -m pipeline restate --date 2025-12-15`" in unseen.stdout
    refused = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert refused.returncode == 30 and "SourcesUnchanged: SourceChanged" in refused.stdout, refused.stdout
    assert "what to do (changed source file): `python -m pipeline restate --date 2025-12-15`" in refused.stdout
    # Postgres still serves the file landed before: published, but not counted as done (the run exits 30)
    (row,) = _summary_rows(refused.stdout)
    assert row.endswith("published, source CHANGED") and "0 of 1 date(s) published" in refused.stdout, refused.stdout
    standing = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert standing.returncode == 1 and "published, source CHANGED" in standing.stdout, standing.stdout

    restated = ops.pipeline("restate", "--date", str(SEED_DAY))
    assert restated.returncode == 0, restated.stderr[-3000:]
    (row,) = _summary_rows(restated.stdout)
    assert row.endswith("published") and row.split()[1] == "19>19>19>19", restated.stdout
    assert "SourceChanged" not in restated.stdout, "the failure that made the restatement necessary is history"
    later = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert later.returncode == 0 and "SourceChanged" not in later.stdout, later.stdout


@pytest.mark.slow
def test_a_damaged_file_is_not_restated_and_the_date_shows_its_changed_source(ops: Ops) -> None:
    """The new file is damaged: the restatement is refused before anything is archived, Postgres still serves the
    version published before, and the summary says its source changed (not `published`, summary exit 1) until a
    good file is restated."""
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # cut off: not JSON
    failed = ops.pipeline("restate", "--date", str(SEED_DAY))
    assert failed.returncode == 30 and failed.stderr.startswith("SourceFileInvalid: "), failed.stderr[-3000:]
    assert failed.stderr.rstrip().endswith(f"nothing was restated: {SEED_DAY} stays as it was landed")
    standing = ops.pipeline("summary", "--date", str(SEED_DAY))
    (row,) = _summary_rows(standing.stdout)
    assert standing.returncode == 1 and row.endswith("published, source CHANGED"), standing.stdout

    path.write_text(json.dumps(json.loads(good)[:-1]))  # the corrected file: one order fewer
    finished = ops.pipeline("restate", "--date", str(SEED_DAY))
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-2000:]
    (row,) = _summary_rows(finished.stdout)
    assert row.endswith("published") and row.split()[1] == "19>19>19>19", finished.stdout


@pytest.mark.slow
def test_a_restatement_the_gate_blocks_shows_its_blocking_checks(ops: Ops) -> None:
    """Two thirds of the restated orders are unusable: the gate blocks the new file, Postgres keeps the old
    version, and the summary names the checks that blocked it, as for a date never published."""
    blocked = restate_with_unusable_orders(ops)
    (row,) = _summary_rows(blocked.stdout)
    assert row.endswith("published, restatement PENDING"), blocked.stdout
    assert "FAIL source_loss: " in blocked.stdout and blocked.stdout.count("what to do (gate blocked)") == 1, \
        blocked.stdout
    standing = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert standing.returncode == 1 and "FAIL source_loss: " in standing.stdout, standing.stdout
    assert "See why in the lake's audit.bad_records (source_table stg_orders" in standing.stdout, \
        "one date: each blocking check's whole message"
    # as the failed restatement says: the corrected file, restated again (a run of the date alone would refuse
    # the file it landed changing: SourceChanged)
    said = f"then `python -m pipeline restate --date {SEED_DAY}` again"
    assert said in blocked.stderr, blocked.stderr[-2000:]
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    orders = json.loads(path.read_text())
    path.write_text(json.dumps([order for i, order in enumerate(orders) if not i % 3]))  # the unusable ones left out
    finished = ops.pipeline("restate", "--date", str(SEED_DAY))
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-2000:]
    (row,) = _summary_rows(finished.stdout)
    assert row.endswith("published"), finished.stdout


def _gate_results(ops: Ops, day: dt.date) -> list[tuple]:
    table = pq.read_table(str(ops.lake / "audit" / "dq_results" / f"load_date={day}" / "data.parquet")).to_pylist()
    return sorted((r["table_name"], r["check_name"], r["outcome"], r["value"], r["message"]) for r in table)


@pytest.mark.slow
def test_a_dates_gate_verdict_does_not_depend_on_the_run_order(ops: Ops) -> None:
    """Four dates; the last one's volume check compares it with the three before. Run it first (before
    the earlier dates are staged) in one world, last in another: the same recorded results."""
    ops.generate(MONDAY, 4)
    last = MONDAY + dt.timedelta(days=3)
    first_world = ops.luigi("DailyPipeline", "--date", str(last), "--local-scheduler")
    assert first_world.returncode == 0, first_world.stderr[-3000:]

    other = Ops(incoming=ops.incoming, lake=ops.lake.parent / "lake-2", server=ops.server,
                database=f"ops_{uuid.uuid4().hex[:10]}", extra_env=dict(ops.extra_env))
    for offset in range(3):  # the earlier dates staged first, oldest first
        earlier = other.luigi("StageDaily", "--date", str(MONDAY + dt.timedelta(days=offset)), "--local-scheduler")
        assert earlier.returncode == 0, earlier.stderr[-3000:]
    second_world = other.luigi("DailyPipeline", "--date", str(last), "--local-scheduler")
    assert second_world.returncode == 0, second_world.stderr[-3000:]

    results = _gate_results(ops, last)
    assert results == _gate_results(other, last)
    volume = [r for r in results if r[0] == "source_volume" and "median" in r[1]]
    assert len(volume) == 2 and all("3 earlier load dates" in r[4] for r in volume), volume
    assert ops.query("select check_name, outcome, message from audit.dq_failures where run_date = %s order by 1",
                     [last]) == other.query("select check_name, outcome, message from audit.dq_failures"
                                            " where run_date = %s order by 1", [last])


@pytest.mark.slow
def test_a_requested_date_held_back_by_an_earlier_dates_failure_says_which_and_what_to_do(ops: Ops) -> None:
    """The gate of a date waits for the earlier dates its volume check compares with: when one of those
    fails, the summary of the date asked for names it, its reason and the fix (not a bare "not published")."""
    ops.generate(MONDAY, 4)
    broken, asked = MONDAY + dt.timedelta(days=2), MONDAY + dt.timedelta(days=3)
    (ops.incoming / "orders" / str(broken) / "orders.json").unlink()
    result = ops.luigi("DailyPipeline", "--date", str(asked), "--local-scheduler")
    assert result.returncode == 30, result.stderr[-3000:]
    (row,) = _summary_rows(result.stdout)
    assert row.startswith(str(asked)) and row.endswith(f"waits for {broken} (failed, below)"), result.stdout
    needed = result.stdout.split("Needed by the date(s) above", 1)[1]
    assert f"{broken}: FAILED" in needed and f"LandOrders: SourceFileMissing: orders for {broken}" in needed
    # the rerun as this run was given: without luigid (copied as printed, a rerun through luigid would fail)
    assert ("what to do (missing file): put the file where the message says, then"
            f" `luigi --module pipeline.tasks DailyPipeline --date {broken} --local-scheduler`") in needed, needed
    assert "0 of 1 date(s) published" in result.stdout
    # `python -m pipeline summary` is no run: its reruns are in the README's form, which works as printed
    later = ops.pipeline("summary", "--date", str(broken))
    assert ("what to do (missing file): put the file where the message says, then"
            f" `luigi --module pipeline.tasks DailyPipeline --date {broken} --local-scheduler`") in later.stdout, \
        later.stdout


def test_the_summary_reads_the_command_line_while_luigi_schedules_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary at exit needs the dates the command asked for; they are read while Luigi's own
    command-line parser is live (a dependency event), so the exit builds no parser of its own."""
    import luigi
    from luigi.cmdline_parser import CmdlineParser

    from pipeline.tasks import command_line

    class SummaryProbeDone(luigi.Task):  # complete: Luigi only asks it, which fires DEPENDENCY_PRESENT
        date = luigi.DateParameter()

        def complete(self) -> bool:
            return True

    monkeypatch.setattr(command_line, "_noted", None)
    monkeypatch.setattr(command_line, "_noting", False)
    assert luigi.run(["SummaryProbeDone", "--date", "2025-12-14", "--local-scheduler", "--no-lock"])
    dates, _url, local = command_line.noted()
    assert dates == [dt.date(2025, 12, 14)] and local

    def no_parser(*args: object, **kwargs: object) -> None:
        raise AssertionError("the summary built a command-line parser at exit")

    monkeypatch.setattr(CmdlineParser, "__init__", no_parser)
    assert command_line.read(["SummaryProbeDone", "--date", "2025-12-14"]) == command_line.noted()


@pytest.mark.slow
def test_a_date_held_back_by_an_earlier_date_of_the_same_range_names_it_not_a_bare_not_published(
        ops: Ops, luigid: Luigid) -> None:
    """A backfill whose first date fails: the next date's gate needs that date's staging (its volume check), so
    Luigi leaves it pending. Its row says which date it waits for, in this run's summary, in `python -m
    pipeline summary`, and through luigid (where the failed task is then disabled: not the waiting date's)."""
    ops.generate(MONDAY, 2)
    broken, held = MONDAY, MONDAY + dt.timedelta(days=1)
    orders = ops.incoming / "orders" / str(broken) / "orders.json"
    good = orders.read_bytes()
    orders.write_text('[{"order_id": "X1",', encoding="utf-8")
    span = ["--start", str(broken), "--stop", str(held + dt.timedelta(days=1))]

    result = ops.luigi("RangeDaily", "--of", "DailyPipeline", *span, "--local-scheduler")
    assert result.returncode == 30, result.stderr[-3000:]
    rows = _summary_rows(result.stdout)
    assert [row[:10] for row in rows] == [str(broken), str(held)], result.stdout
    assert rows[0].endswith("FAILED") and rows[1].endswith(f"waits for {broken} (failed, above)"), result.stdout
    assert "LandOrders: SourceFileInvalid" in result.stdout and "0 of 2 date(s) published" in result.stdout
    # the date's own fix reruns that date only; the last line gives the backfill's command, as it was run
    command = shlex.join(["luigi", "--module", "pipeline.tasks", "RangeDaily", "--of", "DailyPipeline", *span,
                          "--local-scheduler"])
    assert result.stdout.rstrip().splitlines()[-1] == (
        f"then the rest of the backfill, as it was run: `{command}` (it runs the dates not published yet, oldest"
        " first)"), result.stdout
    later = ops.pipeline("summary", *span)
    assert later.returncode == 1 and _summary_rows(later.stdout)[1].endswith(f"waits for {broken} (failed, above)"), \
        later.stdout
    assert "what to do (not published)" not in later.stdout, later.stdout  # a rerun of the held date cannot help

    through = ops.luigi("RangeDaily", "--of", "DailyPipeline", *span, *luigid.scheduler_args())
    assert through.returncode == 30, through.stderr[-3000:]
    assert _summary_rows(through.stdout)[1].endswith(f"waits for {broken} (failed, above)"), through.stdout
    refused = ops.luigi("RangeDaily", "--of", "DailyPipeline", *span, *luigid.scheduler_args())
    assert refused.returncode == 25, refused.stderr[-3000:]
    rows = _summary_rows(refused.stdout)
    assert rows[0].endswith("DISABLED in luigid (not run)"), refused.stdout
    assert rows[1].endswith(f"waits for {broken} (disabled in luigid, above)"), refused.stdout
    assert f"LandOrders(date={broken}) is DISABLED since" in refused.stdout

    orders.write_bytes(good)  # the sender's complete file: the backfill's command, as printed, publishes both
    followed = ops.luigi(*shlex.split(command)[3:])
    assert followed.returncode == 0 and "2 of 2 date(s) published" in followed.stdout, followed.stderr[-3000:]
    assert "then the rest of the backfill" not in followed.stdout


def test_a_long_failure_line_is_cut_at_a_word_and_says_so() -> None:
    from pipeline.cli import shortened

    line = "LakeUnreadable: " + "a path and its reason " * 30
    shown = shortened(f"{line}\nthe traceback's next line")
    kept = shown.removesuffix(" ...")
    assert kept != shown and len(kept) <= 300 and line.startswith(kept)
    assert line[len(kept)] == " ", "cut between words, not inside one"
    assert shortened("SourceFileMissing: short\nmore") == "SourceFileMissing: short"
    # what to do, the message's last sentence, is kept: a summary's "do what the message says" must find it
    folder = "UnexpectedSourceFiles: orders for 2025-12-15: /data/incoming/orders/2025-12-15 holds 3 files (" + \
        ", ".join(f"part-{n:04d}-of-a-long-export-name.json" for n in range(3)) + "); a date's folder must hold one"
    advice = "Multi-part delivery is not supported: combine the parts into one file, then run again"
    shown = shortened(f"{folder} orders file (orders.json, orders.json.gz). {advice}")
    assert len(shown) <= 300 and shown.startswith("UnexpectedSourceFiles: orders for 2025-12-15:") and \
        shown.endswith(f" ... {advice}"), shown


@pytest.mark.slow
def test_a_failed_task_of_a_published_date_that_a_requested_date_needs_is_named(ops: Ops) -> None:
    """A products file for the week's Monday, a date published without a catalog, arrives after it, broken: the
    next date needs that snapshot, landed by the Monday's task. When that task fails, the summary names it and its
    error, though the Monday is `published, catalog LATE` now (only a plain "published" was held to hold back)."""
    ops.generate(MONDAY, 3)
    for snapshot in (ops.incoming / "products").iterdir():
        snapshot.unlink()  # no products catalog yet: the dates are built with inferred products
    tuesday, asked = MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=2)
    files = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(MONDAY), "--stop", str(asked),
                      "--local-scheduler")
    assert files.returncode == 0 and "2 of 2 date(s) published" in files.stdout, files.stderr[-3000:]

    (ops.incoming / "products" / f"products_{MONDAY}.json").write_text('[{"id": 1, "title": "cut off')
    result = ops.luigi("DailyPipeline", "--date", str(asked), "--local-scheduler")
    assert result.returncode == 30, result.stderr[-3000:]
    (row,) = _summary_rows(result.stdout)
    assert row.endswith(f"waits for {MONDAY} (failed, below)"), result.stdout
    needed = result.stdout.split("Needed by the date(s) above", 1)[1]
    assert f"{MONDAY}: published, but LandProducts failed in this run" in needed, result.stdout
    assert "LandProducts: SourceFileInvalid: " in needed and "malformed JSON" in needed, needed
    assert "0 of 1 date(s) published" in result.stdout

    # the Monday asked for too (a backfill): its row shows the failed task, the date that needs it names it
    span = ["--start", str(MONDAY), "--stop", str(asked + dt.timedelta(days=1))]
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", *span, "--local-scheduler")
    assert backfill.returncode == 30, backfill.stderr[-3000:]
    rows = _summary_rows(backfill.stdout)
    assert rows[0].endswith("published, catalog LATE") and rows[1].startswith(str(tuesday)), backfill.stdout
    assert f"waits for {MONDAY} (LandProducts, " in rows[2], backfill.stdout
    assert "LandProducts: SourceFileInvalid" in backfill.stdout, backfill.stdout


@pytest.mark.slow
def test_a_catalog_file_no_run_reads_is_named_under_the_summary(ops: Ops) -> None:
    """A snapshot delivered as products_20251215.json is never read: the date is built from the snapshot before it.
    The run's log said so among its other lines; the summary, which is what cron mails, did not."""
    folder = ops.incoming / "products"
    misnamed = folder / "products_20251215.json"
    misnamed.write_bytes(next(folder.glob("products_*.json")).read_bytes())
    result = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"ignored incoming file: {misnamed}: not a products snapshot name (products_YYYY-MM-DD.json, optionally"
            " ending in .gz or .zst)") in result.stdout, result.stdout[-3000:]


@pytest.mark.slow
def test_a_published_date_not_reconciled_is_told_the_run_that_reconciles_it(ops: Ops) -> None:
    """Killed between the publish's commit and its serving reconciliation (its reconciled_at not written): a plain
    run of the date reconciles it without republishing it, and the summary says so."""
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    published_at = ops.query("select published_at from audit.publish_log where load_date = %s", [SEED_DAY])
    assert ops.query("update audit.publish_log set reconciled_at = null where load_date = %s returning 1", [SEED_DAY])
    summary = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert summary.returncode == 1 and "published, NOT RECONCILED" in summary.stdout, summary.stdout
    command = f"luigi --module pipeline.tasks DailyPipeline --date {SEED_DAY} --local-scheduler"
    line = f"    what to do (not reconciled): run the date, which reconciles it without republishing it: `{command}`"
    assert line in summary.stdout.splitlines(), summary.stdout
    assert ops.luigi(*shlex.split(command)[3:]).returncode == 0
    assert ops.query("select published_at from audit.publish_log where load_date = %s", [SEED_DAY]) == published_at
    assert ops.pipeline("summary", "--date", str(SEED_DAY)).returncode == 0


@pytest.mark.slow
def test_a_date_whose_run_was_killed_is_told_to_run_it(ops: Ops, tmp_path: Path) -> None:
    """A run killed before it published the date recorded no failure: "not published", and the daily command; a date
    never run has no such line."""
    env = {**ops.env, "ECOMM_FAULT": "task.start:BuildFactOrders:kill", "ECOMM_FAULT_DIR": str(tmp_path)}
    killed = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date",
                             str(SEED_DAY), "--local-scheduler"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert killed.returncode < 0 or killed.returncode == 137, killed.stderr[-3000:]
    # then a run that could not schedule the date (a bad setting, exit 35): the run audit records nothing of it, so
    # the summary of another process cannot call the killed run the last one
    ops.extra_env["ECOMM_PG_PORT"] = "abc"
    unscheduled = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    del ops.extra_env["ECOMM_PG_PORT"]
    assert unscheduled.returncode == 35 and "could not be scheduled" in unscheduled.stdout, unscheduled.stdout
    never = SEED_DAY + dt.timedelta(days=30)
    summary = ops.pipeline("summary", "--start", str(SEED_DAY), "--stop", str(never + dt.timedelta(days=1)))
    assert summary.returncode == 1, summary.stdout
    command = f"luigi --module pipeline.tasks DailyPipeline --date {SEED_DAY} --local-scheduler"
    assert (f"    what to do (not published): its last recorded run ended without publishing it and recorded no"
            " failure (killed, or still running; a run that could not schedule the date records nothing); unless it is"
            f" running, run the date, which says why if it cannot schedule it: `{command}`") in summary.stdout, \
        summary.stdout
    assert summary.stdout.count("what to do (not published)") == 1, "not for the dates never run"
    assert ops.luigi(*shlex.split(command)[3:]).returncode == 0
    assert ops.pipeline("summary", "--date", str(SEED_DAY)).returncode == 0


@pytest.mark.slow
def test_a_date_not_ready_is_told_its_rerun_with_the_settings_the_run_was_given(ops: Ops) -> None:
    """A run given `--landing-ready-marker _READY` whose marker is missing: NOT READY, and the rerun printed keeps the
    option (without it the rerun lands the date without waiting for the marker), and the run's other settings' options
    as typed; it publishes once the markers are there."""
    given = ("--landing-ready-marker=_READY", "--model-late-window-days", "45")
    waiting = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler", *given)
    assert waiting.returncode == 20, waiting.stdout[-3000:] + waiting.stderr[-3000:]
    assert "NOT READY (orders, events: no ready marker)" in waiting.stdout, waiting.stdout
    command = (f"luigi --module pipeline.tasks DailyPipeline --date {SEED_DAY} --local-scheduler"
               " --landing-ready-marker _READY --model-late-window-days 45")
    assert (f"    what to do (not ready): nothing to fix: run the date again once the marker is there (`{command}`)"
            in waiting.stdout.splitlines()), waiting.stdout
    for folder in [*ops.incoming.glob("orders/*"), *ops.incoming.glob("events/*")]:  # the gate's history too
        (folder / "_READY").touch()
    rerun = ops.luigi(*shlex.split(command)[3:])
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert ops.query("select count(*) from audit.publish_log where load_date = %s", [SEED_DAY]) == [(1,)]
