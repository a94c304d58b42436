"""`write(root, rel, data)`: a file under a folder (its parents made), for tests that build incoming folders."""
from __future__ import annotations

from pathlib import Path


def write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def write_catalog_record(day: object, read: list) -> None:
    """A built date's daily_metrics partition holding only its catalog record (`catalog_cover.COLUMNS`): the products
    snapshots its build read (`read`, oldest first; the latest is its covering one), no users snapshot."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline import lake

    path = Path(lake.partition_file("warehouse", "daily_metrics", day))
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"products_snapshot_date": pa.array([read[-1]], pa.date32()),
                             "users_snapshot_date": pa.array([None], pa.date32()),
                             "products_snapshot_dates": pa.array([read], pa.list_(pa.date32()))}), str(path))
