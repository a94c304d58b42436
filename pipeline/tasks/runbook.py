"""The runbook, stated once: for each kind of failure a user meets, its symptom, cause and the fix.

A failed task's explanation (what luigid shows and the failure e-mail carries, see
`PipelineTask.on_failure`) names the kind and its fix for that date; docs/operations.md#runbook
prints the same table (a test keeps the page and this list in step).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import functools
import re
import shlex
import sys

import psycopg

from pipeline import lake

RUNBOOK = "docs/operations.md#runbook"
DAILY = "luigi --module pipeline.tasks DailyPipeline --date {date}"
LOCAL_SCHEDULER = " --local-scheduler"  # how a run without luigid (the README's daily command) gives it


def daily_command(day: dt.date | str, *, local_scheduler: bool = True) -> str:
    """The daily command of a date; by default in the README's form, which works whether or not luigid runs."""
    return DAILY.format(date=day) + (LOCAL_SCHEDULER if local_scheduler else "")


@dataclasses.dataclass(frozen=True)
class Remedy:
    """One kind of failure: how it shows, why, and the command(s) that fix it ({date} = the load date)."""

    kind: str
    exit_code: str
    symptom: str
    cause: str
    fix: str
    errors: tuple[str, ...] = ()  # exception class names (of the error or what it was raised from)
    own_fix: str = ""  # a regex: the command an error's message gives for itself (its group that matched) is the fix
    reruns: bool = False  # its fix reruns the date in words, not by the daily command (the gate's "rerun it with")

    def fix_for(self, day: dt.date | str | None, *, local_scheduler: bool = False, message: str = "",
                failed: bool = False) -> str:
        """The fix for a date; local_scheduler=True: its daily command for a run without luigid, as it was run.

        `message`: the error's; when it names its own command (`own_fix`), that command is the fix.
        `failed`: a task of the date failed through luigid, which disabled it (every task has
        retry_count = 1): a fix that reruns the date (its daily command, or `reruns`) re-enables it first.
        """
        if own := self.named_by(message):
            return own
        fix = self.fix.replace(DAILY, DAILY + (LOCAL_SCHEDULER if local_scheduler else _luigid_option()))
        fix = fix.replace("{date}", str(day) if day else "<date>")
        if failed and not local_scheduler and (self.reruns or DAILY.format(date=day) in fix) and "reenable" not in fix:
            fix += (f"; luigid disabled the failed task: first `python -m pipeline reenable --date {day}"
                    f"{_luigid_option()}` (or run the date with --local-scheduler)")
        return fix

    def named_by(self, message: str) -> str | None:
        """The fix when the error's message names its own command (`own_fix`): that command; else None."""
        if self.own_fix and (found := re.search(self.own_fix, message)):
            return f"`{found.group(found.lastindex)}`, as the error says"
        return None

    def fix_rerunning(self, command: str, day: str = "<date>") -> str:
        """The fix for a command other than the daily run that met this failure: it reruns that command."""
        return self.fix.replace(DAILY, command).replace("{date}", day)


UNUSUAL_DAY = "; a day that really is unusual: rerun it with "
GATE_EXAMPLE = "the threshold the message names, e.g. `--checks-lost-fail-pct 100`"
THRESHOLD_OPTION = re.compile(r"--checks-[a-z-]+ \d+(?:\.\d+)?")  # as the checks' advice names them


def gate_fix(day: dt.date, messages: list[str | None], *, local_scheduler: bool = False) -> str:
    """The gate's fix for a date, with the threshold options the messages of the checks that blocked it name.

    Not every check's message names one (an empty day, unknown products): for those, the fix points
    to their thresholds in luigi.cfg [checks], each also an option for one run (`--checks-<name>`).
    A blocked date's gate task failed: through luigid, which disabled it, the fix re-enables it first.
    """
    fix = by_kind("gate blocked").fix_for(day, local_scheduler=local_scheduler, failed=True)
    options = sorted({found.group(0) for text in messages for found in THRESHOLD_OPTION.finditer(text or "")})
    if options and all(THRESHOLD_OPTION.search(text or "") for text in messages):
        return fix.replace(GATE_EXAMPLE, f"`{' '.join(options)}`")
    thresholds = "luigi.cfg [checks] threshold{} (`--checks-<name> <value>` for one run)"
    if options:
        return fix.replace(GATE_EXAMPLE, f"`{' '.join(options)}` and, for the failing checks that name none, their"
                           f" {thresholds.format('s')}")
    return fix.replace(GATE_EXAMPLE, f"the {thresholds.format(' of each failing check')}")


