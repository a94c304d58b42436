"""JSON read and written again with every number's text as received (the catalog API's pages).

Python's `json` reads a number with a fraction or an exponent into a float and writes the float's
shortest text back: `9.990000000000000000001` would reach the raw file as `9.99`, `1e-400` as
`0.0` and `1E2` as `100.0`, and staging would judge (or quote) a value the API never sent. The raw
layer keeps a field as the source wrote it (`sql/raw/macros.sql`, json_number_text), so a page is
read with each such number as a `Number`, a float that remembers its text, and `dumps` writes that
text back. Integers are exact in Python already.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any


class Number(float):
    """A JSON number with a fraction or an exponent: compares and computes as the float, writes as `text`."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> Number:
        number = super().__new__(cls, text)
        number.text = text
        return number


def loads(data: str | bytes) -> Any:
    """Parse JSON, keeping each number with a fraction or an exponent as a `Number`."""
    return json.loads(data, parse_float=Number)


def dumps(value: Any) -> str:
    """`value` as JSON, every `Number` written as the text it was read from.

    `json` writes a float subclass as the float, so each `Number` goes out as a placeholder string
    named by a nonce no input can hold, which is then replaced by the number's text.
    """
    nonce = uuid.uuid4().hex
    texts: list[str] = []

    def placeholder(number: Number) -> str:
        texts.append(number.text)
        return f"{nonce}:{len(texts) - 1}"

    def swap(item: Any) -> Any:
        if isinstance(item, Number):
            return placeholder(item)
        if isinstance(item, dict):
            return {key: swap(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [swap(inner) for inner in item]
        return item

    written = json.dumps(swap(value))
    if not texts:
        return written
    return re.sub(f'"{nonce}:([0-9]+)"', lambda match: texts[int(match.group(1))], written)
