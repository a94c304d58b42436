"""The quality gate's settings: `[checks]` in luigi.cfg, validated, and the SodaCL variables of a date.

`gate_variables(D)` is the only way a value reaches a checks file's SQL text (`${name}`); `check_settings()`
refuses thresholds that cannot mean anything before a run does any work. `pipeline.quality.gate` re-exports
both, with the `checks` section class.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import luigi

from pipeline import config, lake, resources
from pipeline.quality.results import GATED_TABLES, VIEWS
from pipeline.transform import staging
from pipeline.setting_source import fix_where, named


class checks(config.NamedBadSettings, luigi.Config):  # noqa: N801 - luigi maps the class name to the [checks] section
    """[checks]: the quality gate's thresholds (the seed system's rules as defaults); a value that cannot
    be read is a one-line `pipeline.config.BadSetting` naming it, not luigi's parse error in a traceback."""

    checks_dir = luigi.Parameter(default="checks")  # relative to pipeline.resources.ROOT (checkout or package)
    orders_min_rows = luigi.IntParameter(default=100)
    orders_max_rows = luigi.IntParameter(default=500_000)
    events_min_rows = luigi.IntParameter(default=500)
    events_max_rows = luigi.IntParameter(default=2_000_000)
    unknown_product_warn_pct = luigi.FloatParameter(default=1.0)
    unknown_product_fail_pct = luigi.FloatParameter(default=99.0)
    # shares (%) of the facts' rows whose user the users snapshot covering the date lacks (gate_views: unknown_users)
    unknown_user_warn_pct = luigi.FloatParameter(default=1.0)
    unknown_user_fail_pct = luigi.FloatParameter(default=99.0)
    # the catalog snapshot covering a date (gate_catalogs: catalog_snapshots): share (%) of its members without a
    # checked field (products' category, users' city, country), and its members against the previous snapshot's
    catalog_field_missing_warn_pct = luigi.FloatParameter(default=5.0)
    catalog_field_missing_fail_pct = luigi.FloatParameter(default=50.0)
    catalog_size_warn_low_ratio = luigi.FloatParameter(default=0.9)
    # ids a catalog snapshot lists more than once with different values (staging keeps the later line) above which
    # the snapshot warns (it never fails: staging cannot tell which version is right)
    catalog_conflict_warn_count = luigi.IntParameter(default=0)
    # cancelled/refunded orders older than the late window whose order no other load date delivered (fact_orders.yml)
    unseen_status_change_warn_count = luigi.IntParameter(default=0)
    catalog_size_fail_low_ratio = luigi.FloatParameter(default=0.5)
    freshness_warn_hours = luigi.IntParameter(default=24)
    # late rows: shares (%) of stg_orders / stg_events rows whose business day is not the load date (a day's file
    # that is another date's is all late rows); anomalies of fact_orders that only warn (_anomaly_settings)
    late_warn_pct = luigi.FloatParameter(default=20.0)
    late_fail_pct = luigi.FloatParameter(default=90.0)
    price_off_catalog_ratio = luigi.FloatParameter(default=10.0)
    price_off_catalog_warn_pct = luigi.FloatParameter(default=1.0)
    quantity_warn_max = luigi.IntParameter(default=1000)
    # gate views (pipeline.quality.gate_views): shares (%) of a source's received records (raw rows + rejected
    # lines) thrown away, and its volume against the median of earlier load dates
    lost_warn_pct = luigi.FloatParameter(default=5.0)
    lost_fail_pct = luigi.FloatParameter(default=50.0)
    rejected_warn_pct = luigi.FloatParameter(default=0.0)
    rejected_fail_pct = luigi.FloatParameter(default=10.0)
    # shares (%) of a source's raw rows collapsed as exact duplicates, and of the orders' raw rows quarantined as a
    # second line of an order (multiple_order_lines: the file's grain changed)
    duplicate_warn_pct = luigi.FloatParameter(default=1.0)
    duplicate_fail_pct = luigi.FloatParameter(default=10.0)
    # fewer collapsed rows than this never warn (one resent row of a 50-row catalog is 2 %); the fail share applies
    duplicate_warn_min_rows = luigi.IntParameter(default=2)
    multiple_order_lines_warn_pct = luigi.FloatParameter(default=0.0)
    multiple_order_lines_fail_pct = luigi.FloatParameter(default=2.0)
    volume_window = luigi.IntParameter(default=7)
    volume_min_history = luigi.IntParameter(default=3)
    volume_warn_low_ratio = luigi.FloatParameter(default=0.6)
    volume_fail_low_ratio = luigi.FloatParameter(default=0.25)
    # one source's own fail ratio (unset: volume_fail_low_ratio): a day really without events is published with
    # --checks-events-volume-fail-low-ratio 0 while the orders of that run keep their rule
    orders_volume_fail_low_ratio = luigi.OptionalFloatParameter(default=None)
    events_volume_fail_low_ratio = luigi.OptionalFloatParameter(default=None)
    volume_warn_high_ratio = luigi.FloatParameter(default=3.0)
    serving_sslmode = luigi.Parameter(default="require")  # TCP to a non-loopback Postgres


