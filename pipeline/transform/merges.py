"""How a dimension's load-date contributions merge into its current rows: stated once, for both engines.

Each load date's warehouse partition holds what that date says about a dimension (dim_user: the
users active that day, with the location of the latest users snapshot; dim_product: the catalog as
of the date). Two places merge those contributions, and must agree whatever order the dates were
built or published in:

- the lake's current view (DuckDB, `warehouse.current_view_sql`): over every partition at once;
- the Postgres publish (`pipeline.serving.feeds`): one date at a time into the rows already
  published, as `insert ... on conflict do update`.

Both are rendered here from one declaration per dimension. Postgres keeps no load_date per row; it
keeps the load date a merge needs in an `as_of` column (dim_user.city_as_of, dim_product.valid_as_of,
dim_product_history.valid_as_of); dim_date's rows are the same in every partition and need none.
Merging is monotonic in Postgres, so when a date is published again the keys its earlier version
named are merged anew from every published date's partition (`postgres_replay`, one query).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from pipeline.lake import sqlrun
from pipeline.lake.sqlrun import quote_ident as q

MIN = "min"  # the smallest value over load dates, nulls ignored
MAX = "max"  # the greatest value over load dates, nulls ignored
LAST_REPORTED = "last reported"  # together with the other such columns, from the latest load date reporting any
LOAD_DATE = "load_date"  # a contribution's load date (the partition key; Postgres: the merge's as_of column)
LOAD_DATE_PARAM = "$load_date::date"  # the date being published, bound when one date's partition is read


@dataclasses.dataclass(frozen=True)
class ColumnMerge:
    """A dimension merged column by column (MIN, MAX, LAST_REPORTED); every non-key column has a rule."""

    table: str
    key: str
    rules: tuple[tuple[str, str], ...]  # (column, rule) in the table's column order
    as_of: str  # Postgres column: the load date the LAST_REPORTED columns come from
    about: str  # one line for the view's header

    def reported(self) -> list[str]:
        return [column for column, rule in self.rules if rule == LAST_REPORTED]

    def lake_view(self) -> str:
        """The current view: one row per key over `<table>_all` (every partition), plus its latest load_date."""
        c = "contributions."
        aggregates = [f"        {c}{q(self.key)},"]
        for column, rule in self.rules:
            if rule in (MIN, MAX):
                aggregates.append(f"        {rule}({c}{q(column)}) as {q(column)},")
        reported = self.reported()
        if reported:
            fields = ", ".join(f"{q(column)} := {c}{q(column)}" for column in reported)
            reported_any = " or ".join(f"{c}{q(column)} is not null" for column in reported)
            aggregates.append(f"        arg_max(struct_pack({fields}), {c}{LOAD_DATE})\n"
                              f"            filter (where {reported_any}) as _reported,")
        aggregates.append(f"        max({c}{LOAD_DATE}) as {LOAD_DATE},")
        final = [f"merged.{q(self.key)}"] + [
            f"merged._reported.{q(column)} as {q(column)}" if rule == LAST_REPORTED else f"merged.{q(column)}"
            for column, rule in self.rules] + [f"merged.{LOAD_DATE}"]
        return (
            f"-- {self.table} (current): {self.about}\n"
            f"-- Rendered from pipeline.transform.merges (the Postgres publish merges by the same rules).\n"
            f"with contributions as (\n    select * from {q(self.table + '_all')}\n),\n\n"
            f"merged as (\n    select\n" + "\n".join(aggregates) + "\n"
            f"    from contributions\n    group by {c}{q(self.key)}\n),\n\n"
            f"final as (\n    select\n        " + ",\n        ".join(final) + ",\n    from merged\n)\n\n"
            "select * from final\n"
        )

    def postgres_rules(self) -> dict[str, str]:
        """column -> its value when a date's row (`excluded`) meets the published one (`t`)."""
        newer = (f"excluded.{q(self.as_of)} is not null"
                 f" and (t.{q(self.as_of)} is null or excluded.{q(self.as_of)} >= t.{q(self.as_of)})")
        rules = {}
        for column, rule in self.rules:
            if rule == MIN:
                rules[column] = f"least(t.{q(column)}, excluded.{q(column)})"
            elif rule == MAX:
                rules[column] = f"greatest(t.{q(column)}, excluded.{q(column)})"
            else:
                rules[column] = f"case when {newer} then excluded.{q(column)} else t.{q(column)} end"
        rules[self.as_of] = f"greatest(t.{q(self.as_of)}, excluded.{q(self.as_of)})"
        return rules

    def postgres_where(self) -> str:
        return ""

    def postgres_derived(self, load_date: str = LOAD_DATE_PARAM) -> dict[str, str]:
        """Postgres columns computed from the lake row (DuckDB expressions; `load_date`: the contribution's date)."""
        reported_any = " or ".join(f"{q(column)} is not null" for column in self.reported())
        return {self.as_of: f"case when {reported_any} then {load_date} end"}

    def postgres_replay(self, columns: list[str]) -> str:
        """The Postgres rows (`columns`, in order) the merge makes of `contributions`: Postgres-shaped rows of any dates.

        What publishing those dates one by one leaves in Postgres, in one query (a replaced date's keys
        are merged again from the published dates, see `pipeline.serving.feeds.replay_keys`).
        """
        rules, c = dict(self.rules), "contributions."
        reported = self.reported()
        merged, final = [f"{c}{q(self.key)}"], []
        for column in columns:
            rule = rules.get(column)
            if column == self.as_of:
                merged.append(f"max({c}{q(column)}) as {q(column)}")  # the as_of rule: greatest
            elif rule in (MIN, MAX):
                merged.append(f"{rule}({c}{q(column)}) as {q(column)}")
            elif column != self.key and rule != LAST_REPORTED:
                raise ValueError(f"{self.table}.{column} has no merge rule")
            final.append(f"merged._reported.{q(column)} as {q(column)}" if rule == LAST_REPORTED
                         else f"merged.{q(column)}")
        if reported:  # together, from the latest date that reported any (the as_of column is set then)
            fields = ", ".join(f"{q(column)} := {c}{q(column)}" for column in reported)
            merged.append(f"arg_max(struct_pack({fields}), {c}{q(self.as_of)})"
                          f" filter (where {c}{q(self.as_of)} is not null) as _reported")
        return (f"with merged as (\n    select {', '.join(merged)}\n    from contributions\n"
                f"    group by {c}{q(self.key)}\n)\n\nselect {', '.join(final)} from merged")


