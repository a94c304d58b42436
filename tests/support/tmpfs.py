"""A real full disk, or a real read-only folder, for tests: a small tmpfs, as root (CI) or as any user. No tests here.

As root the tmpfs is mounted at the folder itself. Any other user may not mount, but may in a user namespace of
its own (`read_only`, for one command, does the same): `unshare --user --map-root-user --mount`
runs a process that mounts the tmpfs in its mount namespace and sleeps, holding it. This process and the commands
it starts reach that tmpfs through the holder's root, `/proc/<holder>/root/<folder>` (the user owns the namespace,
so may look into it): the path the test gives as the lake (or a tablespace); the folder itself stays empty.
The namespace, and its tmpfs, go with the holder.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

MOUNT = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && echo mounted && exec sleep 3600'


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (`2m`, `16k`) for `folder`; yields the path at which it is `folder` (see the module doc)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True,
                       capture_output=True)
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    holder = subprocess.Popen(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT, "sh", size,
                               str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = holder.stdout.readline() if holder.stdout else ""
        why = "" if said == "mounted\n" else holder.communicate(timeout=30)[1]
        assert not why, f"unshare could not mount a tmpfs: {why}"
        yield Path(f"/proc/{holder.pid}/root{folder.absolute()}")
    finally:
        holder.kill()
        holder.communicate(timeout=30)


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; returns the filler file (remove it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while handle.write(b"\0" * 4096):
            pass
    return filler


def read_only(folder: Path, command: list[str], keep: bool = False) -> list[str]:
    """`command` run with `folder` read-only, in a mount namespace of its own (as a user, in its own user namespace
    too): an empty read-only tmpfs mounted on it, or (`keep`) the folder itself bound read-only, as a checkout the
    user may not write. Only that command and what it starts see it so."""
    namespace = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--user", "--map-root-user"])
    mount = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1"' if keep else \
        'mount -t tmpfs -o ro,size=1m tmpfs "$1"'
    return [*namespace, "sh", "-c", f'{mount} && shift && exec "$@"', "sh", str(folder), *command]