def _luigid_option() -> str:
    """` --scheduler-url URL` when this process's run was given another luigid than luigi.cfg's (else "")."""
    from pipeline.tasks import central

    return central.luigid_option(central.configured_url())


REMEDIES: tuple[Remedy, ...] = (
    Remedy("missing file", "30",
           "`FAILED`, `LandOrders: SourceFileMissing: orders for D: expected data/incoming/orders/D/orders.json`",
           "the day's file is not in the incoming folder (not delivered, wrong name or folder)",
           f"put the file where the message says, then `{DAILY}`", ("SourceFileMissing",)),
    Remedy("invalid file", "30",
           "`FAILED`, `LandOrders: SourceFileInvalid: ...` (cut off, wrong delimiter), `UnexpectedSourceFiles: ...` (a"
           " second file in the folder), `SourceFileCompressed: ...`, `UnsafeSourcePath: ...` (a link out of the folder)",
           "the file cannot be read as its format (cut off, a compression it cannot read), or its folder holds other"
           " files or a link to a file elsewhere",
           "do what the message says (a complete file from the sender, the extra file moved out of the folder, the file"
           f" copied in instead of linked), then `{DAILY}`",
           ("SourceFileInvalid",)),
    Remedy("changed source file", "30",
           "`FAILED` (a published date: `published, source CHANGED`), `SourcesUnchanged: SourceChanged: orders for D:"
           " size ... changed since it was landed`",
           "an incoming file changed after its date was landed; landed data is immutable",
           "`python -m pipeline restate --date {date}` (lands the new file, republishes the date; a"
           " catalog snapshot: `restate --catalog products --date <its date>`, as its message says);"
           f" or put the original file back (a file added beside it: move that out), then `{DAILY}`", ("SourceChanged",),
           own_fix=r"`(python -m pipeline restate --catalog [^`]+)`"
                   r"|rebuild the date from it: `(python -m pipeline restate [^`]+)`"),
    Remedy("late catalog snapshot", "30",
           "`FAILED`, `SourcesUnchanged: CatalogArrivedLate: the products snapshot of S arrived after D was built`;"
           " the run that landed it warns so, and `summary` shows the date `published, catalog LATE`",
           "a weekly catalog file was delivered after dates it feeds were built: they kept the catalog before it",
           "`python -m pipeline restate --catalog products --date <the snapshot's date>` (as the message says:"
           " rebuilds and republishes the dates the snapshot feeds)", ("CatalogArrivedLate",)),
    Remedy("catalog API failing", "30",
           "`FAILED`, `LandProducts: CatalogApiTransientError: GET .../products?limit=100&skip=0 failed 4 times, last:"
           " HTTP 503` after lines `... this can heal, will retry: attempt 2 of 3 at HH:MM:SS`, or at once"
           " `CatalogApiBadResponse: ...` (not JSON, the wrong shape, short pages, no records, the catalog changed"
           " while it was read)",
           "the products or users API (`[catalog] products_url` / `users_url`, `ECOMM_PRODUCTS_URL` /"
           " `ECOMM_USERS_URL`) is down, unreachable or answers what its contract does not allow; nothing was"
           " landed, and the dates that snapshot covers wait for it",
           "check the URL and the API; once it answers, `" + DAILY + "`. Or land the week's snapshot from a file:"
           " put `products/products_<snapshot date>.json` (`users/users_<snapshot date>.json`) in the incoming"
           " folder and set that URL empty",
           ("CatalogApiTransientError", "CatalogApiBadResponse")),
    Remedy("gate blocked", "30",
           "`BLOCKED by the quality gate` with the failing checks; `audit.dq_failures` holds them",
           "a check with a `fail` rule failed: the data is incomplete or wrong (volume, loss, keys ...)",
           "read why (`python -m pipeline summary --date {date}` prints each failing check's message), fix the"
           " file and `python -m pipeline restate --date {date}`" + UNUSUAL_DAY + GATE_EXAMPLE, ("QualityGateFailed",),
           reruns=True),
    Remedy("not ready", "20",
           "`NOT READY (orders: no ready marker)`",
           "`[landing] ready_marker` is set and the sender has not written it yet",
           f"nothing to fix: run the date again once the marker is there (`{DAILY}`)", ("SourceNotReady",)),
    Remedy("Postgres down", "30",
           "`Preload...: OperationalError: connection ... refused`, after lines"
           " `... this can heal, will retry: attempt 2 of 4 at HH:MM:SS`",
           "the serving Postgres cannot be reached (stopped, restarting, wrong host or port); the lake steps"
           " still ran and stay done",
           f"start it (`python -m pipeline.serving.pg start` for the embedded one) or fix `ECOMM_PG_DSN`, then `{DAILY}`",
           ("PostgresUnreachable", "EmbeddedServerError")),
    Remedy("Postgres refuses", "35",
           "`database \"x\" does not exist`, `password authentication failed`, `role ... does not exist`,"
           " `server does not support SSL, but SSL was required`",
           "Postgres answers but refuses the configured database, role or password, or the connection settings"
           " cannot work (an `sslmode` the server does not offer, an invalid option value): a setting, not an outage",
           f"fix `ECOMM_PG_DSN` / `PG*` / `~/.pgpass`, then `{DAILY}`", ("PostgresRefuses",)),
    Remedy("Postgres permission denied", "30",
           "`InsufficientPrivilege: permission denied for database ecomm` (a new database), `... for schema audit` or"
           " `PublishError: ... permission denied for table publish_log`",
           "the pipeline's login lacks a privilege: on a new database the owner has not run the migrations yet, or"
           " the login is not (or no longer) a member of `ecomm_writer`, or a grant to that role was revoked",
           "as the database's owner: `python -m pipeline migrate` (a new database), `grant ecomm_writer to <the"
           " pipeline's login>`, or the grant the message names (the `grant ... to ecomm_writer` lines of"
           f" `sql/serving/`); then `{DAILY}`", ("InsufficientPrivilege",)),
    Remedy("publish locked", "30",
           "`Publish: PublishLocked: publishing D failed: swapping in the partitions of D: warehouse.fact_orders_all"
           " ... stayed locked by pid N (bi_reader ...) with AccessShareLock on ... through 15 waits of 2s`, after lines"
           " `... locked by pid N ...; let go after 2s so queued readers go on, will retry`",
           "republishing a date replaces its partitions, which waits for every session reading them; a BI session"
           " kept its transaction open (a tool idle in a transaction, a query of hours) through every wait of"
           " `[publish] lock_timeout` x `lock_attempts`, or another pipeline process held the date longer than"
           " `pipeline_lock_timeout`. The publish was rolled back: readers still see the date as it was",
           "end the session the message names (as the serving owner: `select pg_terminate_backend(N)`), or let it"
           " finish; give every BI login the session limits of docs/schema.md#bi-session-limits (defaults a session can turn off);"
           f" then `{DAILY}`", ("PublishLocked", "LockWaitTimeout", "PipelineLockBusy")),
    Remedy("serving mismatch", "30",
           "`Publish: ServingMismatch: the serving tables do not match the lake; republish the date: ...`, and"
           " `published, NOT RECONCILED` in the summary",
           "after the publish committed, the date's serving tables did not hold the lake's rows or revenue (changed"
           " in Postgres since, by hand or by another tool); BI reads them as they are",
           f"republish the date from the lake: `{DAILY} --force` (docs/serving.md)", ("ServingMismatch",)),
    Remedy("schema migration", "30",
           "`MigrationError: .../sql/serving/0NN_....sql: must be owner of table ...` (or `: permission denied`) (a"
           " preload or the publish), after an upgrade",
           "a newer version's serving migrations need the database's owner, and the pipeline's login is not it",
           f"the database owner runs `python -m pipeline migrate` (docs/operations.md#upgrading), then `{DAILY}`",
           ("MigrationError",)),
    Remedy("broken manifest", "35",
           "`LandOrders could not be scheduled: ManifestUnreadable: .../raw/orders/load_date=D/_manifest.json cannot be"
           " read (...)` (or `DailyPipeline could not be scheduled: ...` for a published date)",
           "a raw partition's manifest, its completion marker, written atomically by the landing, was changed or"
           " damaged by something else",
           f"remove the partition folder the message names, then `{DAILY}`: it lands the incoming file again or, for a"
           " date already built from it, names the `restate` command that does (and rebuilds the date from it)",
           ("ManifestUnreadable",)),
    Remedy("lake unreadable", "35",
           "`LakeUnreadable: s3://.../_manifest.json cannot be read: ... AWS Error ACCESS_DENIED ...` or"
           " `LakeUnreadable: the lake's bucket 'B' does not exist ...` or `LakeUnreadable: the lake folder ... cannot"
           " be written by user U ...` while scheduling (exit 35), or a task failing with `LakeUnreadable: ... cannot be"
           " written: ... AWS Error ...` (or `... Permission denied ...; the lake is a folder user U may not write`)"
           " or `OSError: ... AWS Error NETWORK_CONNECTION ...` (exit 30);"
           " a `python -m pipeline` command or `python -m pipeline.lake.views`: one line, `<command>: error: the lake's"
           " store refused or did not answer: ... AWS Error ...` (exit 35)",
           "the lake's store refused or did not answer: wrong credentials, `AWS_ENDPOINT_URL` or region, a bucket"
           " that does not exist, the store down; for a folder lake, permissions or a read-only mount. The lake's data"
           " is not at fault",
           "fix the access (a folder: run as its owner, e.g. cron's user, or give that user write access, or remount it"
           f" read-write; an s3:// lake: docs/scaling-out.md; remove nothing), then `{DAILY}`",
           ("LakeUnreadable",)),
    Remedy("lake folder missing", "35",
           "`LakeFolderMissing: the lake folder L does not exist, but the serving Postgres publishes N date(s) built"
           " from a lake ...` while scheduling, or from `python -m pipeline summary`",
           "ECOMM_LAKE_DIR or `[paths] lake_dir` names a folder that is not there (a typo, a disk not mounted) while"
           " Postgres publishes dates built from a lake: they would count as published from no lake, and the next date"
           " would start a second lake there",
           f"name the lake's folder (or mount its disk), then `{DAILY}`; to start a new lake in that folder on purpose,"
           " create it first (`mkdir -p <folder>`)",
           ("LakeFolderMissing",)),
    Remedy("disk full", "30",
           "`OSError: [Errno 28] No space left on device` (or DuckDB's `No space left on device`)",
           "the lake's or the temporary folder's disk is full; partial files are never renamed into place",
           f"free space (old `lake/_archive`, `lake/_logs`, the temp dir), then `{DAILY}`"),
    Remedy("Postgres disk full", "30",
           "`FAILED`, `PreloadFactOrders: PublishError: preloading fact_orders of D failed: the serving Postgres's disk"
           " is full (could not extend file \"base/...\": No space left on device); it was rolled back` (or `... wrote"
           " only 4096 of 8192 bytes at block N`); a disk so full that no session starts: `OperationalError: ... FATAL:"
           " could not write init file` (exit 35)",
           "the disk under the serving Postgres's data folder is full (SQLSTATE 53100 disk_full): not the lake's disk,"
           " not the date's rows; the write was rolled back and BI still sees what was published before",
           "free space on the serving Postgres's disk: for the embedded server, the disk of its data folder"
           " (`ECOMM_PG_DATA`, else `[postgres] embedded_dir`, by default `.pgdata`), or move that folder to a bigger"
           f" disk; another server: its administrator frees or adds space; then `{DAILY}`", ("DiskFull",)),
    Remedy("DuckDB out of memory", "30",
           "`FAILED`, `LandEvents: DuckDBOutOfMemory: DuckDB ran out of memory under [duckdb] memory_limit = 50MB"
           " (failed to allocate data of size 4.0 MiB ...)`, often in several tasks of the date",
           "a task's DuckDB needed more than `[duckdb] memory_limit` (each task process's own) for the day's size;"
           " the data is not at fault, and the step wrote nothing",
           "raise `[duckdb] memory_limit` (in luigi.cfg or the file `LUIGI_CONFIG_PATH` names; about `[core] workers`"
           " x `memory_limit`, plus Postgres, must fit the machine's memory; fewer workers leave room for more), or"
           f" set `[duckdb] threads = 1` (each thread holds its own share) (docs/performance.md#bigger-days); then `{DAILY}`",
           ("DuckDBOutOfMemory", "OutOfMemoryException")),
    Remedy("disabled in luigid", "25",
           "`not published` and `DISABLED in luigid` in the summary; Luigi says `not granted run permission`",
           "a task failed its last attempt, so luigid refuses it for `[scheduler] disable_persist` seconds",
           f"fix the cause, then `python -m pipeline reenable --date {{date}}` and `{DAILY}`"
           " (or run the date with `--local-scheduler`)", ()),
)
BY_ERROR = {name: remedy for remedy in REMEDIES for name in remedy.errors}


