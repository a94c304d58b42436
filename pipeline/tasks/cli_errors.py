"""The `luigi` command line's errors a user can fix, one line each, not tracebacks (`install`).

A command line Luigi cannot turn into a task (a bad `--date`, a missing parameter, an unknown task
name, a value it cannot read), one that cannot reach the central scheduler, a task whose
scheduling hits a setting that cannot be read (`pipeline.config.BadSetting`), and a task that fails
for a reason the runbook knows (a missing file, a blocked gate): Luigi logs each with
its traceback, or, before it applies [retcode], lets it escape. pipeline.tasks installs the log
filters and the `sys.excepthook` below when it is imported, and the explanation of a task Luigi lost (timed out,
its process killed) in the failure e-mail and luigid, as a failed task's (`_explain_lost_tasks`).
"""
from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

from pipeline import business_day, config
from pipeline.config import BadSetting


REJECTED = "the command was rejected: %s (luigi --help-all lists the options)"
_rejected: list[str] = []  # why this process's `luigi` command line was rejected (empty: it was not)


def command_rejected() -> bool:
    """Whether this process's `luigi` command line was rejected (its one line logged): nothing ran to summarise."""
    return bool(_rejected)


class _RejectedCommandLine(logging.Filter):
    """Luigi's "Uncaught exception in luigi" for a command line it could not turn into a task: one line.

    `luigi.retcodes.run_with_retcodes` logs any exception with its traceback and exits [retcode]
    unhandled_exception. When the exception came from parsing the command line (a bad `--date`, a
    missing parameter, an unknown `--of` task, a value of Luigi's own settings), the traceback is noise:
    the record keeps the error's message in the command line's words, naming the option, and drops
    the traceback. Any other exception keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.msg != "Uncaught exception in luigi":
            return True
        error, tb = record.exc_info[1], record.exc_info[2]
        option = value = None
        parsing = False
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename.endswith(os.path.join("luigi", "cmdline_parser.py")):
                parsing = True
                option = tb.tb_frame.f_locals.get("param_name", option)
                value = tb.tb_frame.f_locals.get("attr", value)
            tb = tb.tb_next
        if error is None:
            return True
        text = _luigi_wording(error, option if parsing else None)
        if text is None:
            if not parsing:
                return True
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            # Luigi's own DateParameter (RangeDaily's --start/--stop): strptime's wording, whatever the fault
            if isinstance(value, str) and ("does not match format '%Y-%m-%d'" in text
                                           or text.startswith("unconverted data remains")):
                text = f"{value!r} is not a valid date: expected YYYY-MM-DD, e.g. 2025-12-15"
            elif isinstance(value, str) and text.endswith("out of range for month"):  # 2025-02-29
                text = f"{value!r} is not a valid date: expected YYYY-MM-DD, e.g. 2025-12-15 ({text})"
            if option and not text.startswith("--") and not isinstance(error, BadSetting):  # it names its setting
                text = f"--{option.replace('_', '-')} {text}"
        record.msg, record.args = REJECTED, (text,)
        record.exc_info, record.exc_text = None, None
        _rejected.append(text)
        return True


_MISSING = re.compile(r"(\w+)\[args=.*\]: requires the '(\w+)' parameter to be set", re.S)
_UNREADABLE = re.compile(r"(\w+)\[args=.*\]: Error when parsing the default value of '(\w+)'", re.S)


def _luigi_wording(error: BaseException, option: str | None = None) -> str | None:
    """Luigi's error for a command line it cannot use, in the command line's words (None: not one of those).

    A task name that names none (`RangeDaily --of DailyPipelin`, or the task itself), a missing
    parameter (`DailyPipeline[args=(), kwargs={}]: requires the 'date' parameter to be set`), and a
    value Luigi's own settings cannot read (`--workers abc`, or `[core] workers = abc` in a file).
    """
    text = str(error).strip()
    if type(error).__name__ == "TaskClassNotFoundException":
        name, _, rest = text.removeprefix("No task ").partition(". ")
        guesses = [guess for guess in rest.removeprefix("Did you mean:").split() if _is_task(guess)] \
            if rest.startswith("Did you mean:") else []
        named = f"--{option} {name}" if option else name
        return f"{named}: no such task" + (f" (did you mean {' or '.join(guesses)}?)" if guesses else "")
    if found := _MISSING.fullmatch(text):
        return f"{found.group(1)} needs --{found.group(2).replace('_', '-')}"
    if (found := _UNREADABLE.fullmatch(text)) and error.__cause__ is not None:
        return _unreadable_value(*found.groups(), error.__cause__)
    return None


def _is_task(name: str) -> bool:
    """Whether a name Luigi suggests is a task of the pipeline one runs (it also suggests settings sections,
    `core`, and base classes, `ModelTask`)."""
    return name in getattr(sys.modules.get("pipeline.tasks"), "__all__", ())


def _unreadable_value(section: str, name: str, cause: BaseException) -> str | None:
    """`--workers 'abc' is not valid (...)`, or, when the value came from a file, the setting's line."""
    import luigi

    flag = f"--{name.replace('_', '-')}"
    typed = (arg.split("=", 1)[0] for arg in sys.argv[1:])
    forms = {flag, f"--{section}-{flag[2:]}", f"--{section.replace('_', '-')}-{flag[2:]}"}  # --task-timeouts-land
    given = [arg for arg in typed if arg in forms]
    if given:
        flag = given[-1]  # as the user typed it: `--model-late-window-days`, which `--late-window-days` is not
        param = raw = None
        tb = cause.__traceback__
        while tb is not None:  # luigi.Parameter._parse_or_no_value(self, x): the parameter and the text it got
            if tb.tb_frame.f_code.co_name == "_parse_or_no_value":
                param, raw = tb.tb_frame.f_locals.get("self"), tb.tb_frame.f_locals.get("x")
            tb = tb.tb_next
        return f"{flag} {raw!r} is not valid ({config.expected(param, cause)})"
    try:
        named = config.bad_setting(luigi.task_register.Register.get_task_cls(section))
    except Exception:  # noqa: BLE001 - no such section's class: Luigi's own words then
        named = None
    return None if named is None else str(named)