def checks_dir() -> Path:
    """The root of the SodaCL files: [checks] checks_dir, relative to the product's files (the
    repository checkout, or the installed package's copy: see pipeline.resources).

    BadSetting when it is empty (the product's own folder, not its checks) or lacks a file the gate scans.
    """
    value = str(checks().checks_dir).strip()
    root = resources.resolve(value)
    gated = [*((layer, table) for table, layer in GATED_TABLES.items()), *((layer, view) for view, layer in VIEWS.items())]
    missing = [f"{layer}/{table}.yml" for layer, table in gated if not (root / layer / f"{table}.yml").is_file()]
    if not value or missing:
        why = "empty: the product's own folder" if not value else \
            f"{root} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        raise config.BadSetting(
            f"{named('checks', 'checks_dir', value)} is not a folder of the quality gate's SodaCL files ({why}): give"
            f" the folder that holds <layer>/<table>.yml, {fix_where('checks', 'checks_dir')}, or remove it for the"
            " default")
    return root


def checks_file(layer: str, table: str, root: Path | None = None) -> Path:
    """`checks/<layer>/<table>.yml`: the SodaCL file of a table (names as in the lake)."""
    lake.table_dir(layer, table)  # refuses unknown layers and unsafe names
    return (root or checks_dir()) / layer / f"{table}.yml"


