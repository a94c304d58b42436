"""Which files a piece of code opens under a folder, as the kernel saw it (Linux inotify, no mock in between).

    with opened(lake_dir) as seen:
        views.open_lake(lake_dir)
    seen.paths("data.parquet")   # every data.parquet opened, once per open

Every folder under the root is watched from the start (folders made later are not), so the count is exact for
files that exist when the block starts.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections.abc import Iterator
from pathlib import Path

_IN_OPEN = 0x20
_IN_Q_OVERFLOW = 0x4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class Opened:
    def __init__(self) -> None:
        self.events: list[str] = []

    def paths(self, name: str) -> list[str]:
        """Every open of a file called `name`, as its path (a file opened twice is listed twice)."""
        return [path for path in self.events if os.path.basename(path) == name]


@contextlib.contextmanager
def opened(root: str | os.PathLike[str]) -> Iterator[Opened]:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    watched: dict[int, str] = {}
    seen = Opened()
    try:
        for folder in [Path(root), *(p for p in Path(root).rglob("*") if p.is_dir())]:
            wd = libc.inotify_add_watch(fd, os.fsencode(folder), _IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            watched[wd] = str(folder)
        yield seen
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(chunk):
                wd, mask, _cookie, size = _EVENT.unpack_from(chunk, offset)
                name = chunk[offset + _EVENT.size:offset + _EVENT.size + size].rstrip(b"\0").decode()
                offset += _EVENT.size + size
                if mask & _IN_Q_OVERFLOW:
                    raise RuntimeError("inotify queue overflowed: the count would be short")
                if name:  # an open of a file in a watched folder (not of the folder itself)
                    seen.events.append(os.path.join(watched[wd], name))
    finally:
        os.close(fd)
