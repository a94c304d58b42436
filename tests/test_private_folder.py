"""pipeline.private_folder.make_private against a name swapped for a link while it works (real folders, a real
swapping process): the folder's mode is changed through the descriptor it checked, never through the name again."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.private_folder import make_private

# Exchanges the folder and a link to the target, atomically and without pause (renameat2 RENAME_EXCHANGE), as
# a user who may write the folder's parent would, until killed.
SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
print("ready", flush=True)
while True:
    libc.renameat2(-100, a, -100, b, 2)
"""


def test_a_folder_swapped_for_a_link_between_check_and_chmod_leaves_the_link_s_target_alone() -> None:
    """It was lstat'ed, then chmod'ed by name (which follows a link): a name swapped in between had the link's target
    chmod'ed 0700 (as root: any file). A parent that is not sticky lets anyone who may write it do the swap."""
    place = Path(tempfile.mkdtemp(prefix="ecomm-private-"))
    try:
        parent, target = place / "open", place / "target"
        parent.mkdir()
        parent.chmod(0o777)  # writable by all, no sticky bit: a name in it can be renamed by anyone
        target.write_text("not the folder's")
        target.chmod(0o644)
        folder, link = parent / "private", parent / "swap"
        folder.mkdir()
        link.symlink_to(target)
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # reopened to others before every attempt
        swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(folder), str(link)], stdout=subprocess.PIPE,
                                   text=True)
        try:
            assert swapper.stdout.readline().strip() == "ready"
            deadline, attempts = time.monotonic() + 20, 0
            while time.monotonic() < deadline and attempts < 20000:
                os.fchmod(handle, 0o777)
                try:
                    make_private(str(folder))
                except OSError:  # the link was in place: refused, as it should be
                    pass
                attempts += 1
                assert stat.S_IMODE(os.stat(target).st_mode) == 0o644, f"target chmod'ed at attempt {attempts}"
        finally:
            swapper.kill()
            swapper.wait()
            os.close(handle)
        assert attempts >= 2000, attempts
    finally:
        shutil.rmtree(place, ignore_errors=True)


def _unreadable_folder_of_another_user(parent_mode: int) -> tuple[Path, subprocess.CompletedProcess]:
    """`make_private` run as `nobody` (root reads any folder; another user than root runs as itself) on its folder
    at 0300 in a new folder of mode `parent_mode`: (the folder, the run)."""
    place = Path(tempfile.mkdtemp(prefix="ecomm-pf-"))
    place.chmod(parent_mode)
    folder = place / "spill"
    folder.mkdir()
    root = os.geteuid() == 0
    if root:
        os.chown(folder, 65534, 65534)
    folder.chmod(0o300)
    become = "os.setgid(65534)\nos.setuid(65534)\n" if root else ""
    code = f"import os, sys\nfrom pipeline.private_folder import make_private\n{become}make_private(sys.argv[1])\n"
    return folder, subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                                  timeout=60, check=False,
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def test_a_folder_of_ours_without_read_permission_is_made_0700_not_refused() -> None:
    """Opened for reading to check it through a descriptor, a folder of ours at 0300 (an old umask, by hand) was a raw
    EACCES where it used to be closed to 0700."""
    folder, done = _unreadable_folder_of_another_user(0o1777)  # sticky, as /tmp and /var/tmp
    try:
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def test_a_folder_of_ours_without_read_permission_where_others_may_swap_its_name_is_refused() -> None:
    """Its mode is changed by name only in a sticky folder or one of ours: elsewhere the name could be a link by then."""
    folder, done = _unreadable_folder_of_another_user(0o777)  # not sticky: anyone may rename what is in it
    try:
        assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr
        assert stat.S_IMODE(folder.stat().st_mode) == 0o300
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