def _causes(error: BaseException):
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _disk_full(error: BaseException) -> bool:
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error)


# Postgres's words for its own full disk (SQLSTATE 53100), as a publish error carries them: never the lake's
PG_DISK_FULL = re.compile(r"the serving Postgres's disk is full|could not extend file \"|"
                          r"wrote only \d+ of \d+ bytes at block \d+|could not write init file")


def _pg_disk_full(error: BaseException) -> bool:  # psycopg's DiskFull (SQLSTATE 53100) is found by its name
    return PG_DISK_FULL.search(str(error)) is not None


def remedy_for(error: BaseException) -> Remedy | None:
    """The runbook entry of an error (None: not a kind the runbook knows)."""
    from pipeline.serving import retry

    for current in _causes(error):
        for cls in type(current).__mro__:
            if cls.__name__ in BY_ERROR:
                return BY_ERROR[cls.__name__]
        if _pg_disk_full(current):  # before a refused connection: a full disk refuses new sessions too
            return BY_ERROR["DiskFull"]
        if isinstance(current, psycopg.OperationalError):
            return BY_ERROR["PostgresUnreachable" if retry.postgres_unreachable(current) else "PostgresRefuses"]
        if _disk_full(current):
            return by_kind("disk full")
        # a PermissionError may be an incoming file's: the lake's only when it names a path in the lake's folder
        if lake.store_error(current) or lake.folder_refused(current):
            return BY_ERROR["LakeUnreadable"]
    return None