def _ts(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def gate_variables(load_date: dt.date | str, *, catalog_covered: bool = True,
                   users_catalog_covered: bool = True) -> dict[str, str]:
    """The SodaCL variables of a date: the only values that reach the checks' SQL text.

    Without any catalog snapshot on or before the date (`catalog_covered` false: dim_product has no
    catalog member, only inferred ones) every product is unknown by construction; the unknown-product
    share then warns but cannot fail (its fail threshold becomes 100 %), and dim_product.yml warns
    that no catalog covers the date. Likewise without a users snapshot on or before the date
    (`users_catalog_covered` false) every user is unknown: the unknown-user share warns but cannot fail.

    The day's boundaries are those of the business day ([model] business_timezone), as naive UTC
    timestamps like the staged ones. `future_limit_ts` is the latest instant staging accepts at all
    (`staging.timestamp_limits`): the end of the business day plus the tolerance, or later for a
    timestamp written with the load date in a western offset (at most the day's end at UTC-14:00).
    """
    day = lake.parse_date(load_date)
    settings = checks()
    timezone = staging.business_timezone()  # validated: it reaches the checks' SQL text
    day_start = staging.business_day_start(day, timezone)
    day_end = staging.business_day_start(day + dt.timedelta(days=1), timezone)
    limits = staging.timestamp_limits(day)
    pcts = {name: _pct_pair(settings, name) for name in PCT_PAIRS}
    warn_pct, fail_pct = pcts["unknown_product"]
    volume = _volume_settings(settings)
    return {
        "load_date": day.isoformat(),
        "business_timezone": timezone,
        "day_start_ts": _ts(day_start),
        "day_end_ts": _ts(day_end),
        "future_limit_ts": _ts(limits["latest_accepted_ts"]),
        # a cancelled or refunded order is a status change, never a late row (stg_orders.yml)
        "status_change_statuses": ", ".join(f"'{status}'" for status in staging.STATUS_CHANGE_STATUSES),
        # Soda's freshness "now": the end of the load date, so reruns of old dates judge the same way
        "NOW": day_end.isoformat(),
        "freshness_warn": f"{int(settings.freshness_warn_hours)}h",
        "orders_min_rows": str(int(settings.orders_min_rows)),
        "orders_max_rows": str(int(settings.orders_max_rows)),
        "events_min_rows": str(int(settings.events_min_rows)),
        "events_max_rows": str(int(settings.events_max_rows)),
        "unknown_product_warn_pct": repr(warn_pct),
        "unknown_product_fail_pct": repr(fail_pct if catalog_covered else 100.0),
        "unknown_user_warn_pct": repr(pcts["unknown_user"][0]),
        "unknown_user_fail_pct": repr(pcts["unknown_user"][1] if users_catalog_covered else 100.0),
        "lost_warn_pct": repr(pcts["lost"][0]),
        "lost_fail_pct": repr(pcts["lost"][1]),
        "rejected_warn_pct": repr(pcts["rejected"][0]),
        "rejected_fail_pct": repr(pcts["rejected"][1]),
        "duplicate_warn_pct": repr(pcts["duplicate"][0]),
        "duplicate_fail_pct": repr(pcts["duplicate"][1]),
        "multiple_order_lines_warn_pct": repr(pcts["multiple_order_lines"][0]),
        "multiple_order_lines_fail_pct": repr(pcts["multiple_order_lines"][1]),
        "late_warn_pct": repr(pcts["late"][0]),
        "late_fail_pct": repr(pcts["late"][1]),
        "catalog_field_missing_warn_pct": repr(pcts["catalog_field_missing"][0]),
        "catalog_field_missing_fail_pct": repr(pcts["catalog_field_missing"][1]),
        **_catalog_size_settings(settings),
        **_count_settings(settings),
        **volume,
        **_anomaly_settings(settings),
    }


def check_settings() -> None:
    """Refuse [checks] thresholds that contradict each other, or a checks_dir without the gate's files (BadSetting
    naming them), before a run does any work."""
    checks_dir()
    settings = checks()
    for name in PCT_PAIRS:
        _pct_pair(settings, name)
    _volume_settings(settings)
    _catalog_size_settings(settings)
    _count_settings(settings)
    _anomaly_settings(settings)
    _row_bounds(settings)


def _row_bounds(settings: checks) -> None:
    """A daily source's row count bounds and the freshness warning's hours: refused unless 0 <= min <= max, hours >= 0
    (a negative bound or hour count made the check pass or warn on every date, whatever came)."""
    for source in VOLUME_SOURCES:
        least, most = int(getattr(settings, f"{source}_min_rows")), int(getattr(settings, f"{source}_max_rows"))
        if not 0 <= least <= most:
            raise config.BadSetting(f"[checks] needs 0 <= {source}_min_rows <= {source}_max_rows,"
                                    f" got {least} and {most}")
    if (hours := int(settings.freshness_warn_hours)) < 0:
        raise config.BadSetting(f"[checks] needs freshness_warn_hours >= 0, got {hours}")


# the [checks] <name>_warn_pct / <name>_fail_pct pairs (_pct_pair)
PCT_PAIRS = ("unknown_product", "unknown_user", "lost", "rejected", "duplicate", "multiple_order_lines", "late",
             "catalog_field_missing")


def _pct_pair(settings: checks, name: str) -> tuple[float, float]:
    """[checks] <name>_warn_pct and <name>_fail_pct, refused unless 0 <= warn <= fail <= 100."""
    warn, fail = float(getattr(settings, f"{name}_warn_pct")), float(getattr(settings, f"{name}_fail_pct"))
    if not 0 <= warn <= fail <= 100:
        raise config.BadSetting(f"[checks] needs 0 <= {name}_warn_pct <= {name}_fail_pct <= 100,"
                                f" got {warn} and {fail}")
    return warn, fail


def _volume_settings(settings: checks) -> dict[str, str]:
    """The volume check's [checks] settings as variables, refused unless they make sense together.

    Each daily source gets its own fail ratio (`<source>_volume_fail_low_ratio`, else `volume_fail_low_ratio`), and
    `<source>_publish_min_rows`, below which its staged table's row_count fails: an empty day blocks unless that
    source's volume check is told that no day is too small (ratio 0: "this small day is real", as for the volume).
    """
    window, min_history = int(settings.volume_window), int(settings.volume_min_history)
    warn_low, warn_high = float(settings.volume_warn_low_ratio), float(settings.volume_warn_high_ratio)
    fail_low = {"": float(settings.volume_fail_low_ratio)}
    for source in VOLUME_SOURCES:
        own = getattr(settings, f"{source}_volume_fail_low_ratio")
        fail_low[f"{source}_"] = fail_low[""] if own is None else float(own)
    if not 1 <= min_history <= window:
        raise config.BadSetting(f"[checks] needs 1 <= volume_min_history <= volume_window,"
                                f" got {min_history} and {window}")
    for prefix, ratio in fail_low.items():
        if not 0 <= ratio <= warn_low <= 1 <= warn_high:
            raise config.BadSetting(f"[checks] needs 0 <= {prefix}volume_fail_low_ratio <= volume_warn_low_ratio <= 1"
                                    f" <= volume_warn_high_ratio, got {ratio}, {warn_low} and {warn_high}")
    return {
        "volume_window": str(window),
        "volume_min_history": str(min_history),
        "volume_warn_low_ratio": repr(warn_low),
        "volume_warn_high_ratio": repr(warn_high),
        **{f"{prefix}volume_fail_low_ratio": repr(ratio) for prefix, ratio in fail_low.items()},
        **{f"{source}_publish_min_rows": "1" if fail_low[f"{source}_"] > 0 else "0" for source in VOLUME_SOURCES},
    }


def _catalog_size_settings(settings: checks) -> dict[str, str]:
    """A catalog snapshot's members / the previous snapshot's: refused unless 0 <= fail <= warn <= 1."""
    warn, fail = float(settings.catalog_size_warn_low_ratio), float(settings.catalog_size_fail_low_ratio)
    if not 0 <= fail <= warn <= 1:
        raise config.BadSetting(f"[checks] needs 0 <= catalog_size_fail_low_ratio <= catalog_size_warn_low_ratio <= 1,"
                                f" got {fail} and {warn}")
    return {"catalog_size_warn_low_ratio": repr(warn), "catalog_size_fail_low_ratio": repr(fail)}


def _count_settings(settings: checks) -> dict[str, str]:
    """Counts that qualify a rule: refused unless duplicate_warn_min_rows >= 1 and the warn counts >= 0."""
    min_rows = int(settings.duplicate_warn_min_rows)
    if min_rows < 1:
        raise config.BadSetting(f"[checks] needs duplicate_warn_min_rows >= 1, got {min_rows}")
    counts = {name: int(getattr(settings, name))
              for name in ("catalog_conflict_warn_count", "unseen_status_change_warn_count")}
    for name, count in counts.items():
        if count < 0:
            raise config.BadSetting(f"[checks] needs {name} >= 0, got {count}")
    return {"duplicate_warn_min_rows": str(min_rows), **{name: str(count) for name, count in counts.items()}}


# the daily sources, each with its own volume rule (source_volume.yml) and `--checks-<source>-volume-fail-low-ratio`
VOLUME_SOURCES = ("orders", "events")


def _anomaly_settings(settings: checks) -> dict[str, str]:
    """fact_orders' warn-only anomaly thresholds as variables, refused unless they can mean something: a price
    ratio above 1 (at 1 every price unlike the catalog's would be off), a share 0-100 %, a quantity of 1 or more."""
    ratio, warn_pct = float(settings.price_off_catalog_ratio), float(settings.price_off_catalog_warn_pct)
    max_quantity = int(settings.quantity_warn_max)
    if not ratio > 1:
        raise config.BadSetting(f"[checks] needs price_off_catalog_ratio > 1, got {ratio}")
    if not 0 <= warn_pct <= 100:
        raise config.BadSetting(f"[checks] needs 0 <= price_off_catalog_warn_pct <= 100, got {warn_pct}")
    if max_quantity < 1:
        raise config.BadSetting(f"[checks] needs quantity_warn_max >= 1, got {max_quantity}")
    return {
        "price_off_catalog_ratio": repr(ratio),
        "price_off_catalog_warn_pct": repr(warn_pct),
        "quantity_warn_max": str(max_quantity),
    }
