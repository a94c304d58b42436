"""The lake in DuckDB, for notebooks and ad hoc work: every table of every layer as a named view.

    from pipeline.lake import views as lakeview
    con = lakeview.open_lake()            # or open_lake("/path/to/lake")
    con.sql("select * from warehouse.fact_orders limit 5").show()

    python -m pipeline.lake.views --sql > lake.sql && duckdb -init lake.sql   # the duckdb CLI
    python -m pipeline.lake.views                                             # what is there

`open_lake` returns an in-memory DuckDB connection holding schemas `raw`, `staging`, `warehouse`, `marts`
and `audit` with one view per lake table (`raw.orders`, `staging.stg_orders`, `audit.bad_records` ...).
In `warehouse`, the names are Postgres's: `fact_orders`, `dim_user` ... are the *current* views
(`warehouse.current_view_sql`, the same definitions the pipeline uses) and `<table>_all` holds
every version. In `marts`, the names are Postgres's too: `marts.daily_kpis`, `marts.customers` ... are
the marts' current rows (`pipeline.transform.marts.current_sql`, the text Postgres's rebuild runs), and
`<mart>_all` holds each load date's contribution (`lake/marts/<mart>`). `audit.dq_failures` is `audit.dq_results` without the passed checks, shaped like the
Postgres table, and `warehouse.daily_metrics.dq_failed_count` counts the date's failed or errored
checks as publish does (the lake's model leaves it 0), so the files in `queries/` run unchanged here
and on Postgres.

Safe while the pipeline writes, and read-only:
- each view reads `<lake>/<layer>/<table>/**/data.parquet`; writers fill `data.parquet.tmp-<pid>`
  and rename it into place (see `pipeline.lake`), so a query sees a whole partition or none;
- a raw partition is landed once its `_manifest.json` is written, last (`pipeline.ingest.manifests`): the
  raw views read only the partitions that have one, so a landing killed half way shows nothing;
- the glob is expanded at every query, so partitions written after `open_lake` show up;
- with DuckDB 1.5 or later, `open_lake` reads each table's oldest and newest partition only, whatever the
  number of dates (`pipeline.lake.edges` says why and how); the `--sql` script, for whichever DuckDB CLI the
  analyst has, binds its views over the globs themselves;
- the connection holds views and macros only (no tables, no lock on any file); nothing here writes.

A table with no partition yet is a view that fails with "lake table <layer>/<table> has no
partitions yet": an empty result would read as "no sales", so it refuses instead. Tables the
pipeline adds later appear after reopening (or regenerating the `--sql` script).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import urllib.parse
from pathlib import Path

import duckdb

from pipeline import config, lake, resources
from pipeline.lake import edges, s3, sqlrun
from pipeline.transform import marts, staging, warehouse

logger = logging.getLogger(__name__)

QUERIES_DIR = resources.QUERIES_DIR
NO_PARTITIONS = "has no partitions yet"  # what a placeholder view refuses with
_REFUSAL = re.compile(rf"lake table [^ /]+/[^ /]+ {NO_PARTITIONS} \(nothing under")

# The tables each layer has once the pipeline has run (README "The lake"); other folders found on disk
# are added too. Known tables without partitions become refusing placeholders.
KNOWN_TABLES: dict[str, tuple[str, ...]] = {
    "raw": staging.SOURCES,
    "staging": tuple(map(staging.staging_table, staging.SOURCES)),
    "warehouse": warehouse.TABLES,
    "marts": marts.LOAD_DATE_MARTS,
    "audit": ("rejected_lines", "bad_records", "reconciliation", "dq_results", "pipeline_runs", "restatements"),
}
# audit/restatements is kept as one JSON record per restated date (`pipeline.tasks.restate`, rewritten
# as the restatement goes from pending to published), not as Parquet; its view reads the records with
# these types, and answers no rows while no date was ever restated (that is the answer, not a gap).
RESTATEMENT_COLUMNS = {
    "load_date": "DATE", "status": "VARCHAR", "sources": "VARCHAR[]", "reasons": "JSON",
    "requested_at": "TIMESTAMPTZ", "published_at": "TIMESTAMPTZ", "archived": "VARCHAR[]",
    "previous_manifests": "JSON",
}
# Postgres audit.dq_failures from the lake's dq_results (every check of a date, passes included).
DQ_FAILURES_SQL = """
select
    dq_results.load_date as run_date,
    dq_results.check_name,
    dq_results.table_name,
    dq_results.check_type,
    dq_results.outcome,
    dq_results.value,
    dq_results.message,
    dq_results.checked_at as recorded_at,