# Postgres's words (a folder's OSError says "Permission denied"), and a server stopped under a connection
PG_PERMISSION = re.compile(r"permission denied for (database|schema|table|relation|sequence|function|view)\b")
SERVER_WENT_AWAY = ("terminating connection due to administrator command", "server closed the connection unexpectedly",
                    "the database system is shutting down")


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


@functools.lru_cache(maxsize=64)
def _known_as(name: str) -> str | None:
    """The name the runbook knows an error class named `name` by: its own, or its nearest base class's (a recorded
    `UnexpectedSourceFiles: ...` is a SourceFileInvalid); None: neither (or no such class is loaded)."""
    if name in BY_ERROR:
        return name
    for cls in _subclasses(Exception):
        if cls.__name__ == name:
            return next((base.__name__ for base in cls.__mro__ if base.__name__ in BY_ERROR), None)
    return None


def remedy_for_text(message: str | None) -> Remedy | None:
    """The runbook entry of a recorded error message (`<ErrorClass>: <text>`, as the run audit keeps it)."""
    from pipeline.serving import retry

    name = (message or "").split(":", 1)[0].strip()
    if known := _known_as(name):
        return BY_ERROR[known]
    if name == "OperationalError" and not PG_DISK_FULL.search(message or ""):
        return BY_ERROR["PostgresUnreachable" if retry.postgres_unreachable(message or "") else "PostgresRefuses"]
    if PG_PERMISSION.search(message or ""):  # also inside a PublishError's message
        return BY_ERROR["InsufficientPrivilege"]
    if any(gone in (message or "") for gone in SERVER_WENT_AWAY):
        return BY_ERROR["PostgresUnreachable"]
    if PG_DISK_FULL.search(message or ""):  # before the lake's words: Postgres's message may hold them too
        return BY_ERROR["DiskFull"]
    if "No space left on device" in (message or ""):
        return by_kind("disk full")
    if lake.STORE_ERROR in (message or ""):  # pyarrow's OSError, or DuckDB's error carrying its text
        return BY_ERROR["LakeUnreadable"]
    return None


