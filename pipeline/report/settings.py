"""The daily report's settings: the [report] section of luigi.cfg."""
from __future__ import annotations

import argparse
import re

import luigi

from pipeline import config


class report(luigi.Config):  # noqa: N801 - luigi maps the class name to the [report] section
    """[report]: how the daily report presents its figures."""

    # The sources carry no currency: every amount is in this one (ISO 4217). The sample data's prices
    # are DummyJSON's, in US dollars.
    currency = luigi.Parameter(default="USD")


_ISO_4217 = re.compile(r"[A-Z]{3}")
_WHAT = "an ISO 4217 code (three capital letters, such as USD or EUR)"


class BadCurrency(config.BadSetting):
    """The configured currency is not an ISO 4217 code: a setting to fix (exit 35), as the daily command's."""


def currency(value: str | None = None) -> str:
    """The report's currency: `value` (e.g. from --currency) or [report] currency, checked."""
    code = (report().currency if value is None else value).strip()
    if not _ISO_4217.fullmatch(code):
        raise BadCurrency(f"currency {code!r} is not {_WHAT}: set [report] currency in luigi.cfg, or pass --currency")
    return code


def currency_arg(text: str) -> str:
    """argparse type of --currency: a bad code is a usage error (exit 2), like any bad option."""
    if not _ISO_4217.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not {_WHAT}")
    return text.strip()
