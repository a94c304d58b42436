"""soda-core is imported by Luigi's worker process after its first fork, not while Luigi schedules.

Each check runs in a fresh interpreter (`python -c`), the way `luigi --module pipeline.tasks` starts.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_scheduling_a_gate_does_not_import_soda(tmp_path) -> None:
    run_python(f"""
        import datetime as dt, os, sys
        os.environ["ECOMM_LAKE_DIR"] = {str(tmp_path)!r}
        from pipeline import tasks
        assert tasks.QualityGate(date=dt.date(2025, 12, 15)).complete() is False
        assert "soda.scan" not in sys.modules, "complete() must stay cheap: Luigi calls it while scheduling"
    """)


def test_a_process_that_exits_while_the_import_runs_waits_for_it_first() -> None:
    # a run with two tasks to run forks nothing after them: its exit must not end the thread mid-import
    result = run_python("""
        import atexit, os, threading
        from pipeline import tasks

        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        atexit.register(lambda: print("running" if any(t.name == "soda-warm-up" for t in threading.enumerate())
                                      else "finished"))
    """)
    assert result.returncode == 0 and result.stdout.strip() == "finished", result


def test_the_second_fork_starts_the_import_and_later_forks_wait_for_it() -> None:
    result = run_python("""
        import os, sys, threading
        from pipeline import tasks
        from pipeline.tasks import warmup

        def fork():
            pid = os.fork()
            if pid == 0:
                os._exit(0 if "soda.scan" in sys.modules else 3)
            return os.waitpid(pid, 0)[1]

        assert "soda.scan" not in sys.modules
        fork()
        assert not any(t.name == "soda-warm-up" for t in threading.enumerate())
        fork()  # the first two task processes (--workers 2) are forked before the import starts
        assert any(t.name == "soda-warm-up" for t in threading.enumerate()), "the import runs beside them"
        assert os.waitstatus_to_exitcode(fork()) == 0, "a later fork waits for the import and inherits it"
        assert "soda.scan" in sys.modules and "soda.execution.check.metric_check" in sys.modules
        assert not any(t.name == "soda-warm-up" for t in threading.enumerate())
        from pipeline.transform import staging
        assert staging._known_timezone.cache_info().currsize == 1, "the business time zone is checked once, here"
        print("ok")
    """)
    assert result.stdout.strip() == "ok"


def test_imported_objects_are_frozen_out_of_the_collector_and_it_runs_after_the_imports() -> None:
    """A full collection walks every object a process holds (~0.1 s after the imports): the imports,
    then soda-core's once the warm-up has imported it, go to the permanent generation, so neither the
    imports nor a task process's own collections walk (and copy on write) the inherited heap."""
    result = run_python("""
        import gc, os, sys
        from pipeline import tasks
        from pipeline.tasks import warmup

        assert gc.isenabled(), "the collector runs again once the task modules are imported"
        after_imports = gc.get_freeze_count()
        assert after_imports > 50_000, after_imports
        assert "duckdb" in sys.modules and "pyarrow" in sys.modules

        def fork():
            pid = os.fork()
            if pid == 0:
                os._exit(0 if gc.get_freeze_count() > 50_000 and gc.isenabled() else 3)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

        assert fork() == 0 and fork() == 0  # the second starts the warm-up
        warmup.wait()
        assert fork() == 0
        assert "soda.scan" in sys.modules
        assert gc.get_freeze_count() > after_imports + 20_000, "soda-core's objects are frozen before the next fork"
        print("ok")
    """)
    assert result.stdout.strip() == "ok"


def test_the_luigi_command_does_not_import_what_only_jupyter_needs() -> None:
    """`luigi --module pipeline.tasks` imports luigi.parameter, which imports jsonschema when it is
    installed (the checkout's JupyterLab brings it). jsonschema's format checkers then import
    rfc3987-syntax, which builds a Lark grammar at import: 1.1-1.5 s of every command's start before
    the first task. pyproject.toml excludes that package; this keeps it out of the start-up."""
    result = run_python("""
        import sys
        import luigi.cmdline  # what the `luigi` script imports
        import pipeline.tasks  # --module pipeline.tasks
        print(sorted(name for name in ("rfc3987_syntax", "lark") if name in sys.modules))
    """)
    assert result.stdout.strip() == "[]"


def test_pyarrow_asks_whether_a_value_is_a_dataframe_without_importing_pandas() -> None:
    """pyarrow imports pandas the first time it asks whether a value is a DataFrame (`pa.table`,
    `Table.from_pylist`: ~0.4 s of CPU on the serial start of every command, before its first task).
    The command's process answers that question once without it; an explicit conversion still works."""
    result = run_python("""
        import sys
        import pyarrow as pa
        from pipeline import tasks

        assert "pandas" not in sys.modules
        schema = pa.schema([("a", pa.int64())])  # the pipeline's tables have schemas (inferring types imports pandas)
        pa.table({"a": [1]}, schema=schema), pa.Table.from_pylist([{"a": 1}], schema=schema)
        assert "pandas" not in sys.modules, "pyarrow's DataFrame check is answered without importing pandas"
        assert pa.table({"a": [1]}).to_pandas()["a"].tolist() == [1], "an explicit conversion still works"
        print("ok")
    """)
    assert result.stdout.strip() == "ok"


def test_no_task_of_a_daily_run_imports_pandas(ops: Ops, tmp_path) -> None:
    """Nothing the pipeline runs needs pandas, and importing it costs a process ~0.2 s of CPU and
    ~40 MiB: the README's daily command (two workers: every task in a process forked from the
    `luigi` process) runs the seed day, and each task records whether its process has pandas. Staging
    registered an Arrow table built from untyped lists, and soda-core imports pandas to convert a
    metric value (`pipeline.quality.soda`)."""
    seen = tmp_path / "seen.txt"
    code = textwrap.dedent(f"""
        import sys
        import luigi
        from luigi.cmdline import luigi_run

        @luigi.Task.event_handler(luigi.Event.SUCCESS)
        def seen(task):
            with open({str(seen)!r}, "a", encoding="utf-8") as out:
                out.write(f"{{task.task_family}} {{'pandas' in sys.modules}}\\n")

        luigi_run(["--module", "pipeline.tasks", "DailyPipeline", "--date", "{SEED_DAY}", "--local-scheduler",
                   "--workers", "2"])
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ops.env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    tasks = dict(line.split() for line in seen.read_text(encoding="utf-8").splitlines())
    assert {"StageOrders", "StageEvents", "QualityGate", "Publish"} <= tasks.keys(), tasks
    assert {task for task, pandas in tasks.items() if pandas == "True"} == set(), tasks
    assert ops.query("select count(*) from audit.publish_log where load_date = %s", (SEED_DAY,)) == [(1,)]
