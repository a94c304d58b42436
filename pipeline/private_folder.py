"""A private folder in a place every user may write (/tmp, /var/tmp): made here, or refused.

Anyone may create a name there first: a folder of theirs (they could plant or replace files in it, a spill file
or the socket the pipeline connects through as superuser) or a link to a folder of ours (root would chown or
fill its target). So a folder found there is used only when it is a real folder, not a link, owned by this
process's user (or the user it is made for); one of ours that others may write (an old umask) is closed again.
"""
from __future__ import annotations

import os
import stat


def make_private(path: str, owner: tuple[int, int] | None = None) -> None:
    """Make `path` (its parents too) a folder only its owner may use, mode 0700, or refuse it (PermissionError or
    NotADirectoryError saying why). `owner` (uid, gid): the user it is for, when root makes it for another
    (given to them once checked); a folder that user already owns is theirs and is kept."""
    uid = os.getuid() if owner is None else owner[0]
    try:
        os.makedirs(path, mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise PermissionError(f"{path} is a link, not a folder this user made")
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is not a folder")
    if info.st_uid not in {os.getuid(), uid}:  # another user's: its files could be theirs to plant
        raise PermissionError(f"{path} belongs to user id {info.st_uid}, not to this user")
    if owner is not None and info.st_uid != uid:
        os.chown(path, owner[0], owner[1], follow_symlinks=False)
    if info.st_mode & 0o077:  # ours, opened to others (by hand, an old umask): closed again
        os.chmod(path, 0o700)
