"""Whether a process of this host still runs: the owners of the lake's temporary files, of DuckDB's spill files, of
a restate's scratch lake and of luigid's workers are told apart from the dead ones by their pid."""
from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether the process `pid` of this host still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:  # bytes: no codec to load (a process that dropped root)
            return handle.read().rsplit(b")", 1)[-1].split()[0] != b"Z"  # killed, not yet reaped
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal check is all there is
