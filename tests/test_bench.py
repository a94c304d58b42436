"""The benchmark machinery on a tiny volume, so that `make bench` never rots.

Nothing here asserts a duration: performance is measured by `python -m devtools.bench`, not by
tests. These runs go through the real thing (generator, Luigi pipeline in a child process, a
throwaway embedded Postgres, the COPY floor, memory sampling) at 2,000 orders / 10,000 events.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from devtools import bench
from devtools.bench import env

TINY = ["--orders", "2000", "--events", "10000"]


def _table(output: str) -> dict[str, list[str]]:
    rows = [line for line in output.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows)}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(("lake-", "pg-", "gen-", "report-")))


@pytest.mark.slow
def test_bench_all_reports_every_figure_on_a_tiny_volume(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sampled: list[list[int | None]] = []

    class CountingSampler(env.MemorySampler):  # the real sampler, counted
        def __init__(self, roots: list[int | None], interval: float = 0.02) -> None:
            sampled.append(roots)
            super().__init__(roots, interval)

    monkeypatch.setattr(env, "MemorySampler", CountingSampler)
    assert bench.main(["all", *TINY, "--days", "3", "--repeat", "1", "--dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    # timed runs go unobserved (the sampler costs a run CPU): the max day's and the daily command's
    # peaks come from one more run each, and the history days are never sampled
    assert len(sampled) == 2
    assert "max day run 1/2: pipeline" in out and "(memory not sampled)" in out
    assert "max day run 2/2: peak RSS" in out and "(memory sampled, not timed" in out
    table = _table(out)
    labels = "\n".join(table)
    for stage in ("land", "stage", "model", "checks", "publish"):
        assert f"max day: {stage} (task seconds; wall span)" in table
    for wanted in ("COPY floor, binary", "COPY floor, CSV", "whole max day / COPY floor (binary)",
                   "floor with the input read", "whole max day / that floor",
                   "peak RSS", "generate a max-volume day", "day 3 / day 1", "median of 3 days",
                   "speed-up vs the original system", "in a running process (a backfill's later dates), median of 1",
                   "first date of a process (imports, Soda's warm-up), median of 2"):
        assert wanted in labels, wanted
    # the day's CPU, the pipeline's processes and the server's, and what it means on this machine's cores
    cpu = table["max day: CPU seconds, Luigi + task processes / Postgres (medians)"][0]
    assert all(float(part.split()[0]) > 0 for part in cpu.split(" / ")), cpu
    assert any(label.startswith("that CPU spread evenly over the") for label in table)
    peak = next(cells for label, cells in table.items() if label.startswith("max day: peak RSS"))
    assert peak[1] == "≤ 1.5 GiB" and peak[2] in ("met", "NOT met")
    # the inputs are cached for the next run; every scratch lake, server and report is gone
    assert (tmp_path / "day-2000x10000" / ".complete-2025-12-15").exists()
    assert (tmp_path / "history-2000x10000" / ".complete-2026-01-07").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_bench_scale_compares_one_and_two_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["scale", *TINY, "--scale-days", "2", "--repeat", "1", "--dir", str(tmp_path)]) == 0

    table = _table(capsys.readouterr().out)
    assert any(label.startswith("backfill 2 days (RangeDaily), 1 worker") for label in table)
    assert any(label.startswith("backfill 2 days (RangeDaily), 2 workers") for label in table)
    assert table["speed-up 2 workers / 1 worker"][0].endswith("×")
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_bench_rebuild_reports_days_per_minute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["rebuild", "--orders", "50", "--events", "200", "--days", "2", "--dir", str(tmp_path)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert sum(" published " in line for line in lines) == 2
    assert "2 published" in lines[-3] and lines[-1].endswith("days per minute")
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_bench_partitions_compares_counts_and_compaction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["partitions", "--small", "8", "--large", "40", "--orders", "20", "--events", "50",
                       "--repeat", "1", "--dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert "| figure | 8 daily | 41 daily | 5 (2 monthly) |" in out
    table = _table(out)
    for query in ("orders by order date", "orders by load date", "events by event date", "events by load date"):
        for figure in ("cold plan", "cold exec", "warm plan", "warm exec"):
            assert f"{query} (7 days): {figure}" in table
    # a range on the business date plans every partition: its locks grow with the count, a load-date range's do not
    small, large, compacted = (float(v) for v in table["orders by order date (7 days): locks"][:3])
    assert large > 3 * small and compacted < large / 3
    assert table["orders by load date (7 days): locks"][0] == table["orders by load date (7 days): locks"][1]
    assert "publish one more date (ms)" in table
    assert _leftovers(tmp_path) == []


def test_the_history_window_keeps_weekly_catalog_snapshots_only(tmp_path: Path) -> None:
    """Extending a cached window generates only the missing days, without an extra catalog snapshot."""
    root = tmp_path / "h"
    bench._generate(root, bench.HISTORY_START, 2, 50, 200)
    bench._generate(root, bench.HISTORY_START, 3, 50, 200)

    assert sorted(p.name for p in (root / "products").iterdir()) == [f"products_{bench.HISTORY_START}.json"]
    assert len(list(root.glob(".complete-*"))) == 3


@pytest.mark.slow
def test_bench_cli_times_the_readme_command_as_a_whole_process(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["cli", *TINY, "--repeat", "1", "--timeline", "--dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    table = _table(out)
    row = next(cells for label, cells in table.items() if label.startswith("the README's daily command"))
    assert row[0].endswith("×") and row[1] == "≤ 3.95 s" and row[2] in ("met", "NOT met")
    assert any(label.strip().startswith("its CPU seconds") for label in table)
    assert _leftovers(tmp_path) == []
    # --timeline: each run's tasks from the command's own run audit, in seconds from its start, with each
    # task's CPU seconds (the run audit's cpu_seconds), then its exit
    for run in out.split("daily command run ")[1:]:
        lines = run.splitlines()[1:]
        tasks = {line.split()[4]: (float(line.split()[0]), float(line.split()[1])) for line in lines
                 if line.startswith("    ") and len(line.split()) > 4}
        cpu = {line.split()[4]: line.split()[3] for line in lines if line.startswith("    ") and len(line.split()) > 4}
        exited = float(next(line.split()[0] for line in lines if line.endswith("the process exited")))
        assert {"LandEvents", "StageEvents", "BuildFactEvents", "QualityGate", "Publish"} <= set(tasks), run
        assert all(0 < start <= end <= exited for start, end in tasks.values()), run
        assert all(float(seconds) > 0 for seconds in cpu.values()), run
        assert tasks["StageEvents"][0] >= tasks["LandEvents"][1] and tasks["Publish"][0] >= tasks["QualityGate"][1]


@pytest.mark.slow
def test_bench_linear_compares_the_max_day_with_a_day_four_times_its_size(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["linear", *TINY, "--repeat", "1", "--dir", str(tmp_path)]) == 0

    table = _table(capsys.readouterr().out)
    ratio = next(cells for label, cells in table.items() if "(4× the max day) / max day" in label)
    assert ratio[0].endswith("×") and ratio[1] == "≤ 4.4×" and ratio[2] in ("met", "NOT met")
    assert sum(label.strip().startswith("peak RSS") for label in table) == 2
    assert (tmp_path / "day-8000x40000" / ".complete-2025-12-15").exists()


def test_bench_serving_times_every_query_and_the_publish_at_two_sizes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.lake import views

    assert bench.main(["serving", "--orders", "200", "--events", "1000", "--publish-orders", "300",
                       "--publish-events", "1500", "--sizes", "1,3", "--runs", "1", "--publishes", "1",
                       "--dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    table = _table(out)
    assert set(views.queries()) <= set(table)  # one row per query, with both sizes, the ratio and the target
    for name in views.queries():
        small, large, ratio, pages, target = table[name]
        assert small.endswith(" ms") and large.endswith(" ms") and float(ratio) > 0 and "met" in target
        assert all(int(n) >= 0 for n in pages.split(" / ")), pages  # the pages each size's plan touched
    assert any(label.startswith("publish of one more day") for label in table)
    first = out.splitlines()[0]
    assert ": 1 days (1,000 events" in first and " 3 days (3,000 events" in first, first
    assert "days published: 300 orders / 1,500 events" in first, first  # the timed day has its own volume
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_bench_linear_stage_runs_one_step_alone_at_both_sizes(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["linear", "--stage", "stage", *TINY, "--repeat", "1", "--dir", str(tmp_path)]) == 0

    table = _table(capsys.readouterr().out)
    for source in ("events", "orders"):
        wall = table[f"stage {source}: wall, max day / 4× day"]
        assert wall[0].endswith("×") and wall[1] == "≤ 4.4×"
        assert f"stage {source}: peak RSS, max day / 4× day" in table
        assert f"stage {source}: spilled, max day / 4× day" in table
    assert _leftovers(tmp_path) == []


def test_bench_land_reports_wall_and_cpu_seconds_per_source(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["land", *TINY, "--dir", str(tmp_path)]) == 0

    table = _table(capsys.readouterr().out)
    for source in ("orders", "events", "catalogs", "total"):
        wall, cpu = table[f"land {source}: wall; CPU seconds"][0].split("; ")
        assert wall.endswith(" s") and cpu.endswith(" s")
    assert _leftovers(tmp_path) == []
