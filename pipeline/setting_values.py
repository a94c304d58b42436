"""Values the sections can read but a task could not use, refused before any task runs (`pipeline.config.BadSetting`,
exit 35), each by the function the tasks call or by the range stated here once: found by the task that used it, they
failed a run after its first tasks had run (a catalog URL that is not http(s), a ready marker with a /), or were taken
silently for something else (a weekday of 9 as 2, no attempt at all as one, no rows per batch as a pyarrow error),
or crashed the run when the first failure mail was sent ([email], [smtp])."""
from __future__ import annotations

from pipeline import config

# (section class, option) -> (the least value, the most value or None, why): a whole number outside is refused
RANGES = {
    ("catalog", "weekday"): (0, 6, "0 is Monday, 6 Sunday"),
    ("catalog", "attempts"): (1, None, "the landing task's attempts at the API, the first included"),
    ("publish", "copy_batch_rows"): (1, None, "rows per batch written to Postgres"),
}


def _sections() -> dict[str, type]:
    from pipeline.serving.settings import publish  # noqa: PLC0415 - the serving package imports this one's config

    return {"catalog": config.catalog, "publish": publish}


def _mail_settings() -> None:
    """Luigi's [email] and [smtp], read only when the first failure mail is sent: a value there it cannot read crashed
    the run then (no mail, no summary, exit 40)."""
    from luigi import notifications  # noqa: PLC0415

    for section in (notifications.email, notifications.smtp):
        try:
            section()
        except ValueError as err:
            raise (config.bad_setting(section) or config.BadSetting(f"[{section.get_task_family()}] {err}")) from err


def check_values() -> None:
    """BadSetting for the first value a task could read but not use (see the module's docstring)."""
    _mail_settings()
    config.products_url()
    config.users_url()
    config.ready_marker()
    sections = _sections()
    for (section, option), (least, most, why) in RANGES.items():
        value = int(getattr(sections[section](), option))
        if value < least or (most is not None and value > most):
            expected = f"expected {least} to {most}" if most is not None else f"expected {least} or more"
            raise config.BadSetting(config.unreadable_setting(section, option, str(value), f"{expected}: {why}"))
