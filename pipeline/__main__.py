"""`python -m pipeline <command> [options]`: the project's commands besides Luigi's own.

    summary     the run summary (rows per layer, quarantine, checks, publish) for a range of dates
    freshness   for cron and monitors: exit 1 when the latest published date is older than allowed
    reenable    let the central scheduler (luigid) run a date's tasks again after a failure was fixed
    report      the self-contained HTML daily report for a date
    schema-doc  the serving schema reference (Markdown) generated from Postgres COMMENT ON
    restate     land a date's corrected file(s), or a catalog snapshot, again on purpose, and republish
    migrate     apply the pending serving-schema migrations (publish applies them too, if its role may)
    rebuild-serving  recreate every serving table from the lake (disaster recovery, a new database)
    rebuild-marts    recompute the marts from the served facts, under the publish lock (after MartsInconsistent)
    compact-serving  merge the fact partitions of closed months into one partition per month
"""
from __future__ import annotations

import importlib
import sys

from pipeline.config import BadSetting

COMMANDS = {
    "summary": "pipeline.tasks.summary",
    "freshness": "pipeline.tasks.freshness",
    "reenable": "pipeline.tasks.central",
    "report": "pipeline.report.page",
    "schema-doc": "pipeline.serving.schema_doc",
    "restate": "pipeline.tasks.restate",
    "migrate": "pipeline.serving.migrations",
    "rebuild-serving": "pipeline.tasks.rebuild",
    "rebuild-marts": "pipeline.serving.rebuild_marts",
    "compact-serving": "pipeline.serving.compaction",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if args[0] not in COMMANDS:
        print(f"python -m pipeline: error: {args[0]!r} is not a command; the commands: {', '.join(COMMANDS)}"
              " (see --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]])
    try:
        return int(module.main(args[1:]) or 0)
    except KeyboardInterrupt:  # Ctrl-C: Postgres cancelled the statement (psycopg), the transaction rolled back
        from pipeline.tasks import cli_errors

        print(f"python -m pipeline {args[0]}: {cli_errors.INTERRUPTED}", file=sys.stderr, flush=True)
        return cli_errors.INTERRUPTED_EXIT
    except BadSetting as err:  # a setting the command needs cannot work: one line, not a traceback
        print(f"python -m pipeline {args[0]}: error: {err}", file=sys.stderr)
        return 35  # as the daily run's scheduling_error and `pg`'s DsnInvalid (docs/operations.md#exit-codes)
    except Exception as err:  # a failure the runbook knows (a lake store refusing, a damaged manifest, Postgres down
        # ...): its one line, with a fix that reruns this command; the rest re-raised
        from pipeline.tasks import runbook  # loaded already by most commands (pipeline.tasks.*)

        if (code := runbook.told(f"python -m pipeline {args[0]}", args[1:], err)) is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
