"""The daily report's settings: the [report] section of luigi.cfg."""
from __future__ import annotations

import re

import luigi


class report(luigi.Config):  # noqa: N801 - luigi maps the class name to the [report] section
    """[report]: how the daily report presents its figures."""

    # The sources carry no currency: every amount is in this one (ISO 4217). The sample data's prices
    # are DummyJSON's, in US dollars.
    currency = luigi.Parameter(default="USD")


class BadCurrency(ValueError):
    """The configured currency is not an ISO 4217 code."""


def currency(value: str | None = None) -> str:
    """The report's currency: `value` (e.g. from --currency) or [report] currency, checked."""
    code = (report().currency if value is None else value).strip()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise BadCurrency(f"currency {code!r} is not an ISO 4217 code (three capital letters, such as USD or EUR):"
                          f" set [report] currency in luigi.cfg, or pass --currency")
    return code
