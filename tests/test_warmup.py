"""soda-core is imported by Luigi's worker process after its first fork, not while Luigi schedules.

Each check runs in a fresh interpreter (`python -c`), the way `luigi --module pipeline.tasks` starts.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

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


def test_pandas_is_imported_beside_the_first_tasks_not_before_them() -> None:
    """pyarrow imports pandas the first time it asks whether a value is a DataFrame (`pa.table`,
    `Table.from_pylist`: ~0.4 s of CPU on the serial start of every command, before its first task);
    DuckDB imports it when an Arrow object is registered (staging, preloads, gate, publish). So the
    command starts without it and the warm-up imports it beside the first tasks, for the later ones to
    inherit, without a fork-hook mismatch in the parent (pandas imports concurrent.futures.thread,
    which registers fork hooks)."""
    result = run_python("""
        import os, sys
        import pyarrow as pa
        from pipeline import tasks
        from pipeline.tasks import warmup

        assert "pandas" not in sys.modules
        schema = pa.schema([("a", pa.int64())])  # the pipeline's tables have schemas (inferring types imports pandas)
        pa.table({"a": [1]}, schema=schema), pa.Table.from_pylist([{"a": 1}], schema=schema)
        assert "pandas" not in sys.modules, "pyarrow's DataFrame check is answered without importing pandas"

        def fork():
            pid = os.fork()
            if pid == 0:
                os._exit(0 if "pandas" in sys.modules else 3)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

        fork(), fork()  # the second starts the warm-up
        assert fork() == 0, "a task process forked after the warm-up inherits pandas"
        assert pa.table({"a": [1]}).to_pandas()["a"].tolist() == [1], "an explicit conversion still works"
        print("ok")
    """)
    assert result.stdout.strip() == "ok"
    assert "release unlocked lock" not in result.stderr and "Traceback" not in result.stderr, result.stderr