LUIGID_DOWN = ("the central scheduler at %s does not answer: start it (`make luigid` in a checkout, `luigid --address"
               " 127.0.0.1 --port <its port>` where the package is installed), or run without it: add"
               " --local-scheduler to the command")


def _in_causes(error: BaseException | None, found: Any) -> BaseException | None:
    """The first exception among `error` and its causes for which `found(exception)` holds (None: none)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if found(error):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _rpc_error(error: BaseException | None) -> BaseException | None:
    """The luigi.rpc.RPCError among an exception's causes (None: it is not a failure to reach luigid)."""
    return _in_causes(error, lambda e: type(e).__name__ == "RPCError" and type(e).__module__ == "luigi.rpc")


def luigid_down(error: BaseException | None) -> str | None:
    """`LUIGID_DOWN` for the luigid an error failed to reach (None: the error is not that)."""
    if (rpc := _rpc_error(error)) is None:
        return None
    text = str(rpc)
    return LUIGID_DOWN % (text.rsplit("remote scheduler ", 1)[-1].strip("'") if "remote scheduler " in text else "?")


class _LuigidUnreachable(logging.Filter):
    """A `luigi` run that cannot reach luigid (no --local-scheduler, no `make luigid`): what to do, no tracebacks.

    Luigi retries each call ([core] rpc-retry-attempts, rpc-retry-wait), logging every retry with an
    empty traceback ("NoneType: None"), then logs the RPCError's chain of tracebacks twice (while
    scheduling, and as "Uncaught exception in luigi", exit [retcode] unhandled_exception). The
    retries stay (luigid may be restarting), each one line that says what to do; the failure is one
    line too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Failed connecting to remote scheduler %r":
            url = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = LUIGID_DOWN + " (retrying)", (url,)
            record.exc_info, record.exc_text = None, None
        elif record.msg in ("Uncaught exception in luigi", "Luigi unexpected framework error while scheduling %s") \
                and record.exc_info and _rpc_error(record.exc_info[1]) is not None:
            if record.msg != "Uncaught exception in luigi":
                return False  # said once, at the end
            record.msg, record.args = "%s", (luigid_down(record.exc_info[1]),)
            record.exc_info, record.exc_text = None, None
        return True


def _bad_setting_in(error: BaseException | None) -> BadSetting | None:
    """The BadSetting among an exception's causes (None: none)."""
    return _in_causes(error, lambda e: isinstance(e, BadSetting))  # type: ignore[return-value]


