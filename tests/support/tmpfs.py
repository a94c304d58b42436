"""A real full disk for tests: a small tmpfs mounted in a mount namespace of one command only.

As root (CI) `unshare --mount`; as any other user `unshare --user --map-root-user --mount` too, which lets
the command mount a tmpfs in a user namespace of its own (tests/test_ops_exitcodes.py's read-only lake does the
same). The test process itself sees the empty folder; the command and its children see the tmpfs.
No tests here.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def namespace() -> list[str]:
    """`unshare` with a mount namespace (and, when not root, a user namespace whose root may mount)."""
    return ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--user", "--map-root-user"])


def on_tmpfs(folder: Path, size: str, command: Sequence[str]) -> list[str]:
    """The command line that runs `command` with a tmpfs of `size` (`1m`, `64k`) mounted at `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'
    return [*namespace(), "sh", "-c", mount, "sh", size, str(folder), *command]
