"""Settings for the Postgres serving layer: the [postgres] and [publish] sections of luigi.cfg.

Only non-secret values live here. Where to connect comes from ECOMM_PG_DSN or the libpq PG*
variables (and passwords from .pgpass); without either, the pipeline uses the embedded server
described by this section. Environment variables win over the file (see pipeline.config).
"""
from __future__ import annotations

import re

import luigi

from pipeline.config import NamedBadSettings

TIME_UNITS = ("us", "ms", "s", "min", "h", "d")
MEMORY_UNITS = ("B", "kB", "MB", "GB", "TB")


class PostgresValue(luigi.Parameter):
    """A Postgres setting's value with a unit (2s, 30min, 256MB), checked before Postgres is asked to take it.

    Postgres would refuse a bad one only when the publish sets it, as an error of whatever statement
    came first (a migration's lock): here it is a `BadSetting` naming the option.
    """

    def __init__(self, units: tuple[str, ...], **kwargs: object) -> None:
        self.units = units
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def parse(self, x: str) -> str:
        text = str(x).strip()
        if not re.fullmatch(rf"\d+(\.\d+)?\s*({'|'.join(self.units)})?", text):
            raise ValueError(f"expected a number and a unit of {', '.join(self.units)}, e.g. 2{self.units[2]}")
        return text


class postgres(NamedBadSettings, luigi.Config):  # noqa: N801 - luigi maps the class name to the [postgres] section
    """[postgres]: the embedded development server and connection defaults."""

    embedded_dir = luigi.Parameter(default=".pgdata")  # relative to the repository root
    embedded_port = luigi.IntParameter(default=54320)  # TCP port on 127.0.0.1 (and the socket name)
    database = luigi.Parameter(default="ecomm")
    superuser = luigi.Parameter(default="postgres")  # the embedded server's bootstrap user
    statement_timeout = luigi.Parameter(default="0")  # Postgres interval text; "0" = no limit
    lock_timeout = luigi.Parameter(default="0")
    connect_timeout = luigi.IntParameter(default=10)  # seconds
    start_timeout = luigi.IntParameter(default=60)  # seconds for pg_ctl start/stop to finish
    application_name = luigi.Parameter(default="ecomm-pipeline")
    # Server settings for the embedded server only (a single-node dev/CI server: no replicas, no
    # archiving). wal_level=minimal lets publish's COPY into a table created in the same transaction,
    # and its index builds, skip WAL; a larger max_wal_size avoids checkpoints in mid-load; reserved_connections
    # keeps 5 slots for ecomm_writer's members (migration 047) when BI logins take the rest.
    server_options = luigi.Parameter(
        default="-c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=2GB -c reserved_connections=5")


class publish(NamedBadSettings, luigi.Config):  # noqa: N801 - [publish]
    """[publish]: how the lake's partitions are streamed into Postgres, and how long publish waits.

    Lock waits (see `pipeline.serving.locks`): a lock on a relation BI can read is waited for at most
    `lock_timeout` at a time, then let go (so BI queries queued behind the request go on) and asked
    for again after a backoff, `lock_attempts` times in all. A lock only pipeline processes take
    (the date's, the global bookkeeping one, the migrations') is waited for up to
    `pipeline_lock_timeout`. Transient failures (see `pipeline.serving.retry`) of a publish or preload
    are retried inside the task, `attempts` times in all, with a doubling backoff.
    """

    copy_batch_rows = luigi.IntParameter(default=65_536)  # rows per Arrow batch encoded for COPY
    maintenance_work_mem = PostgresValue(MEMORY_UNITS, default="256MB")  # for the per-date index builds
    lock_timeout = PostgresValue(TIME_UNITS, default="2s")  # one wait for a BI-readable relation
    lock_attempts = luigi.IntParameter(default=15)
    lock_backoff_seconds = luigi.FloatParameter(default=1.0)  # before the 2nd attempt; doubles each time
    lock_backoff_max_seconds = luigi.FloatParameter(default=30.0)
    pipeline_lock_timeout = PostgresValue(TIME_UNITS, default="30min")  # waiting for another pipeline process
    attempts = luigi.IntParameter(default=4)  # of a publish or preload that failed transiently
    retry_backoff_seconds = luigi.FloatParameter(default=30.0)  # before the 2nd attempt; doubles each time
    retry_backoff_max_seconds = luigi.FloatParameter(default=300.0)


class compaction(NamedBadSettings, luigi.Config):  # noqa: N801 - [compaction]
    """[compaction]: whether the Publish task compacts closed months by itself (`pipeline.serving.compaction`).

    After each publish, every month that is complete (all its lake dates published and reconciled)
    and closed is compacted, a month counting as closed for this once a published load date lies
    `after_days` days or more past its last day (the pipeline has moved on; late restatements of
    the month's first days after that cost a row replace instead of a partition swap). A value that
    cannot be read is a `pipeline.config.BadSetting` naming it (the publish logs it and skips compacting).
    """

    read_before_a_run = False  # see pipeline.config.read_sections: a bad value is a warning, not a refusal

    closed_months = luigi.BoolParameter(default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING)  # `... false`
    after_days = luigi.IntParameter(default=7)
