"""A field a sender renamed: a record's key, or a CSV header's name, that differs from a required one only by case,
underscores, hyphens or spaces (`Order_ID`, `orderId`, `order id` for order_id). Its records then lack the field
(quarantined as e.g. missing_order_id, or the header refused), and the message names the key the sender used."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

_SEPARATORS = re.compile(r"[\s_\-]+")
_PLAIN = re.compile(r"[A-Za-z0-9_]{1,64}")  # a key named as it is; any other is quoted (and at most 64 characters)


def _folded(name: str) -> str:
    return _SEPARATORS.sub("", name).casefold()


def look_alike(field: str, keys: Iterable[str]) -> str | None:
    """The first of `keys` that is `field` written otherwise (not `field` itself), or None."""
    folded = _folded(field)
    return next((key for key in keys if key != field and len(key) <= 64 and _folded(key) == folded), None)


def named(key: str) -> str:
    """A key as a message names it: plain when it is a plain name, else in double quotes."""
    return key if _PLAIN.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'


def renamed_in(field: str, records: Iterable[Mapping[str, Any]]) -> tuple[str, int, int] | None:
    """(the look-alike of `field` most records lacking it have, how many of them have it, how many lack `field`), or
    None: none lacks it, or fewer than half of those that do have one look-alike."""
    lacking, having = 0, Counter()
    for record in records:
        if field in record:
            continue  # present (perhaps null): not renamed
        lacking += 1
        if (key := look_alike(field, record)) is not None:
            having[key] += 1
    if not having:
        return None
    key, count = having.most_common(1)[0]
    return (key, count, lacking) if count * 2 > lacking else None
