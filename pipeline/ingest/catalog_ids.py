"""The catalog API's items compared by id as staging identifies them (`id_key`): an item of an earlier page served
again on a later one (the catalog changed while it was read: `check_drift`), and fewer distinct ids than `total`
once every page is in (`distinct_count`: a repeat within a page stands in for an item never served)."""
from __future__ import annotations

import re
from typing import Any

from pipeline.ingest.catalog_errors import CHANGED, CatalogChangedWhileRead
from pipeline.ingest.catalog_http import redact_url

__all__ = ["check_drift", "distinct_count", "id_key"]

UNICODE_WHITESPACE = "".join(map(chr, (32, 9, 10, 11, 12, 13, 133, 160, 5760, *range(8192, 8204), 8232, 8233, 8239,
                                       8287, 12288, 65279)))  # sql/staging/macros.sql unicode_whitespace()


def id_key(value: Any) -> str | None:
    """The key staging identifies a catalog item by, from its API `id`; None where staging finds none (missing, not
    a whole number: the item is quarantined there, so it is not compared here).

    The rule lives in SQL (sql/staging/macros.sql: `catalog_id(prefix, clean_text(<id as text>))`); this is a
    minimal Python equivalent of it, not a second rule: whitespace trimmed, ASCII digits' leading zeros dropped,
    then zero-padded to 4 (91, "91", " 0091" and "00091" are all PROD_0091). tests/test_catalog_api.py checks it
    against the macros."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value).strip(UNICODE_WHITESPACE)
    return text.lstrip("0").zfill(4) if re.fullmatch(r"[0-9]+", text, re.ASCII) else None


def check_drift(url: str, resource: str, items: list[dict[str, Any]], seen: set[str]) -> int | str | None:
    """Items of an earlier page again on a later one (offset pagination shifted: the catalog changed while it was
    read), which would drop items as duplicates or as never fetched, and the date would publish a partial catalog
    without a word. `seen` collects the id keys (`id_key`) fetched so far; returns an id this page repeats
    from within itself (None: none), which `catalog_api` refuses once the catalog is fetched."""
    keyed = [(key, item.get("id")) for item in items if (key := id_key(item.get("id"))) is not None]
    again = [item_id for key, item_id in keyed if key in seen]
    if again:
        raise CatalogChangedWhileRead(f"GET {redact_url(url)}: {len(again)} of its {len(items)} {resource} came on"
                                      f" an earlier page too (id {again[0]!r} ...); {CHANGED}")
    within = None
    for key, item_id in keyed:
        if key in seen and within is None:
            within = item_id
        seen.add(key)
    return within


def distinct_count(collected: list[dict[str, Any]], seen: set[str]) -> int:
    """The distinct items of a whole fetch: those without an id (quarantined downstream) each count as one, the
    others once per id key in `seen` (as `check_drift` collected them)."""
    return len(collected) - sum(id_key(item.get("id")) is not None for item in collected) + len(seen)