def told(prog: str, argv: list[str], error: BaseException) -> int | None:
    """For a command (`prog` with `argv`, not the daily run) that met a failure the runbook knows: print its one line
    (what, why, and the fix, which reruns that command) to stderr and return its exit code; None for any other error."""
    remedy = remedy_for(error)
    if remedy is None:
        return None
    causes = list(_causes(error))
    command = shlex.join([*prog.split(), *argv])
    if remedy.kind == "lake unreadable":  # the store's own words, not the object's: the lake's data is not at fault
        words = next((lake.store_words(cause) for cause in causes if lake.store_error(cause)), reason(causes[-1]))
        what, _, why = remedy.cause.partition(": ")
        said = f"{what}: {words.rstrip('.')}. Why: {why}"
    else:
        said = f"{reason(error).rstrip('.')}. Why: {remedy.cause}"
    day = argv[argv.index("--date") + 1] if "--date" in argv[:-1] else "<date>"
    fix = remedy.named_by(str(error)) or remedy.fix_rerunning(command, day)
    print(f"{prog}: error: {said}. What to do: {fix} ({RUNBOOK}: {remedy.kind})", file=sys.stderr)
    return int(remedy.exit_code)


def by_kind(kind: str) -> Remedy:
    """The runbook entry named `kind`."""
    return next(remedy for remedy in REMEDIES if remedy.kind == kind)


