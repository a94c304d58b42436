"""How the daily report writes numbers: counts, percentages and money (with the report's currency)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

DASH = "–"  # a figure that does not exist (no orders, no base to compare with)


def amount(value: Any) -> str:
    """1234.5 -> '1,234.50'."""
    return DASH if value is None else f"{Decimal(value):,.2f}"


def money(value: Any, currency: str) -> str:
    """An amount with its ISO 4217 currency code: 'USD 1,234.50'."""
    return DASH if value is None else f"{currency} {amount(value)}"


def count(value: Any) -> str:
    return DASH if value is None else f"{int(value):,}"


def percent(value: Any) -> str:
    return DASH if value is None else f"{Decimal(value):.2f} %"