@dataclasses.dataclass(frozen=True)
class RowMerge:
    """A dimension whose rows replace each other whole: the best-ranked contribution of a key wins."""

    table: str
    key: str
    rank: tuple[tuple[str, str], ...]  # (column, "asc" | "desc"), best first; LOAD_DATE is the contribution's date
    as_of: str  # Postgres column: the load date of the row kept
    about: str

    def lake_view(self) -> str:
        return _best_row_view(self.table, self.key, self.rank, self.about)

    def postgres_rules(self) -> dict[str, str]:
        return {}  # the whole row: every column takes the date's value, when `postgres_where` lets it

    def postgres_where(self) -> str:
        """The date's row (`excluded`) replaces the published one (`t`) when it ranks at least as high."""
        new, old = [], []
        for column, direction in self.rank:
            name = q(self.as_of if column == LOAD_DATE else column)
            better_is_smaller = direction == "asc"
            new.append(f"excluded.{name}" if better_is_smaller else f"t.{name}")
            old.append(f"t.{name}" if better_is_smaller else f"excluded.{name}")
        return f"({', '.join(new)}) <= ({', '.join(old)})"  # row comparison: lexicographic

    def postgres_derived(self, load_date: str = LOAD_DATE_PARAM) -> dict[str, str]:
        return {self.as_of: load_date}

    def postgres_replay(self, columns: list[str]) -> str:
        """The Postgres rows (`columns`, in order) the merge makes of `contributions` (see ColumnMerge.postgres_replay)."""
        order = ", ".join(f"contributions.{q(self.as_of if column == LOAD_DATE else column)} {direction}"
                          for column, direction in self.rank)
        return (f"select {', '.join(f'contributions.{q(column)}' for column in columns)}\n"
                f"from contributions\nqualify row_number() over (\n"
                f"    partition by contributions.{q(self.key)} order by {order}\n) = 1")


