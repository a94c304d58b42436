"""A private folder in a place every user may write (/tmp, /var/tmp): made here, or refused.

Anyone may create a name there first: a folder of theirs (they could plant or replace files in it, a spill file
or the socket the pipeline connects through as superuser) or a link to a folder of ours (root would change its
target's modes). So a folder found there is used only when it is a real folder, not a link, owned by this
process's user; one of ours that others may write (an old umask) is closed again. The folder is opened once
(not following a link) and checked and changed through that descriptor: a name swapped for a link between the
check and the change leaves the link's target alone.
"""
from __future__ import annotations

import errno
import os
import stat


def make_private(path: str) -> None:
    """Make `path` (its parents too) a folder only its owner may use, mode 0700, or refuse it (PermissionError or
    NotADirectoryError saying why)."""
    try:
        os.makedirs(path, mode=0o700)
    except FileExistsError:
        pass
    try:
        handle = _open_own(path)
    except OSError as err:  # a link (to a folder too) is ENOTDIR or ELOOP: only said apart for the message
        if err.errno not in {errno.ENOTDIR, errno.ELOOP}:
            raise
        if os.path.islink(path):
            raise PermissionError(f"{path} is a link, not a folder this user made") from None
        raise NotADirectoryError(f"{path} is not a folder") from None
    try:
        info = os.fstat(handle)
        if info.st_uid != os.getuid():  # another user's: its files could be theirs to plant
            raise PermissionError(f"{path} belongs to user id {info.st_uid}, not to this user")
        if info.st_mode & 0o077:  # ours, opened to others (by hand, an old umask): closed again
            os.fchmod(handle, 0o700)
    finally:
        os.close(handle)


def _open_own(path: str) -> int:
    """A descriptor of the folder `path` (not a link); a folder of ours without read permission (an old mode 0300)
    is given 0700 first: a name of ours in a sticky temp folder only we may rename, so nobody swaps it meanwhile."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except PermissionError:
        info, parent = os.lstat(path), os.lstat(os.path.dirname(os.path.abspath(path)))
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise
        if not (parent.st_mode & stat.S_ISVTX or parent.st_uid == os.getuid()):  # another could swap the name
            raise
        os.chmod(path, 0o700)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
