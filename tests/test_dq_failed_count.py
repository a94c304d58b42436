"""daily_metrics.dq_failed_count: one statement (sql/gate/dq_failed_count.sql), the same figure on Postgres and the lake."""
from __future__ import annotations

import datetime as dt

from devtools.bench.fixtures import write_day
from pipeline.lake import views as lakeview
from pipeline.quality import gate
from pipeline.quality.results import CheckResult
from pipeline.serving import publish

D = dt.date(2025, 12, 14)


def _check(name: str, outcome: str) -> CheckResult:
    return CheckResult(check_name=name, table_name="fact_orders", check_type="row_count", outcome=outcome,
                       value="1", message=f"{outcome} on purpose")


def test_the_failed_checks_count_the_same_on_postgres_and_the_lake(fresh_db, serving_lake) -> None:
    write_day(D, 10, 20, users=5, products=3, known_products=3)
    result = gate.GateResult(load_date=D, checked_at=dt.datetime(2025, 12, 15, 2, 0), results=[
        _check("a", "pass"), _check("b", "warn"), _check("c", "fail"), _check("d", "error"), _check("e", "fail")])
    gate.write_results(result)
    publish.publish(D, audit_rows=gate.dq_failure_rows(result))
    with fresh_db.connect() as conn:
        assert conn.execute("select dq_failed_count from warehouse.daily_metrics").fetchall() == [(3,)]
    # published again without the gate's rows (as the benchmark does): the date's dq_failures still stand,
    # and the count still says so rather than the lake model's placeholder 0
    publish.publish(D)
    with fresh_db.connect() as conn:
        assert conn.execute("select dq_failed_count from warehouse.daily_metrics").fetchall() == [(3,)]
        assert conn.execute("select count(*) from audit.dq_failures").fetchone() == (4,)
    con = lakeview.open_lake()
    assert con.execute("select dq_failed_count from warehouse.daily_metrics").fetchall() == [(3,)]
    assert con.execute("select count(*) from audit.dq_failures").fetchone() == (4,)
