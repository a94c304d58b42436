"""The `luigi_settings` fixture: luigi.cfg values for one test, restored after it."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import luigi
import pytest


@pytest.fixture
def luigi_settings() -> Iterator[Callable[..., None]]:
    """`luigi_settings("publish", lock_timeout="200ms", ...)` sets luigi.cfg values for one test."""
    config = luigi.configuration.get_config()
    undo: list[tuple[str, str, str | None]] = []

    def set_values(section: str, **values: Any) -> None:
        if not config.has_section(section):
            config.add_section(section)
        for key, value in values.items():
            undo.append((section, key, config.get(section, key) if config.has_option(section, key) else None))
            config.set(section, key, str(value))
        luigi.task_register.Register.clear_instance_cache()  # luigi.Config objects are cached instances

    yield set_values
    for section, key, old in reversed(undo):
        if old is None:
            config.remove_option(section, key)
        else:
            config.set(section, key, old)
    luigi.task_register.Register.clear_instance_cache()
