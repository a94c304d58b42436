"""What every task of the pipeline shares: its date, its priority, its time limit, its status line.

A task declares its `date`, what it requires and which table it writes; one base class per kind
(`pipeline.tasks.land`, `stage`, `model`, `check`, `publish`) knows how to run it and how to tell
Luigi that it is complete, so the tasks themselves stay thin.

Failure policy per kind (Luigi retries a failed task `retry_count - 1` times, `[scheduler]
retry_delay` seconds apart, while the worker stays alive):
- land files, stage, model, check: `retry_count = 1`: a missing or bad file, a broken rule or a
  blocked quality gate fails the same way every time, so it is not retried;
- catalog landing: `retry_count = 1`; it retries inside the task only an API that fails transiently
  (5xx, 429, timeout: [catalog] attempts, 5 minutes apart); a bad catalog file fails at once;
- publish and the fact preloads: `retry_count = 1`, because Luigi cannot tell a Postgres that is
  restarting from a value Postgres cannot store. They retry inside the task only what can heal
  (`pipeline.serving.retry`: unreachable or starting server, lock timeout, serialization failure,
  deadlock; [publish] attempts and backoff) and fail at once, with the reason, on anything else.
Each kind is killed after its `[task_timeouts]` seconds (`worker_timeout`).

Every execution of a task is recorded by the run audit (`pipeline.tasks.run_audit`), from Luigi's
event handlers installed at the bottom of this module.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import duckdb
import luigi
import luigi.tools.range

from pipeline import business_day, cli, config, lake, setting_source
from pipeline.lake import spill, sqlrun
from pipeline.tasks import run_audit

logger = logging.getLogger(__name__)


def _check_settings() -> None:
    """What a task checks while Luigi parses the command line: --workers, and every section's options.

    A bad option rejects the command now (exit 40), not the task that reads it; a bad value in a file
    is refused while Luigi schedules the date (DailyPipeline.requires: exit 35).
    """
    config.check_workers()
    try:
        config.read_sections()
    except config.BadSetting:
        pass  # a value in a file (see above)
    _say_overridden()


@functools.lru_cache(maxsize=1)
def _say_overridden() -> None:
    """Warn, once per process, of each command-line option an environment variable overrides."""
    for line in setting_source.overridden():
        logger.warning("%s", line)


class task_timeouts(config.NamedBadSettings, luigi.Config):  # noqa: N801 - luigi maps the class name to [task_timeouts]
    """[task_timeouts]: seconds a task of each kind may run before its worker kills it (0 = no limit)."""

    land = luigi.IntParameter(default=600)
    catalog = luigi.IntParameter(default=1200)  # includes its own retries of a failing API
    stage = luigi.IntParameter(default=900)
    model = luigi.IntParameter(default=900)
    check = luigi.IntParameter(default=900)
    publish = luigi.IntParameter(default=1800)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind, _ in self.get_params():  # a negative limit killed every task of its kind at once (exit 30)
            if (seconds := getattr(self, kind)) < 0:
                raise config.BadSetting(config.unreadable_setting("task_timeouts", kind, str(seconds),
                                                                  "expected 0 or more: 0 is no limit"))


class LakeTarget(luigi.Target):
    """A lake file as a task's output: local or on object storage alike (see `pipeline.lake`)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def exists(self) -> bool:
        return lake.exists(self.path)


class DateParameter(luigi.DateParameter):
    """A date parameter that rejects anything but YYYY-MM-DD before it reaches a path or SQL, and a date whose
    business day has not ended (`business_day.ended`: its files cannot be complete)."""

    def parse(self, s: str) -> dt.date:
        try:
            day = lake.parse_date(s)
        except ValueError as err:
            reason = "" if str(err).startswith("not a date") else f" ({err})"
            raise ValueError(f"--date {s!r} is not a valid date: expected YYYY-MM-DD, e.g. 2025-12-15{reason}") from None
        return business_day.ended(day)