class _BadSettingLine(logging.Filter):
    """A task that read a setting it cannot parse (BadSetting): Luigi's log line names it, without the traceback;
    so does a failure of scheduling that the runbook knows (Postgres refuses the login, an unreadable manifest), and
    a task built by code for a date whose business day is not over (`business_day.DayNotOver`).

    Luigi logs a failure of `requires()` or `complete()` as "Will not run <task> ... method:" with the
    formatted traceback in the text (exit [retcode] scheduling_error), and a failure of `run()` with
    its exc_info (exit task_failed). Either way the BadSetting's message says all there is to fix.
    """

    @staticmethod
    def prefixes() -> tuple[str, ...]:
        """How a formatted traceback names a BadSetting: `pipeline.config.BadSetting: `, or a subclass's name
        (`pipeline.transform.staging.SettingInvalid: `)."""
        names, pending = [], [BadSetting, business_day.DayNotOver]
        while pending:
            kind = pending.pop()
            names.append(f"{kind.__module__}.{kind.__qualname__}: ")
            pending.extend(kind.__subclasses__())
        return tuple(names)

    def filter(self, record: logging.LogRecord) -> bool:
        error = _bad_setting_in(record.exc_info[1]) if record.exc_info else None
        if error is not None:
            record.msg, record.args = "%s: %s", (record.getMessage(), error)
            record.exc_info, record.exc_text = None, None
        elif isinstance(record.msg, str) and "\nTraceback (most recent call last):" in record.msg and not record.args:
            head, _, trace = record.msg.partition("\n")
            prefixes = self.prefixes()
            named = [line for line in trace.splitlines() if line.startswith(prefixes)]
            if named:
                record.msg, record.args = "%s %s", (head, _setting_line(named[-1]))
            elif (known := _known_error_line(trace)) is not None:  # Postgres refuses the login, a broken manifest
                record.msg, record.args = "%s %s", (head, known)
        return True


def _setting_line(line: str) -> str:
    """A BadSetting's traceback line as said: its message, after its class's unqualified name when the runbook has
    an entry for that class (`EmbeddedPortInvalid: ...`: the run summary then gives its what-to-do)."""
    from pipeline.tasks import runbook

    qualified, _, text = line.partition(": ")
    said = f"{qualified.rsplit('.', 1)[-1]}: {text}"
    return said if runbook.remedy_for_text(said) is not None else text


def _known_error_line(trace: str) -> str | None:
    """A formatted traceback's error as `<ErrorClass>: <text>` when the runbook knows it (None: keep the traceback).

    Its last exception line names the error (`psycopg.OperationalError: connection failed: ...`), which the lines
    of its message may follow (`unscheduled.error_line`).
    """
    from pipeline.tasks import runbook, unscheduled

    said = unscheduled.error_line(trace)
    return said if ": " in said and runbook.remedy_for_text(said) is not None else None