@dataclasses.dataclass(frozen=True)
class KeyMerge:
    """A dimension whose row is a function of its key (a calendar day): only which keys exist merges.

    Every partition that names a key holds the same row for it, so the lake keeps the latest and
    Postgres the one published last; a key stays while a published date names it.
    """

    table: str
    key: str
    about: str
    as_of: ClassVar[None] = None  # Postgres keeps no load date per row: equal rows need none

    def lake_view(self) -> str:
        # the model's columns, in its order: `*` would take the oldest partition's (union_by_name keeps the first
        # file's order), which an older model wrote (dim_date's iso_year came before is_weekend)
        columns = sqlrun.output_columns(sqlrun.sql_text("warehouse", self.table))
        return _best_row_view(self.table, self.key, ((LOAD_DATE, "desc"),), self.about, columns)

    def postgres_rules(self) -> dict[str, str]:
        return {}

    def postgres_where(self) -> str:
        return ""

    def postgres_derived(self, load_date: str = LOAD_DATE_PARAM) -> dict[str, str]:
        return {}

    def postgres_replay(self, columns: list[str]) -> str:
        """The Postgres rows (`columns`, in order) of the keys `contributions` names: any one row of each."""
        return (f"select {', '.join(f'contributions.{q(column)}' for column in columns)}\n"
                f"from contributions\nqualify row_number() over (partition by contributions.{q(self.key)}) = 1")


def _best_row_view(table: str, key: str, rank: tuple[tuple[str, str], ...], about: str,
                   columns: tuple[str, ...] = ()) -> str:
    """A current view keeping each key's best-ranked row over `<table>_all` (LOAD_DATE: the partition's date), of
    `columns` in their order (default: every column of `<table>_all`)."""
    order = ", ".join(f"all_versions.{q(column) if column != LOAD_DATE else LOAD_DATE} {direction}"
                      for column, direction in rank)
    selected = "".join(f"\n        all_versions.{q(column)}," for column in columns) or " *"
    return (
        f"-- {table} (current): {about}\n"
        f"-- Rendered from pipeline.transform.merges (the Postgres publish merges by the same rule).\n"
        f"with all_versions as (\n    select * from {q(table + '_all')}\n),\n\n"
        f"final as (\n    select{selected}\n    from all_versions\n    qualify row_number() over (\n"
        f"        partition by all_versions.{q(key)}\n        order by {order}\n    ) = 1\n)\n\n"
        "select * from final\n"
    )


@dataclasses.dataclass(frozen=True)
class BuildMerge:
    """A small table each load date rebuilds whole: the build of the greatest load date is the table."""

    table: str
    key: tuple[str, ...]
    as_of: str  # Postgres column: the load date of the build the table holds
    about: str

    def lake_view(self) -> str:
        return (
            f"-- {self.table} (current): {self.about}\n"
            f"-- Rendered from pipeline.transform.merges (the Postgres publish keeps the same build).\n"
            f"with all_versions as (\n    select * from {q(self.table + '_all')}\n),\n\n"
            f"final as (\n    select *\n    from all_versions\n"
            f"    where all_versions.{LOAD_DATE} = (select max(latest.{LOAD_DATE}) from {q(self.table + '_all')} as latest)\n"
            ")\n\nselect * from final\n"
        )

    def postgres_derived(self) -> dict[str, str]:
        return {self.as_of: LOAD_DATE_PARAM}


DIM_DATE = KeyMerge(
    table="dim_date", key="date_id",
    about="one row per calendar date any load date referred to (the attributes are the\n"
          "-- same in every partition; the latest is kept).",
)
DIM_USER = ColumnMerge(
    table="dim_user", key="user_id",
    rules=(("first_seen_date", MIN), ("first_order_date", MIN), ("last_seen_date", MAX),
           ("city", LAST_REPORTED), ("country", LAST_REPORTED)),
    as_of="city_as_of",
    about="one row per user_id: the earliest first seen / first order and the latest last seen date over\n"
          "-- every load date; city and country together, from the latest load date that reported either.",
)
DIM_PRODUCT = RowMerge(
    table="dim_product", key="product_id",
    rank=(("is_inferred", "asc"), (LOAD_DATE, "desc")),
    as_of="valid_as_of",
    about="one row per product_id: the catalog version of the latest load date that had the product\n"
          "-- in its catalog; an inferred member only when no load date ever found it in a catalog.",
)
DIM_PRODUCT_HISTORY = BuildMerge(
    table="dim_product_history", key=("product_id", "version"),
    as_of="valid_as_of",
    about="the SCD2 history as of the latest load date (each partition holds the\n"
          "-- whole history rebuilt from every snapshot up to its date). Grain: one row per product version.",
)
MERGES: dict[str, KeyMerge | ColumnMerge | RowMerge | BuildMerge] = {
    merge.table: merge for merge in (DIM_DATE, DIM_USER, DIM_PRODUCT, DIM_PRODUCT_HISTORY)}
