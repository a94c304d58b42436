"""The runbook's table, stated once: for each kind of failure a user meets, its symptom, cause and the fix.

Each entry is a `pipeline.tasks.remedy.Remedy`, whose `fix_for` words a kind's fix for one date (the daily
command as it was run, the `restate` command a pending restatement of the date needs); `pipeline.tasks.runbook`
finds the kind of an error and explains a failed task with it, and `pipeline.tasks.gate_remedy.gate_fix` a
blocked date. docs/operations.md#runbook prints this table
(`markdown_table`; a test keeps the page and this list in step).
"""
from __future__ import annotations

import re

from pipeline.tasks.lost_tasks import TIMEOUT_OPTION, TIMEOUT_SETTING
from pipeline.tasks.remedy import (  # re-exported: the runbook's names, importable from the table's module
    DAILY,
    LOCAL_SCHEDULER,
    RESTATE,
    RUNBOOK,
    TERMINATE,
    Remedy,
    daily_command,
    pending_restate,
)

__all__ = ["DAILY", "LOCAL_SCHEDULER", "RESTATE", "RUNBOOK", "TERMINATE", "Remedy", "daily_command", "pending_restate",
           "REMEDIES", "BY_ERROR", "by_kind", "markdown_table"]

UNUSUAL_DAY = "; a day that really is unusual: rerun it with "
GATE_EXAMPLE = "the threshold the message names, e.g. `--checks-lost-fail-pct 100`"
THRESHOLD_OPTION = re.compile(r"--checks-[a-z-]+ \d+(?:\.\d+)?")  # as the checks' advice names them
FIX_FILE = "fix the file and " + RESTATE  # a daily file's fix (the gate's for a date its catalog checks did not block)
FIX_CATALOG = ("fix the catalog (the API's answer or the snapshot file) and {commands} (lands the catalog's snapshot"
               " covering the date again, and rebuilds and republishes every date it feeds; `restate --date` does not)")
# publishing a catalog's quarantined members away is the checks' documented last resort, not the fix
UNUSUAL_CATALOG = ("; only a catalog that really is like that (not a broken export or API answer), knowing that the"
                   " date is then published without the catalog's quarantined members (most of it, when most was"
                   " quarantined): rerun it with ")