from audit.dq_results
where dq_results.outcome <> 'pass'
"""
# As publish does: the date's failed or errored checks (sql/gate/dq_failed_count.sql, over the
# audit.dq_failures view above) replace the model's placeholder 0.
DAILY_METRICS_SQL = """
with metrics as (
    {current}
),

gate as (
    {dq_failed_count}
)

select metrics.* replace (coalesce(gate.dq_failed_count::integer, metrics.dq_failed_count) as dq_failed_count)
from metrics
left join gate
    on metrics.run_date = gate.run_date
"""


def _literal(text: str) -> str:
    """A SQL string literal. Views cannot take bound parameters, so paths are quoted here, once."""
    return "'" + text.replace("'", "''") + "'"


def _ident(*names: str) -> str:
    return ".".join(sqlrun.quote_ident(name) for name in names)


def _is_restatements(layer: str, table: str) -> bool:
    return (layer, table) == ("audit", "restatements")


def binds_edges(version: str = duckdb.__version__) -> bool:
    """Whether `open_lake` may create its views over each table's oldest and newest partition (`edges`): DuckDB 1.5
    and later give a view the columns its files have when it is queried (duckdb PR #20696); an older one keeps the
    columns it was created with, dropping a column only a middle partition has, or refuses the view."""
    major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", version).groups())
    return (major, minor) >= (1, 5)


def _landed_only(manifests: str) -> str:
    """The filter that keeps a raw view to landed partitions: the load dates whose folder has its manifest.

    Listing only (the manifests' names, expanded at every query; DuckDB then skips the other dates' files
    unread); a landing killed between its data and its manifest leaves a data.parquet that is not landed yet.
    """
    folder_date = _literal("load_date=([0-9-]+)[/\\\\][^/\\\\]+$")
    return (f" where load_date in (select try_cast(regexp_extract(file, {folder_date}, 1) as date)"
            f" from glob({manifests}))")


def _files_macro(schema: str, name: str, kind: str = "files") -> str:
    """The macro naming the files a view reads: `raw.orders__files()`, `raw.orders__manifests()`."""
    return _ident(schema, f"{name}__{kind}")


def _globs(root: str, layer: str, table: str) -> tuple[str, str]:
    """SQL literals: the glob of a table's partition files, and of its manifests (raw: its landed partitions)."""
    return (_literal(edges.pattern(root, layer, table)),
            _literal(edges.pattern(root, layer, table, lake.MANIFEST_FILE)))


def _all_partitions(root: str, layer: str, table: str, name: str) -> list[str]:
    """What points a view's macros at every partition once the views that read it are created (see init_sql)."""
    data, manifests = _globs(root, layer, table)
    lines = [f"create or replace macro {_files_macro(layer, name)}() as {data};"]
    if layer == "raw":
        lines.append(f"create or replace macro {_files_macro(layer, name, 'manifests')}() as {manifests};")
    return lines


def _restatements_view(root: str, has_files: bool) -> str:
    """audit.restatements: the restatement record of each restated date, typed (no rows: none was restated)."""
    target = _ident("audit", "restatements")
    if not has_files:
        typed = ", ".join(f"null::{kind} as {_ident(column)}" for column, kind in RESTATEMENT_COLUMNS.items())
        return f"create or replace view {target} as select {typed} where false;"
    columns = "{" + ", ".join(f"{_literal(column)}: {_literal(kind)}" for column, kind in RESTATEMENT_COLUMNS.items()) + "}"
    return (f"create or replace view {target} as select * from read_json("
            f"{_literal(edges.pattern(root, 'audit', 'restatements'))}, columns = {columns}, format = 'auto');")


def _files_view(root: str, layer: str, table: str, name: str, files: list[str], schema: str | None = None,
                bind_edges: bool = False) -> str:
    """A view `<schema or layer>.<name>` over the partitions of lake table <layer>/<table>, or a refusing placeholder.

    With `bind_edges`, created over `files` (its oldest and newest partition) through macros `_all_partitions`
    points at every partition afterwards; else over the globs.
    """
    if _is_restatements(layer, table):
        return _restatements_view(root, bool(files))
    target = _ident(schema or layer, name)
    if not files:
        message = (f"lake table {layer}/{table} {NO_PARTITIONS} (nothing under"
                   f" {os.path.join(root, layer, table)}); run the pipeline for a date first, then reopen the lake")
        # the filter makes any read raise, count(*) included (a bare select-list error() is pruned)
        return (f"create or replace view {target} as select 1 as no_partitions_yet"
                f" where error({_literal(message)}) is null;")
    lines, (data, manifests) = [], _globs(root, layer, table)
    if bind_edges:
        data, manifests = f"{_files_macro(layer, name)}()", f"{_files_macro(layer, name, 'manifests')}()"
        lines.append(f"create or replace macro {data} as [{', '.join(map(_literal, files))}];")
        if layer == "raw":  # the newest partition's manifest
            manifest = os.path.join(os.path.dirname(files[-1]), lake.MANIFEST_FILE)
            lines.append(f"create or replace macro {manifests} as {_literal(manifest)};")
    # hive_partitioning: load_date (and source_table) come from the folder names for files that lack them
    landed = _landed_only(manifests) if layer == "raw" else ""
    lines.append(f"create or replace view {target} as select * from read_parquet({data},"
                 f" hive_partitioning = true, union_by_name = true){landed};")
    return "\n".join(lines)


def _current_view(table: str, gate_results: bool) -> str:
    """A warehouse current view; its SQL reads `<table>_all`, resolved in schema warehouse."""
    body = warehouse.current_view_sql(table).strip().rstrip(";")
    if table == "daily_metrics" and gate_results:
        counted = sqlrun.sql_text("gate", "dq_failed_count").strip().rstrip(";")
        body = DAILY_METRICS_SQL.format(current=body.replace("\n", "\n    "),
                                        dq_failed_count=counted.replace("\n", "\n    ")).strip()
    return f"create or replace view {_ident('warehouse', table)} as\n{body}\n;"


def _partitions_name(layer: str, table: str) -> str:
    """The view over a table's partitions: `<table>_all` where the current rows take the table's name."""
    current = warehouse.TABLES if layer == "warehouse" else marts.CONTRIBUTIONS if layer == "marts" else ()
    return f"{table}_all" if table in current else table


def _mart_views(root: str, present: dict[str, dict[str, list[str]]]) -> list[str]:
    """The marts' current views: the contributions over the current facts, then the derived marts and views.

    A mart whose inputs have no partitions yet is a refusing placeholder naming the missing table.
    """
    have = {f"warehouse.{table}" for table, found in present["warehouse"].items() if found}
    have |= {f"marts.{table}" for table, found in present["marts"].items() if found and table not in marts.CONTRIBUTIONS}
    lines = []
    for table in (*marts.CONTRIBUTIONS, *marts.DERIVED, *marts.VIEWS):
        body = marts.current_sql(table)
        needed = [f"warehouse.{name}" for name in marts.inputs(table)] if table in marts.CONTRIBUTIONS else [
            name for name in sqlrun.references(body).relations if "." in name]
        missing = [name for name in needed if name not in have]
        if missing:
            layer, name = missing[0].split(".", 1)
            lines.append(_files_view(root, layer, name, table, [], schema="marts"))
            continue
        lines.append(f"create or replace view {_ident('marts', table)} as\n{body}\n;")
        have.add(f"marts.{table}")
    return lines


def init_sql(lake_dir: str | os.PathLike[str] | None = None, bind_edges: bool = False) -> str:
    """The SQL script that creates every view: over the globs (what `--sql` prints), or with `bind_edges` over each
    table's oldest and newest partition, then the globs (what `open_lake` runs on DuckDB 1.5 or later)."""
    root = os.fspath(lake_dir) if lake_dir is not None else lake.root()
    root = root if s3.is_remote(root) else os.path.abspath(root)
    lines = [
        f"-- The lake at {root} as DuckDB views (generated by `python -m pipeline.lake.views --sql`).",
        "-- Views over whole partitions only (data.parquet): safe while the pipeline writes. New partitions",
        "-- show up by themselves; regenerate after the first run or when the pipeline adds a table.",
        "set TimeZone = 'UTC';",
    ]
    present = {layer: edges.tables(root, layer, KNOWN_TABLES[layer]) for layer in lake.LAYERS}
    every_partition = []  # bind_edges: created over two partitions each, the views then read every partition
    for layer in lake.LAYERS:
        lines.append(f"create schema if not exists {_ident(layer)};")
        for table, files in present[layer].items():
            # warehouse tables and the marts' contributions: every version (load date) as <table>_all, the
            # current view as <table> (below)
            name = _partitions_name(layer, table)
            lines.append(_files_view(root, layer, table, name, files, bind_edges=bind_edges))
            if bind_edges and files and not _is_restatements(layer, table):
                every_partition += _all_partitions(root, layer, table, name)
    gate_results = bool(present["audit"]["dq_results"])
    # before the warehouse views: the current daily_metrics reads it
    lines.append(f"create or replace view {_ident('audit', 'dq_failures')} as{DQ_FAILURES_SQL.rstrip()}\n;"
                 if gate_results else _files_view(root, "audit", "dq_results", "dq_failures", []))
    for table in warehouse.TABLES:
        lines.append(_current_view(table, gate_results) if present["warehouse"][table]
                     else _files_view(root, "warehouse", table, table, []))
    lines.extend(_mart_views(root, present))
    if every_partition:
        lines.append("-- Every view above now reads every partition, listed at each query:")
    return "\n".join(lines + every_partition) + "\n"


def _existing(lake_dir: str | os.PathLike[str] | None) -> str:
    """The lake's root (default: the configured lake); FileNotFoundError naming it if that folder is not there."""
    root = os.fspath(lake_dir) if lake_dir is not None else lake.root()
    if not s3.is_remote(root) and not os.path.isdir(root):
        raise FileNotFoundError(f"no lake at {root}; set ECOMM_LAKE_DIR or [paths] lake_dir, or run the pipeline")
    return root


def open_lake(lake_dir: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every lake table as a view (default: the configured lake)."""
    root = _existing(lake_dir)
    # not sqlrun.connect(): under Jupyter, DuckDB refuses to touch its progress bar without ipywidgets
    con = duckdb.connect(":memory:")
    sqlrun.apply_settings(con)
    if s3.is_remote(root):
        s3.register_duckdb(con)
    try:
        con.execute(init_sql(root, bind_edges=binds_edges()))
    except duckdb.IOException as err:  # a partition removed since the listing (a restatement): list again, once
        if lake.store_error(err):
            raise
        con.execute(init_sql(root, bind_edges=binds_edges()))  # every statement creates or replaces
    return con


def relations(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, view) of every lake relation on a connection, sorted."""
    return con.execute(
        "select schema_name, view_name from duckdb_views() where not internal and schema_name in"
        " ('raw', 'staging', 'warehouse', 'marts', 'audit') order by schema_name, view_name"
    ).fetchall()


# ------------------------------------------------------------------------------------------ queries
def queries() -> dict[str, str]:
    """name -> the question it answers, for every `queries/<name>.sql` (first comment line)."""
    found = {}
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        found[path.stem] = question(path.stem)
    return found


def query_text(name: str) -> str:
    """The text of `queries/<name>.sql` (runs unchanged on the lake and on Postgres)."""
    path = QUERIES_DIR / f"{lake._check_name(name)}.sql"
    if not path.exists():
        raise FileNotFoundError(f"no query {name!r}: expected {path}; see {QUERIES_DIR} for the list")
    return path.read_text(encoding="utf-8")


def question(name: str) -> str:
    """The question a query answers: its header's `-- Question:` line."""
    for line in query_text(name).splitlines():
        if line.lower().startswith("-- question:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"queries/{name}.sql has no '-- Question:' header line")


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    from pipeline import cli  # the commands' one-line errors; not needed by a notebook importing the views

    parser = cli.Parser(prog="python -m pipeline.lake.views", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", help="lake root (default: ECOMM_LAKE_DIR or [paths] lake_dir)")
    parser.add_argument("--sql", action="store_true", help="print the init script for `duckdb -init`")
    args = parser.parse_args(argv)
    try:
        return _show(args)
    except config.BadSetting as err:  # a setting the lake needs cannot work (AWS_MAX_ATTEMPTS=zero): one line
        print(f"python -m pipeline.lake.views: error: {err}", file=sys.stderr)
        return 35
    except Exception as err:  # e.g. the lake's store refused or did not answer: the runbook's one line; the rest re-raised
        from pipeline.tasks import runbook  # only then: a notebook importing the views never loads the tasks

        argv = sys.argv[1:] if argv is None else argv
        if (code := runbook.told("python -m pipeline.lake.views", argv, err)) is None:
            raise
        return code


def cli_preamble(root: str) -> str:
    """What the duckdb CLI needs before the views of an object-store lake: DuckDB's own S3 client (the httpfs and
    aws extensions, which the CLI downloads on first use) with the credentials and endpoint of its environment.
    The pipeline and `open_lake` never download: they read through pyarrow's client (`s3.register_duckdb`)."""
    if not s3.is_remote(root):
        return ""
    options = ["TYPE s3", "PROVIDER credential_chain"]
    endpoint = urllib.parse.urlsplit(os.environ.get("AWS_ENDPOINT_URL", "").strip())
    if endpoint.netloc:  # MinIO, Ceph, R2 ...: the server the pipeline's client uses, by path
        options += [f"ENDPOINT {_literal(endpoint.netloc)}", "URL_STYLE 'path'",
                    f"USE_SSL {str(endpoint.scheme == 'https').lower()}"]
    if region := os.environ.get("AWS_REGION", "").strip():
        options.append(f"REGION {_literal(region)}")
    return ("-- An object-store lake: the duckdb CLI reads it with its httpfs and aws extensions (installed on first"
            " use;\n-- where nothing may download, `INSTALL httpfs; INSTALL aws;` from a local repository first) and"
            " the AWS\n-- credentials of the environment it starts in (keys, profile or role; never written here).\n"
            f"create or replace secret ecomm_lake ({', '.join(options)});\n")


def _show(args: argparse.Namespace) -> int:
    try:  # a script or views over a folder that is not there would read as an empty lake
        root = _existing(args.lake or None)
    except FileNotFoundError as err:
        print(f"python -m pipeline.lake.views: error: {err}", file=sys.stderr)
        return 1
    if args.sql:
        sys.stdout.write(cli_preamble(root) + init_sql(root))
        return 0
    con = open_lake(root)
    print(f"lake {root if s3.is_remote(root) else Path(root).absolute()}")
    failed = 0
    for schema, view in relations(con):
        try:
            rows = con.execute(f"select count(*) from {_ident(schema, view)}").fetchone()[0]
            print(f"  {schema}.{view}: {rows} rows")
        except duckdb.Error as err:
            if lake.store_error(err):  # the store, not an empty table
                raise
            if _REFUSAL.search(str(err)):  # a placeholder's own refusal: the table is empty
                print(f"  {schema}.{view}: no partitions yet")
            else:
                failed = 1
                print(f"  {schema}.{view}: error: {' '.join(str(err).split())}")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
