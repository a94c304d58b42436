"""`write(root, rel, data)`: a file under a folder (its parents made), for tests that build incoming folders."""
from __future__ import annotations

from pathlib import Path


def write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path