class _KnownTaskFailure(logging.Filter):
    """A task that failed for a reason the runbook knows (a missing or invalid file, a blocked gate, Postgres
    down ...): Luigi's "failed" line names the task and the error's first line, without the traceback.

    The traceback of such a failure says nothing the operator can act on; what to do follows in the run
    summary, and the failure e-mail and luigid keep the traceback (`PipelineTask.on_failure`). An error
    the runbook does not know (a bug) keeps its traceback here too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.exc_info and isinstance(record.msg, str) and record.msg.startswith("[pid %s] Worker %s failed")):
            return True
        from pipeline.tasks import runbook

        error = record.exc_info[1]
        if error is not None and runbook.remedy_for(error) is not None:
            record.msg, record.args = f"{record.msg}: %s", (*record.args, runbook.reason(error))
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """A `luigi` command line that fails to parse, or cannot reach luigid, a task that reads a bad setting or
    fails for a reason the runbook knows: one log line each, not tracebacks (see above)."""
    target = logging.getLogger("luigi-interface")
    for kind in (_RejectedCommandLine, _LuigidUnreachable, _BadSettingLine, _KnownTaskFailure):
        if not any(isinstance(f, kind) for f in target.filters):
            target.addFilter(kind())
    if not getattr(sys.excepthook, "one_line_rejections", False):
        sys.excepthook = _one_line_rejections(sys.excepthook)
    _explain_lost_tasks()


def _explained(task: Any, said: Any) -> Any:
    """Luigi's line for a task its worker lost (`runbook.lost_task`: timed out, killed) as a failed task's explanation
    (`PipelineTask.on_failure`): what failed, what to do, the runbook, then that line; anything else as it is."""
    from pipeline.tasks import command_line, runbook

    if not isinstance(said, str) or runbook.lost_task(said) is None or "Runbook: " in said:
        return said
    try:
        head = runbook.explain(task.task_family, getattr(task, "date", None), said,
                               local_scheduler=command_line.uses_local_scheduler())
    except Exception:  # noqa: BLE001 - the explanation must never hide Luigi's own line
        return said
    return f"{head}\n\n{said}"


def _explain_lost_tasks() -> None:
    """A task that timed out or whose process was killed raised nothing, so no `on_failure` explains it: the
    worker's failure e-mail and what luigid shows get the runbook's explanation too (`_explained`)."""
    import json

    import luigi.worker

    worker = luigi.worker.Worker
    if getattr(worker._email_task_failure, "explains_lost", False):
        return
    mail, add = worker._email_task_failure, worker._add_task

    def _email_task_failure(self: Any, task: Any, formatted_traceback: str) -> None:
        mail(self, task, _explained(task, formatted_traceback))

    def _add_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        task = self._scheduled_tasks.get(kwargs.get("task_id"))
        if kwargs.get("status") == luigi.worker.FAILED and task is not None and isinstance(kwargs.get("expl"), str):
            try:
                kwargs["expl"] = json.dumps(_explained(task, json.loads(kwargs["expl"])))
            except ValueError:
                pass
        return add(self, *args, **kwargs)

    _email_task_failure.explains_lost = True  # type: ignore[attr-defined]
    worker._email_task_failure, worker._add_task = _email_task_failure, _add_task


INTERRUPTED_EXIT = 130  # 128 + SIGINT: what a shell reports for a command Ctrl-C ended
INTERRUPTED = ("interrupted (Ctrl-C): the run stopped; Postgres cancelled its statement and rolled back any publish in"
               " progress (nothing half-published); run the command again to go on")


def interrupted(prefix: str) -> None:
    """Ctrl-C reached the top of the `luigi` command (Luigi has ended its task processes): one line, exit 130.

    No run summary: it reads Postgres, whose lock the run may have been waiting for, and the atexit handlers
    would wait again for whatever Ctrl-C interrupted (the summary waited out the lock, then printed a table)."""
    print(f"{prefix}{INTERRUPTED}", file=sys.stderr, flush=True)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(INTERRUPTED_EXIT)


def _one_line_rejections(previous: Any) -> Any:
    """sys.excepthook: a `luigi` command line that fails outside Luigi's own error handling is one line (exit 1).

    Luigi looks the task up before it applies [retcode] (`luigi --module pipeline.tasks DailyPipelin`),
    and, a value of its own settings in a file that cannot be read (`[core] workers = abc`), fails
    again while it reports the first error.
    """
    def hook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            interrupted("ERROR: ")
        worded = _luigi_wording(error)
        if worded is None:
            previous(kind, error, tb)
            return
        _rejected.append(worded)
        print(f"ERROR: {REJECTED % worded}", file=sys.stderr, flush=True)

    hook.one_line_rejections = True  # type: ignore[attr-defined]
    return hook