def reason(error: BaseException) -> str:
    """An error in one line: `<ErrorClass>: <its message's first line>`, then its notes (`add_note`), `; ` apart."""
    text = str(error).strip()
    line = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
    return "; ".join([line, *(str(note) for note in getattr(error, "__notes__", ()))])


def explain(task_family: str, day: dt.date | None, error: BaseException, *, local_scheduler: bool = False) -> str:
    """A failed task in three lines: what failed and why, what to do, where the runbook is.

    local_scheduler=True: the task ran without luigid, so its fix reruns the date that way too; through
    luigid the fix first re-enables the task luigid disabled.
    """
    lines = [f"{task_family}{f' for {day}' if day else ''} failed: {reason(error)}"]
    remedy = remedy_for(error)
    if remedy is not None:
        fix = remedy.fix_for(day, local_scheduler=local_scheduler, message=str(error), failed=True)
        lines.append(f"What to do ({remedy.kind}): {fix}")
    lines.append(f"Runbook: {RUNBOOK}")
    return "\n".join(lines)


def markdown_table() -> str:
    """The runbook as the Markdown table of docs/operations.md (between its ops:runbook markers)."""
    rows = ["| failure | exit | symptom | cause | fix |", "|---|---|---|---|---|"]
    rows += [f"| {r.kind} | `{r.exit_code}` | {r.symptom} | {r.cause} | {r.fix_for('D')} |" for r in REMEDIES]
    return "\n".join(rows)
