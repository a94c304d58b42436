"""The errors of the products/users API client (`catalog_api`), apart so that its checks (`catalog_ids`) can
raise them without importing the client."""
from __future__ import annotations

__all__ = ["CHANGED", "CatalogApiBadResponse", "CatalogApiError", "CatalogApiTransientError", "CatalogChangedWhileRead"]

CHANGED = "the catalog changed while it was read (offset pagination is not a snapshot): run again"


class CatalogApiError(Exception):
    """The products/users API did not give a usable answer."""


class CatalogApiTransientError(CatalogApiError):
    """The API kept failing (5xx, 429, timeout or connection error) until the retries ran out."""


class CatalogApiBadResponse(CatalogApiError):
    """The API answered with something unusable: a 4xx, non-JSON, the wrong shape or short pages."""


class CatalogChangedWhileRead(CatalogApiTransientError):
    """The catalog changed between the pages of one fetch (a `total` that changed, items of an earlier page served
    again): transient, since a fetch from the first page once the catalog holds still reads it whole."""