REMEDIES: tuple[Remedy, ...] = (
    Remedy("missing file", "30",
           "`FAILED`, `LandOrders: SourceFileMissing: orders for D: expected data/incoming/orders/D/orders.json`",
           "the day's file is not in the incoming folder (not delivered, wrong name or folder)",
           f"put the file where the message says, then `{DAILY}`", ("SourceFileMissing",)),
    Remedy("invalid file", "30",
           "`FAILED`, `LandOrders: SourceFileInvalid: ...` (cut off, wrong delimiter), `UnexpectedSourceFiles: ...` (a"
           " second file in the folder, a misnamed file: `orders.JSON`, `users_D (1).json`), `SourceFileCompressed:"
           " ...`, `UnsafeSourcePath: ...` (a link out of the folder)",
           "the file cannot be read as its format (cut off, a compression it cannot read), or its folder holds other"
           " files, a file under a name nobody reads, or a link to a file elsewhere",
           "do what the message says (a complete file from the sender, the extra file moved out of the folder, the file"
           f" renamed to the name it gives, the file copied in instead of linked), then `{DAILY}`",
           ("SourceFileInvalid",)),
    Remedy("changed source file", "30",
           "`FAILED` (a published date: `published, source CHANGED`), `SourcesUnchanged: SourceChanged: orders for D:"
           " size ... changed since it was landed`",
           "an incoming file changed after its date was landed; landed data is immutable",
           "`python -m pipeline restate --date {date}` (lands the new file, republishes the date; a"
           " catalog snapshot: `restate --catalog products --date <its date>`, as its message says);"
           f" or put the original file back (a file added beside it: move that out), then `{DAILY}`", ("SourceChanged",),
           own_fix=r"`(python -m pipeline restate --catalog [^`]+)`"
                   r"|rebuild the date from it: `(python -m pipeline restate [^`]+)`"
                   r"|(give each deployment its own ECOMM_LAKE_DIR)"),
    Remedy("late catalog snapshot", "30",
           "`FAILED`, `SourcesUnchanged: CatalogArrivedLate: the products snapshot of S arrived after D was built`;"
           " the run that landed it warns so, and `summary` shows the date `published, catalog LATE`",
           "a weekly catalog file was delivered after dates it feeds were built: they kept the catalog before it",
           "`python -m pipeline restate --catalog products --date <the snapshot's date>` (as the message says:"
           " rebuilds and republishes the dates the snapshot feeds)", ("CatalogArrivedLate",)),
    Remedy("catalog changing while read", "30",
           "`FAILED`, `LandProducts: CatalogChangedWhileRead: GET .../products?limit=100&skip=100: total=189, the first"
           " page said total=194; the catalog changed while it was read ...; the catalog kept changing while it was"
           " read: gave up after 3 attempts ([catalog] attempts)` (or `... came on an earlier page too ...`) after"
           " lines `... this can heal, will retry: attempt 2 of 3 at HH:MM:SS ZONE`",
           "the products or users API's catalog changed between the pages of every fetch (items added or deleted"
           " while it was read: offset pagination is not a snapshot), e.g. a bulk update on the API's side that"
           " outlasted `[catalog] attempts` x `retry_delay_seconds`; the API is not broken, nothing was landed, and"
           " the dates that snapshot covers wait for it",
           "the catalog kept changing while read: once its update is over, `" + DAILY + "`; for updates that last"
           " longer, raise `[catalog] retry_delay_seconds` (or `attempts`), or land the week's snapshot from a file:"
           " put `products/products_<snapshot date>.json` (`users/users_<snapshot date>.json`) in the incoming"
           " folder and set that URL empty",
           ("CatalogChangedWhileRead",)),
    Remedy("catalog API failing", "30",
           "`FAILED`, `LandProducts: CatalogApiTransientError: GET .../products?limit=100&skip=0 failed 4 times, last:"
           " HTTP 503` after lines `... this can heal, will retry: attempt 2 of 3 at HH:MM:SS ZONE`, or at once"
           " `CatalogApiBadResponse: ...` (not JSON, the wrong shape, short pages, no records, an id served twice"
           " within a page)",
           "the products or users API (`[catalog] products_url` / `users_url`, `ECOMM_PRODUCTS_URL` /"
           " `ECOMM_USERS_URL`) is down, unreachable or answers what its contract does not allow; nothing was"
           " landed, and the dates that snapshot covers wait for it",
           "check the URL and the API; once it answers, `" + DAILY + "`. Or land the week's snapshot from a file:"
           " put `products/products_<snapshot date>.json` (`users/users_<snapshot date>.json`) in the incoming"
           " folder and set that URL empty",
           ("CatalogApiTransientError", "CatalogApiBadResponse")),
    Remedy("gate blocked", "30",
           "`BLOCKED by the quality gate` with the failing checks; `audit.dq_failures` holds them (the latest gate"
           " run's outcomes; `audit.dq_failure_log` keeps every gate run's, e.g. to compare with an earlier run)",
           "a check with a `fail` rule failed: the data is incomplete or wrong (volume, loss, keys ...)",
           "read why (`python -m pipeline summary --date {date}` prints each failing check's message), "
           + FIX_FILE + UNUSUAL_DAY + GATE_EXAMPLE, ("QualityGateFailed",), reruns=True, restates=True,
           table_note="a catalog's checks (`share of products thrown away`, `catalog_snapshots`,"
                      " dim_product_history): "
                      + FIX_CATALOG.format(commands="`python -m pipeline restate --catalog KIND --date S`")
                      + UNUSUAL_CATALOG + GATE_EXAMPLE),
    Remedy("checks file", "30",
           "`QualityGate failed: ChecksVariableUnknown: .../checks/warehouse/fact_orders.yml uses ${x}, which no"
           " setting gives ...` (or `NoChecksParsed: ... parsed to zero checks ...`, `... does not exist`)",
           "a SodaCL file under `[checks] checks_dir` cannot be used as it is: missing, without checks, not SodaCL,"
           " or using a `${variable}` no setting gives; the gate judges nothing rather than pass the date",
           f"fix the file the message names (docs/quality-gate.md), then `{DAILY}`", ("ChecksFileInvalid",)),
    Remedy("not ready", "20",
           "`NOT READY (orders: no ready marker)`",
           "`[landing] ready_marker` is set and the sender has not written it yet",
           f"nothing to fix: run the date again once the marker is there (`{DAILY}`)", ("SourceNotReady",)),
    Remedy("Postgres connection slots full", "30",
           "`OperationalError: ... FATAL:  remaining connection slots are reserved for roles with the SUPERUSER"
           " attribute` (or `... sorry, too many clients already`, SQLSTATE 53300), after one retry",
           "every connection slot the pipeline's login may use is taken by other sessions, usually BI logins (a tool's"
           " connection pool, dashboards left open): Postgres is up, it has no room for the pipeline",
           "see who holds the slots, as a superuser: `select usename, split_part(application_name, ' pid=', 1),"
           " count(*) from pg_stat_activity group by 1, 2 order by 3 desc`; end the idle ones (`select pg_terminate_backend(pid)`),"
           " then give the BI login a limit below `max_connections` (`alter role bi_reader connection limit 40`) or"
           " raise `max_connections`; on PostgreSQL 16 set `reserved_connections` (e.g. 5): migration 047 lets"
           f" ecomm_writer use those slots (docs/serving.md#connection-slots); then `{DAILY}`",
           ("PostgresSlotsFull", "TooManyConnections")),
    Remedy("Postgres down", "30",
           "`Preload...: OperationalError: connection ... refused`, after lines"
           " `... this can heal, will retry: attempt 2 of 4 at HH:MM:SS ZONE`; after a publish (`published, NOT"
           " RECONCILED`): `Publish: ServingChecksUnreachable: the serving checks cannot reach the serving Postgres`",
           "the serving Postgres cannot be reached (stopped, restarting, wrong host or port); the lake steps"
           " still ran and stay done",
           f"start it (`python -m pipeline.serving.pg start` for the embedded one) or fix `ECOMM_PG_DSN`, then `{DAILY}`",
           ("PostgresUnreachable", "EmbeddedServerError", "ServingChecksUnreachable")),
    Remedy("Postgres port in use", "35",
           "`EmbeddedPortInUse: port N on 127.0.0.1 is in use; set ECOMM_PG_PORT or [postgres] embedded_port to a free"
           " port`",
           "another program listens on the embedded server's port, often the embedded Postgres of another deployment"
           " on the same host; starting the server (`pg start`) fails the same way",
           "give this deployment its own port: `ECOMM_PG_PORT` (in the environment its cron line runs with) or"
           f" `[postgres] embedded_port`, set to a free one; then `{DAILY}`", ("EmbeddedPortInUse",)),
    Remedy("Postgres port setting", "35",
           "`EmbeddedPortMismatch: the embedded Postgres in .pgdata (ECOMM_PG_DATA) runs on port A, but ECOMM_PG_PORT"
           " is B: ...`, `EmbeddedPortInvalid: ECOMM_PG_PORT='abc' is not a TCP port (1-65535)`",
           "the embedded server's port (`ECOMM_PG_PORT`, else `[postgres] embedded_port`) is no TCP port, or the server"
           " running in the data folder was started on another port than the one configured now; such a server is"
           " not adopted, as BI tools use the configured port",
           "set the port as the message says (1-65535; the one the running server uses), or stop the server"
           " (`python -m pipeline.serving.pg stop`, which ends its sessions, BI tools' too) so that it starts on the"
           f" configured one; then `{DAILY}`",
           ("EmbeddedPortMismatch", "EmbeddedPortInvalid")),
    Remedy("Postgres data folder", "35",
           "`EmbeddedDataPathInvalid: ECOMM_PG_DATA '/srv/a$b/pg' holds '$b', which the embedded Postgres cannot take"
           " in its data folder's path ...`",
           "the embedded server's data folder (`ECOMM_PG_DATA`, else `[postgres] embedded_dir`) has in its path what"
           " pg_ctl's /bin/sh reads inside double quotes (`\"`, a backtick, `$(`, `$NAME`, `${`, a `\\` before `$`),"
           " or a `,` while the socket sits in the data folder (Postgres splits its socket folders there); nothing"
           " was started. `stop`, `status` and other commands take such a path",
           "give it a path without those characters (or point `ECOMM_PG_DATA` at a link without them); then"
           f" `{DAILY}`", ("EmbeddedDataPathInvalid",)),
    Remedy("Postgres of another user", "35",
           "`EmbeddedDataFolderNotYours: the embedded Postgres's data folder D belongs to pgserver (mode 0700) and user"
           " U cannot use it ...`",
           "the embedded server's data folder is another user's (one that root started is `pgserver`'s, mode 0700):"
           " this user may not start, stop or look into it, though the server may well run",
           "run the command as that user (root, for a server root started), or give this user its own `ECOMM_PG_DATA`"
           f" (or `ECOMM_PG_DSN`); then `{DAILY}`", ("EmbeddedDataFolderNotYours",)),
    Remedy("Postgres refuses", "35",
           "`database \"x\" does not exist`, `password authentication failed`, `fe_sendauth: no password supplied`,"
           " `role ... does not exist`, `server does not support SSL, but SSL was required`",
           "Postgres answers but refuses the configured database, role or password, or the connection settings"
           " cannot work (an `sslmode` the server does not offer, an invalid option value): a setting, not an outage",
           f"fix `ECOMM_PG_DSN` / `PG*` / `~/.pgpass`, then `{DAILY}`", ("PostgresRefuses",)),
    Remedy("serving checks refused", "30",
           "`FAILED`, `Publish: ServingChecksRefused: the serving Postgres (...) refuses the serving checks'"
           " connection: server does not support SSL, but SSL was required` (or `fe_sendauth: ...`, or `... the"
           " serving checks' libpq (libpq 17...) does not know the connection option 'X' of the DSN ...`), and"
           " `published, NOT RECONCILED` in the summary",
           "the publish committed (BI reads the date), but the serving reconciliation's own connection was refused:"
           " most often a remote server without SSL, which the publish reaches with libpq's `prefer` while the checks"
           " require TLS for a host that is not local (docs/security.md), or a DSN option only the publish's newer"
           " libpq knows; the checks file and the data are not at fault",
           "give the server SSL, or name the `sslmode` in `ECOMM_PG_DSN` (or `[checks] serving_sslmode`:"
           " `verify-full`, `verify-ca`); leave out an option the message says the checks' libpq does not know; a"
           f" login or password: fix `ECOMM_PG_DSN` / `PG*` / `~/.pgpass`; then `{DAILY}` (it reconciles the"
           " published date)", ("ServingChecksRefused",)),
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
           " ... stayed locked by pid N (bi_reader ...) holding AccessShareLock on ... and 14 of its partitions through 15 waits of 2s`, after lines"
           " `... locked by pid N ...; let go after 2s so queued readers go on, will retry`; or, while scheduling"
           " (exit 35), `DailyPipeline could not be scheduled: LockWaitTimeout: reading which dates are published:"
           " audit.publish_log stayed locked by pid N ...`",
           "republishing a date replaces its partitions, which waits for every session reading them; a BI session"
           " kept its transaction open (a tool idle in a transaction, a query of hours) through every wait of"
           " `[publish] lock_timeout` x `lock_attempts`, or another pipeline process held the date longer than"
           " `pipeline_lock_timeout`. The publish was rolled back: readers still see the date as it was. While"
           " scheduling: a session held audit.publish_log locked (a DBA's `lock table`, a stuck migration) through the same waits",
           f"end the session the message names (as the serving owner: {TERMINATE}), or let it"
           " finish; give every BI login the session limits of docs/schema.md#bi-session-limits (defaults a session can turn off);"
           f" then `{DAILY}`", ("PublishLocked", "LockWaitTimeout", "PipelineLockBusy"), names_pids=True),
    Remedy("serving mismatch", "30",
           "`Publish: ServingMismatch: the serving tables do not match the lake; republish the date: ...`, and"
           " `published, NOT RECONCILED` in the summary",
           "after the publish committed, the date's serving tables did not hold the lake's rows or revenue (changed"
           " in Postgres since, by hand or by another tool); BI reads them as they are",
           f"republish the date from the lake: `{DAILY} --force` (docs/serving.md)", ("ServingMismatch",)),
    Remedy("marts inconsistent", "30",
           "`FAILED`, `Publish: MartsInconsistent: marts.product_sales_daily: N row(s) would hold a negative count or"
           " amount; the marts disagree with the facts: rebuild them with `python -m pipeline rebuild-marts` ...`",
           "the marts in Postgres no longer add up to the served facts (a mart row changed or deleted by hand or by"
           " another tool, or restored apart from the facts): the date's change would leave a negative count or"
           " amount, so the publish was rolled back; BI still reads the marts as they were",
           "`python -m pipeline rebuild-marts` (recomputes every mart from the served facts in one transaction, under"
           f" the publish lock; docs/operations.md#rebuilding-the-marts), then `{DAILY}`", ("MartsInconsistent",)),
    Remedy("serving database lost", "30",
           "`FAILED`, `Publish: ServingDatabaseLost: the serving database ecomm on HOST:PORT holds no published date,"
           " but the lake at L records N published date(s) (first..last): it was re-created or replaced; run"
           " `python -m pipeline rebuild-serving` ...` (or, when the embedded server's data folder is a path relative"
           " to the current folder, `ServingDatabaseLost: the embedded Postgres's data folder is relative to the"
           " current folder: check ECOMM_PG_DATA and the current folder first; ...`); nothing of the date was"
           " published",
           "the serving database was lost and re-created empty (the embedded server's data folder deleted),"
           " `ECOMM_PG_DSN` names a new, empty one, or a relative `ECOMM_PG_DATA` run from another folder started a"
           " new, empty embedded server there, while the lake records dates published before: publishing the date"
           " alone would serve it without the history (marts.customers ... of one date)",
           "if the message says to check `ECOMM_PG_DATA` and the current folder first, do (a run from another folder"
           " starts a new, empty server there, which BI tools on its port reach until it stops): stop that server"
           " with the command the message gives (`ECOMM_PG_DATA=F python -m pipeline.serving.pg stop`; without"
           " `ECOMM_PG_DATA=F` it stops the server your own settings name, perhaps the one that served the dates),"
           " set `ECOMM_PG_DATA` to the folder that served the dates (an absolute path) and rerun"
           f" `{DAILY}`; if it names where the dates were last published (`last published to ..., not to this one`),"
           " check that one with the command it gives and rerun with those settings; otherwise `python -m pipeline"
           " rebuild-serving` (with `--into-new-target` when the message offers it: the other one was lost;"
           " republishes every gated date from the lake into it, this one included if its gate passed;"
           f" docs/operations.md#rebuilding-the-serving-database), then `{DAILY}`",
           ("ServingDatabaseLost",)),
    Remedy("schema migration", "30",
           "`MigrationNotPermitted: .../sql/serving/0NN_....sql: must be owner of table ...` (or `: permission"
           " denied`) (a preload or the publish, after an upgrade; `migrate` exits 1)",
           "a newer version's serving migrations need the database's owner, and the pipeline's login is not it",
           f"the database owner runs `python -m pipeline migrate` (docs/operations.md#upgrading), then `{DAILY}`",
           ("MigrationNotPermitted",)),
    Remedy("migration failed", "30",
           "`MigrationError: .../sql/serving/0NN_....sql: <Postgres's error>` (a preload or the publish; `migrate`"
           " exits 1), or `MigrationChanged: 0NN_....sql was applied ... but has changed since ...`",
           "a serving migration could not be applied and was rolled back: its SQL fails on this database (a migration"
           " you added or changed, an object someone changed by hand), an applied migration's file was edited, or"
           " sessions held a lock it needs past its retries; the message names the file and Postgres's words",
           "do what the message says: fix the migration it names (an applied one stays as it was applied: restore"
           " it and put the change in a new file) or the object it trips on, or end the sessions it names; then"
           f" `python -m pipeline migrate`, then `{DAILY}`",
           ("MigrationError",)),
    Remedy("serving table missing", "30",
           "`ServingTableMissing: serving table(s) missing though their migration is applied (dropped by hand?):"
           " marts.daily_kpis (created by 012_marts.sql); ...` (a preload or the publish; `migrate` exits 1)",
           "a serving table was dropped by hand (or left out of a restore); its migration is recorded as applied",
           "a marts table: `python -m pipeline migrate --recreate-missing` (recreates it, empty, from its migration),"
           f" then `python -m pipeline rebuild-marts`, then `{DAILY}`; another table, or one a later migration"
           " changed: docs/operations.md#a-serving-table-dropped-by-hand", ("ServingTableMissing",)),
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
           " `LakeUnreadable: the lake's bucket 'B' does not exist ...` while scheduling (exit 35), or a task failing"
           " with `LakeUnreadable: ... cannot be written: ... AWS Error ...`"
           " or `OSError: ... AWS Error NETWORK_CONNECTION ...` (exit 30);"
           " a `python -m pipeline` command or `python -m pipeline.lake.views`: one line, `<command>: error: the lake's"
           " store refused or did not answer: ... AWS Error ...` (exit 35)",
           "the lake's store refused or did not answer: wrong credentials, `AWS_ENDPOINT_URL` or region, a bucket"
           " that does not exist, the store down; for a folder lake, a folder this user may not read (one it may not"
           " write: lake not writable). The lake's data is not at fault",
           "fix the access (a folder: run as its owner, e.g. cron's user, or give that user read access; an s3:// lake:"
           f" docs/scaling-out.md; remove nothing), then `{DAILY}`",
           ("LakeUnreadable",)),
    Remedy("lake not writable", "35",
           "`LakeNotWritable: the lake folder L cannot be written by user U ...` (or `... is on a read-only file"
           " system ...`) while scheduling a date that is not published yet (exit 35), or a task failing with"
           " `LakeNotWritable: ... cannot be written: ... Permission denied ...; the lake is a folder user U may not"
           " write` (or `... Read-only file system ...; the lake folder is on a read-only file system`: a mount"
           " turned read-only mid-run) (exit 30)",
           "this user may read the lake but not write it: another user's folder (cron running as someone other than"
           " the lake's owner), or a read-only mount (an analyst's account, a second host). A published date writes"
           " nothing, so its run is a no-op there (exit 0); the lake's data is not at fault",
           "run as the lake's owner, give this user write access, or remount the lake read-write (remove nothing),"
           f" then `{DAILY}`",
           ("LakeNotWritable",)),
    Remedy("lake folder missing", "35",
           "`LakeFolderMissing: the lake folder L does not exist, but the serving Postgres publishes N date(s) built"
           " from a lake ...` while scheduling, or from `python -m pipeline summary`",
           "ECOMM_LAKE_DIR or `[paths] lake_dir` names a folder that is not there (a typo, a disk not mounted), or an"
           " s3:// prefix that holds no object (`the lake prefix L holds no object, ...`), while"
           " Postgres publishes dates built from a lake: they would count as published from no lake, and the next date"
           " would start a second lake there",
           f"name the lake's folder (or mount its disk), then `{DAILY}`; to start a new lake in that folder on purpose,"
           " create it first (`mkdir -p <folder>`; a prefix: put an object under it)",
           ("LakeFolderMissing",)),
    Remedy("disk full", "30",
           "`OSError: [Errno 28] No space left on device` (or DuckDB's `No space left on device`, or `DuckDBSpillFull:"
           " DuckDB could not spill past [duckdb] memory_limit = M into F ([duckdb] temp_directory): the file system"
           " of F is full ...`)",
           "the lake's disk, or the disk DuckDB spills to (`[duckdb] temp_directory`, by default"
           " `ecomm-duckdb-<uid>` in $TMPDIR, else in /var/tmp), is full; partial files are never renamed into place",
           "free space (old `lake/_archive`, `lake/_logs`, the spill folder's disk), or set `[duckdb] temp_directory`"
           f" to a folder on a bigger disk, or raise `[duckdb] memory_limit` so less spills; then `{DAILY}`",
           ("LakeDiskFull",)),
    Remedy("spill folder unusable", "35",
           "`[duckdb] temp_directory = F: DuckDB cannot spill there (...)` before any task runs (exit 35), or"
           " `SpillFolderUnusable: ...` in a task (30)",
           "the folder DuckDB spills to (by default `ecomm-duckdb-<uid>` in $TMPDIR, else in /var/tmp) is not a"
           " folder, cannot be made, or this user may not write it; the input files and the data are not at fault",
           "make it a folder the pipeline's user may write, or set `[duckdb] temp_directory` to one (empty: the"
           f" default); then `{DAILY}`", ("SpillFolderUnusable",)),
    Remedy("Postgres disk full", "30",
           "`FAILED`, `PreloadFactOrders: PublishError: preloading fact_orders of D failed: the serving Postgres's disk"
           " is full (could not extend file \"base/...\": No space left on device); it was rolled back` (or `... wrote"
           " only 4096 of 8192 bytes at block N`); a disk so full that no session starts: `OperationalError: ... FATAL:"
           " could not write init file` (exit 35), or that the embedded server cannot start: `EmbeddedDiskFull:"
           " embedded Postgres in D could not start: FATAL: could not write to file \"pg_wal/xlogtemp.N\": No space"
           " left on device`",
           "the disk under the serving Postgres's data folder is full (SQLSTATE 53100 disk_full): not the lake's disk,"
           " not the date's rows; the write was rolled back and BI still sees what was published before (an embedded"
           " server that cannot start serves nobody until there is room)",
           "free space on the serving Postgres's disk: for the embedded server, the disk of its data folder"
           " (`ECOMM_PG_DATA`, else `[postgres] embedded_dir`, by default `.pgdata`), or move that folder to a bigger"
           f" disk; another server: its administrator frees or adds space; then `{DAILY}`",
           ("DiskFull", "EmbeddedDiskFull")),
    Remedy("DuckDB out of memory", "30",
           "`FAILED`, `LandEvents: DuckDBOutOfMemory: DuckDB ran out of memory under [duckdb] memory_limit = 50MB"
           " (failed to allocate data of size 4.0 MiB ...)`, often in several tasks of the date",
           "a task's DuckDB needed more than `[duckdb] memory_limit` (each task process's own) for the day's size;"
           " the data is not at fault, and the step wrote nothing",
           "raise `[duckdb] memory_limit` (in luigi.cfg or the file `LUIGI_CONFIG_PATH` names; about `[core] workers`"
           " x `memory_limit`, plus Postgres, must fit the machine's memory; fewer workers leave room for more), or"
           f" where the message suggests it (a task with more than one thread), set `[duckdb] threads = 1` (each thread"
           f" holds its own share) (docs/performance.md#bigger-days); then `{DAILY}`",
           ("DuckDBOutOfMemory", "OutOfMemoryException")),
    Remedy("task timed out", "30",
           "`FAILED`, `StageOrders: Task StageOrders_D_... timed out after 900 seconds and was terminated.`",
           "the task ran longer than its kind's `[task_timeouts]` limit (land, catalog, stage, model, check, publish;"
           " a task of none: `[worker] timeout`): a day bigger than the limits were sized for, or a slow disk, lake"
           " store or Postgres; its worker terminated it, and it published nothing (outputs appear whole or not at"
           " all)",
           "find why it was slow (its `duration_seconds` and `peak_rss_mib` in `audit.pipeline_runs`, its log lines),"
           f" then raise {TIMEOUT_SETTING} (in luigi.cfg or the file `LUIGI_CONFIG_PATH` names), or for one run"
           f" `{DAILY} {TIMEOUT_OPTION} <seconds>`", names_timeout=True),
    Remedy("task killed", "30",
           "`FAILED`, `StageEvents: Task StageEvents_D_... died unexpectedly with exit code -9`",
           "the task's process was killed by a signal from outside (exit code -9 is SIGKILL, most often the kernel's"
           " out-of-memory killer: `dmesg` or `journalctl -k` shows `Out of memory: Killed process <pid>`); nothing"
           " of the date was published (outputs appear whole or not at all)",
           "lower the run's memory (`[duckdb] memory_limit`, `[duckdb] threads`, `[core] workers`;"
           f" docs/performance.md#bigger-days), then `{DAILY}`"),
    Remedy("task died", "30",
           "`FAILED`, `StageEvents: Task StageEvents_D_... died unexpectedly with exit code -15` (or -11, -6 ...)",
           "the task's process ended on a signal other than SIGKILL: -15 (SIGTERM) is a stop from outside (`systemctl"
           " stop`, `docker stop`, a shutdown), -11 (SIGSEGV) or -6 (SIGABRT) a crash inside DuckDB or pyarrow; nothing"
           " of the date was published (outputs appear whole or not at all)",
           f"run the date again: `{DAILY}`; a crash that comes back at the same task is a bug to report with its log"),
    Remedy("disabled in luigid", "25",
           "`not published` and `DISABLED in luigid` in the summary; Luigi says `not granted run permission`",
           "a task failed its last attempt, so luigid refuses it for `[scheduler] disable_persist` seconds",
           f"fix the cause, then `python -m pipeline reenable --date {{date}}` and `{DAILY}`"
           " (or run the date with `--local-scheduler`)", ()),
)
BY_ERROR = {name: remedy for remedy in REMEDIES for name in remedy.errors}

def by_kind(kind: str) -> Remedy:
    """The runbook entry named `kind`."""
    return next(remedy for remedy in REMEDIES if remedy.kind == kind)


def markdown_table() -> str:
    """The runbook as the Markdown table of docs/operations.md (between its ops:runbook markers)."""
    rows = ["| failure | exit | symptom | cause | fix |", "|---|---|---|---|---|"]
    rows += [f"| {r.kind} | `{r.exit_code}` | {r.symptom} | {r.cause} | {r.fix_for('D')}"
             f"{'. ' + r.table_note[0].upper() + r.table_note[1:] if r.table_note else ''} |" for r in REMEDIES]
    return "\n".join(rows)