def _memory_limit_named(run: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`run`, its DuckDB out-of-memory error turned into one naming [duckdb] memory_limit (`sqlrun.out_of_memory`),
    and DuckDB's error about the folder it spills to into the folder's (`spill.failure`: any query may spill)."""

    @functools.wraps(run)
    def named(self: Any) -> Any:
        try:
            return run(self)
        except duckdb.OutOfMemoryException as err:
            raise sqlrun.out_of_memory(err) from err
        except duckdb.Error as err:
            if (unusable := spill.failure(err)) is not None:
                raise unusable from err
            raise

    return named


#: how long a task's requirements are not asked of a lake store that refused (`PipelineTask._requires`)
STORE_DOWN_SECONDS = 60.0
_store_refused_at: float | None = None  # when the lake's store last refused this process requirements (monotonic)

#: below `PipelineTask.priority` of any date (see RangeDaily)
LOWEST_PRIORITY = -10 * dt.date.max.toordinal() - 1


def running_task() -> luigi.Task | None:
    """The task this process was forked to run (luigi.worker.TaskProcess.task), None in Luigi's own process:
    Luigi checks a task's requirements again in its process, just before run()."""
    return getattr(multiprocessing.current_process(), "task", None)


class PipelineTask(luigi.Task):
    """A task for one load date; reports what it did to the scheduler and the run audit."""

    date: dt.date = DateParameter()

    #: the [task_timeouts] option that bounds this kind (None: the [worker] timeout)
    timeout_kind: str | None = None

    #: what the run audit records as rows in/out (set by run())
    rows_in: int | None = None
    rows_out: int | None = None

    #: among one date's ready tasks, higher runs first (see `priority`)
    date_rank: int = 0

    @property
    def priority(self) -> int:  # type: ignore[override] - luigi reads it per instance
        """Earlier dates first (a backfill publishes in date order); within a date, by `date_rank`.

        Ranks (pipeline.tasks): the events chain, the date's longest, first (land 6, stage 5, fact
        2); then the orders chain (land 4, stage 3, fact 2), which runs beside it; then the catalogs
        (land and stage 2) and dim_product_history, which reads only the products catalog, so that
        they too run beside the events' staging: at 0 they waited behind the marts and the orders'
        preload (1) and, when the events' staging ended first, delayed the gate, which needs
        dim_user; then the marts and the small dimension tasks. Luigi's scheduler runs the ready
        task of highest priority and raises a task's dependencies to its priority (a date's order
        also holds for the catalog snapshots it needs). Orders beside
        events is also the memory plan: landing orders while the events are staged would hold two
        large DuckDB working sets at once. Measured on a 100K/1M day: the events chain no longer
        waits ~0.2 s behind the catalogs.
        """
        return -10 * self.date.toordinal() + self.date_rank

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every kind's run(): a too small [duckdb] memory_limit fails as the setting it is, whichever step met it
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.run = _memory_limit_named(cls.__dict__["run"])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_settings()
        business_day.ended_by_clock(self.date)  # however the task was built (Python code, RangeDaily, a --now)
        run_audit.note_scheduled(self.date)

    _required: list[luigi.Task] | None = None  # what requires() last returned to this instance (see _requires)

    def _requires(self) -> list[luigi.Task]:
        """requires(), computed afresh each time Luigi asks (its worker's deps(), the task process's check of them,
        the execution summary); when the lake's store refuses or does not answer (`lake.store_refused`) after this
        instance computed them once, what it computed then: the run was scheduled with those.

        Luigi's summary of the tasks still pending asks their requires() again after the run: a model task's lists the
        lake's catalog snapshots, and a store gone down mid-run escaped Luigi there (exit 40, a traceback) instead
        of leaving the failed task's exit 30 and its one line. A store down while scheduling still fails there. For
        STORE_DOWN_SECONDS after the store refused, this process does not ask it again for requirements it has (each
        request to a store that does not answer takes the S3 client's `AWS_MAX_ATTEMPTS` sends, 2-10 s: the summary
        asks for dozens).
        """
        global _store_refused_at
        if self._required is not None and _store_refused_at is not None \
                and time.monotonic() - _store_refused_at < STORE_DOWN_SECONDS:
            return list(self._required)
        try:
            required = super()._requires()
        except Exception as err:
            if self._required is None or not lake.store_refused(err):
                raise
            logger.debug("the requirements of %s as scheduled: the lake's store refused: %s", self.task_id, err)
            _store_refused_at = time.monotonic()
            return list(self._required)
        self._required = list(required)
        return required

    @property
    def worker_timeout(self) -> int | None:  # type: ignore[override] - luigi reads it per instance
        if self.timeout_kind is None:
            return None
        return int(getattr(task_timeouts(), self.timeout_kind))  # 0: no limit

    def on_failure(self, exception: BaseException) -> str:
        """What luigid shows for a failed task and the failure e-mail carries ([email], luigi.cfg).

        Luigi's default is the traceback alone; this puts first what failed, the reason, what to do
        for this date (`pipeline.tasks.runbook`) and where the runbook is, then the traceback.
        """
        from pipeline.tasks import command_line, runbook

        try:
            head = runbook.explain(self.task_family, getattr(self, "date", None), exception,
                                   local_scheduler=command_line.uses_local_scheduler())
        except Exception:  # noqa: BLE001 - the explanation must never hide the error itself
            logger.debug("could not explain the failure of %s", self.task_id, exc_info=True)
            head = f"{self.task_family} failed: {type(exception).__name__}: {exception}"
        self.status(head.splitlines()[0])  # luigid's status line, in place of the last step's ("landing orders")
        return f"{head}\n\n{super().on_failure(exception)}"

    def report(self, message: str, percent: int | None = None) -> None:
        """Show a status line (and progress) in the scheduler UI and the log."""
        logger.info("%s: %s", self.task_id, message)
        self.status(message, percent)

    _status_line: Any = None  # the last status_message setter Luigi gave the task (it unsets it before on_failure)

    def status(self, message: str, percent: int | None = None) -> None:
        """Show a status line (and progress) in the scheduler UI only (the caller logged it)."""
        try:
            self._status_line = self.set_status_message or self._status_line
            self._status_line(message)
            if percent is not None:
                self.set_progress_percentage(percent)
        except Exception:  # noqa: BLE001 - the UI is best effort; never fail a task for it
            logger.debug("could not report status for %s", self.task_id, exc_info=True)


class RangeDaily(luigi.tools.range.RangeDaily):
    """Luigi's RangeDaily (`--of DailyPipeline --start ... --stop ...`), below every date in priority.

    Luigi's scheduler raises a task's dependencies to its own priority. With Luigi's default (0)
    the backfill would raise every date's tasks to 0, erase their date order, and publish the
    newest date first; at the lowest priority it leaves each date its own (see
    `PipelineTask.priority`), so a backfill publishes oldest first. Same name as Luigi's class, so
    `--module pipeline.tasks RangeDaily` and [RangeDaily] in luigi.cfg mean this one (Luigi
    instantiates the most derived class of a name).
    """

    priority = LOWEST_PRIORITY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_settings()
        if self.start is not None:  # Luigi runs nothing for a --start after today, and exits 0
            try:
                business_day.ended(self.start, self.clock())  # nor for one whose day goes on: see moving_stop
            except config.BadSetting:
                raise
            except ValueError as err:
                raise ValueError(f"--start {err}") from None
        if self.days_forward:  # Luigi's stop `now + days_forward`, which moving_stop's business day replaces
            raise ValueError(f"[RangeDaily] days_forward (--days-forward) is {self.days_forward}: a range ends before"
                             " the first date whose business day is not over, never after it; to end it earlier give"
                             " --stop (exclusive), and leave days_forward 0")
        if self.start is not None and self.stop is not None:
            # Luigi fails `--start` after `--stop` while scheduling (a traceback) and runs nothing, exit 0,
            # for `--start D --stop D`: both are a mistyped range, rejected as `python -m pipeline summary` does
            cli.date_range(self.start, self.stop)
        if self.task_limit < 1:  # Luigi schedules no date, says "0 of N date(s) published" and exits 0
            raise ValueError(f"[RangeDaily] task_limit (--task-limit) is {self.task_limit}: a backfill would schedule"
                             " no date; give 1 or more, or leave it out for the default (as many as days_back reaches)")
        if self.start is not None and (earliest := self.earliest()) > self.start:
            raise ValueError(f"--start {self.start} is before {earliest}, the earliest date [RangeDaily] days_back"
                             f" (--days-back) {self.days_back} reaches: Luigi would skip its dates silently; raise"
                             f" days_back to {self.days_back + (earliest - self.start).days} or more")

    def earliest(self) -> dt.date:
        """The earliest date the range reaches: Luigi starts it at `moving_start` (`days_back` before `now`, not
        capped: `--now`, else the clock), and drops a date whose midnight is before that instant."""
        now = time.time() if self.now is None else self.now
        start = self.moving_start(dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(tzinfo=None))
        return start.date() if start.time() == dt.time() else start.date() + dt.timedelta(days=1)

    def clock(self) -> dt.datetime:
        """Luigi's `--now` (seconds since the epoch) as a UTC instant, never after the clock (`business_day.capped`:
        a `--now` to come made today's date, or tomorrow's, pass as over); no `--now`: the clock."""
        return business_day.capped(None if self.now is None else dt.datetime.fromtimestamp(self.now, dt.timezone.utc))

    def moving_stop(self, now: dt.datetime) -> dt.datetime:
        """Where the range ends at `now` (naive UTC, as Luigi gives it, from `--now`), capped by the clock: before the
        first date whose business day has not ended (Luigi's own stop, `now`, took a date from its UTC midnight on,
        half a day or more of it). `days_forward`, which moved Luigi's, is refused (see __init__)."""
        capped = business_day.capped(now.replace(tzinfo=dt.timezone.utc))
        return dt.datetime.combine(business_day.first_open(capped), dt.time())

    def requires(self) -> Any:
        """Luigi's, after the settings the dates' tasks would refuse (`DailyPipeline.check_settings`: exit 35): a
        range whose dates are all published yields no task, and a broken file went unnoticed until one was not.
        The dates of the range left out, their day not over, are said once, in the log and the run summary."""
        from pipeline.tasks import command_line

        if (check := getattr(self.of_cls, "check_settings", None)) is not None:
            check()
        if not hasattr(self, "_cached_requires") and (line := business_day.left_out(self.start, self.stop,
                                                                                    self.clock())):
            logger.warning("%s", line)
            command_line.note_left_out(line)
        required = super().requires()
        if self._missing > len(required):  # Luigi's task_limit: the rest of the range never scheduled, exit 0
            del self._cached_requires  # asked again (the run summary), the range is refused again
            raise TaskLimitTooSmall(f"RangeDaily: {self._missing} date(s) of the range are not published but"
                                    f" [RangeDaily] task_limit (--task-limit) is {self.task_limit}: the backfill would"
                                    f" run {len(required)} and leave the rest; give --task-limit {self._missing} (or"
                                    " more), or a shorter range (--stop)")
        return required

    _missing = 0  # how many dates of the range Luigi found missing (_emit_metrics), before task_limit

    def _emit_metrics(self, missing_datetimes: list[dt.datetime], finite_start: Any, finite_stop: Any) -> None:
        self._missing = len(missing_datetimes)
        super()._emit_metrics(missing_datetimes, finite_start, finite_stop)


class TaskLimitTooSmall(config.BadSetting):
    """[RangeDaily] task_limit is smaller than the dates of the range to run: Luigi would leave the rest unrun."""


def _stop_waiting(task: luigi.Task, *args: Any) -> None:
    """A task's complete() or requires() raised while scheduling: let the worker exit when idle.

    Luigi marks such a task UNKNOWN, never DISABLED, so a keep-alive worker would wait forever for
    the tasks that depend on it. Turning keep-alive off (as Luigi's own SIGUSR1 phase-out does)
    lets the run finish what it can and exit with [retcode] scheduling_error; it also means no
    retries in that run.
    """
    import luigi.worker

    settings = luigi.worker.worker()  # the instance the running Worker holds (Luigi caches it)
    if settings.keep_alive:
        logger.warning("scheduling %s failed: the worker will exit once nothing is running (no retries)", task)
        settings.keep_alive = False


PipelineTask.event_handler(luigi.Event.DEPENDENCY_MISSING)(_stop_waiting)
PipelineTask.event_handler(luigi.Event.BROKEN_TASK)(_stop_waiting)
run_audit.install(PipelineTask)
