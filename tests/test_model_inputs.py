"""A warehouse model's inputs are stated once, in its SQL: what it registers and what its task requires follow."""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import luigi
import pytest

from pipeline import tasks
from pipeline.lake import sqlrun
from pipeline.tasks import model
from pipeline.transform import warehouse

D = dt.date(2025, 12, 15)


@pytest.fixture()
def sql_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of sql/ that the pipeline reads instead, for a model file a test rewrites."""
    root = tmp_path / "sql"
    shutil.copytree(sqlrun.SQL_DIR, root)
    monkeypatch.setattr(sqlrun, "SQL_DIR", root)
    luigi.task_register.Register.clear_instance_cache()
    return root


def test_references_are_the_relations_read_by_name_not_the_ctes() -> None:
    refs = sqlrun.references(
        "with a as (select * from a), b as (select * from a join c using (k))"
        " select * from b, (with d as (select 1) select * from d, e) as sub, s.f where x in (select y from g)"
        " and z::my_type is not null")
    # `a` inside its own definition is the outer relation a; later `a` is the CTE
    assert refs.relations == ("a", "c", "e", "s.f", "g")
    assert "my_type" in refs.types
    assert sqlrun.references("with recursive r as (select 1 union all select * from r) select * from r").relations == ()
    with pytest.raises(sqlrun.SqlUnparsable, match="syntax error"):
        sqlrun.references("selec 1")


def test_each_model_reads_what_its_sql_names() -> None:
    assert warehouse.inputs("dim_user") == ("fact_orders", "fact_events", "stg_users_snapshot")
    # the facts read the catalog through the ENUM type built from its history (sql/warehouse/types/)
    assert warehouse.inputs("fact_orders") == ("stg_orders", "dim_product_history")
    assert warehouse.lake_input("products_quarantine").sources == ("stg_products",)
    assert set(warehouse.inputs("daily_metrics")) == {
        "raw_orders", "raw_events", "stg_orders", "stg_events", "reconciliation", "fact_orders", "fact_events",
        "stg_products_snapshot", "stg_users_snapshot",  # the catalog snapshots the build read, recorded
        "dim_product_history"}  # its record of the products snapshots it was built from (INPUT_PARAMS)
    assert warehouse.lake_input("reconciliation").sources == ("stg_orders", "stg_events")


def test_a_new_read_in_a_model_s_sql_becomes_a_requirement_of_its_task(sql_copy: Path) -> None:
    path = sql_copy / "warehouse" / "dim_date.sql"
    assert {type(t) for t in tasks.BuildDimDate(date=D).requires()} == {tasks.BuildFactOrders, tasks.BuildFactEvents}
    path.write_text(path.read_text().replace("select * from fact_events", "select * from fact_events"
                                             " where event_id not in (select order_id from stg_orders)"))
    luigi.task_register.Register.clear_instance_cache()
    assert warehouse.inputs("dim_date") == ("fact_orders", "fact_events", "stg_orders")
    assert {type(t) for t in tasks.BuildDimDate(date=D).requires()} == {
        tasks.BuildFactOrders, tasks.BuildFactEvents, tasks.StageOrders}


def test_a_relation_no_one_declared_is_refused_with_where_to_declare_it(sql_copy: Path) -> None:
    path = sql_copy / "warehouse" / "dim_date.sql"
    path.write_text(path.read_text().replace("select * from fact_events", "select * from stg_refunds"))
    said = (r"dim_date.sql reads 'stg_refunds', which is neither a warehouse table nor a lake input: declare it in"
            r" pipeline\.transform\.warehouse\.LAKE_INPUTS")
    with pytest.raises(warehouse.UnknownInput, match=said):
        tasks.BuildDimDate(date=D).requires()
    with pytest.raises(warehouse.UnknownInput, match="stg_refunds"):
        warehouse.build("dim_date", D)


def test_an_input_without_a_task_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(warehouse.LAKE_INPUTS, "stg_refunds", warehouse.LakeInput("staging", "stg_refunds"))
    with pytest.raises(KeyError, match="stg_refunds"):
        model.writers(warehouse.lake_input("stg_refunds"))


def test_the_sql_parser_is_closed_before_the_scheduling_process_forks_a_task() -> None:
    """Luigi forks every task from the process that parsed the models' SQL: no DuckDB database may cross a fork."""
    sqlrun.references.cache_clear()
    warehouse.inputs("fact_events")
    assert sqlrun._parsers, "one parser connection serves the scheduling process"
    pid = os.fork()
    if pid == 0:
        os._exit(0 if not sqlrun._parsers else 3)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert sqlrun._parsers == []
    sqlrun.references.cache_clear()
    assert warehouse.inputs("fact_events"), "parsing opens a new connection after the fork"
