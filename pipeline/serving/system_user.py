"""Whom the embedded server's programs run as when root runs the pipeline: Postgres refuses to run as root.

A start (and initdb) runs them as the system user `pgserver` (pgserver's convention), made with useradd if missing.
A stop runs pg_ctl as the data folder's owner, the user its server runs as (Postgres runs only in a folder its user
owns): it never makes a user, and it stops a server another user started with a clean shutdown, not by signal.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pipeline.serving.data_folder import EmbeddedServerError

SYSTEM_USER = "pgserver"
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # cron's PATH (/usr/bin:/bin) lacks them: useradd lives there
# the server's user never logs in: it runs the binaries, through subprocess, not a shell
_NO_LOGIN = next((shell for shell in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(shell)), "/bin/false")


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_system_user(name: str = SYSTEM_USER) -> Any:
    """The system user Postgres runs as under root (its passwd entry), created with useradd if missing.

    pgserver's own helper runs `useradd` through PATH, which under cron or `env -i` has no sbin folder:
    the first start as root would fail with "No such file or directory: 'useradd'".
    """
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    useradd = shutil.which("useradd", path=search)
    if useradd is None:
        raise EmbeddedServerError(
            f"the embedded Postgres refuses to run as root and the system user {name!r} it runs as does not"
            f" exist; useradd was not found to create it: create it (useradd -s {_NO_LOGIN} {name}), run as"
            " another user, or set ECOMM_PG_DSN to use another Postgres"
        )
    done = subprocess.run([useradd, "-s", _NO_LOGIN, name], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EmbeddedServerError(
            f"the embedded Postgres refuses to run as root, and creating the system user {name!r} it runs as"
            f" failed ({useradd}: {done.stderr.strip() or f'exit {done.returncode}'}): create it, run as another"
            " user, or set ECOMM_PG_DSN to use another Postgres"
        )
    return pwd.getpwnam(name)


def for_start() -> Any:
    """The passwd entry a start runs the server as: the system user (made if missing) as root, else None (this user)."""
    return ensure_system_user() if is_root() else None


def run_as(entry: Any) -> dict[str, Any]:
    """subprocess.run's arguments that drop root for the server's binaries: the user `entry`, its group and no other
    (`user=` alone keeps root's group 0, whose files a trusted local connection's `COPY ... FROM PROGRAM` reads)."""
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []} if entry else {}


def for_stop(pgdata: Path) -> dict[str, Any]:
    """subprocess.run's arguments for a stop: as root, the data folder's owner (no user is made; a root-owned folder
    runs no server: pg_ctl then refuses and the caller stops the postmaster by its pid); else none."""
    if not is_root():
        return {}
    info = pgdata.stat()
    if info.st_uid == 0:
        return {}
    try:
        group = pwd.getpwuid(info.st_uid).pw_gid
    except KeyError:  # a uid without a passwd entry: the folder's group
        group = info.st_gid
    return {"user": info.st_uid, "group": group, "extra_groups": []}
