"""Master data for the sample-data generator: catalogs, products, users and weekly prices.

Everything here is a pure function of ``seed`` (and, for prices/categories, of the ISO week),
never of the generated date window, so files are byte-identical whatever START/DAYS were.
Text columns are kept as *JSON-encoded* pyarrow string arrays (``"..."`` or ``null``) so the
writers in :mod:`devtools.generate.text` can assemble files without per-row Python work.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from devtools.generate.text import enc, int_text, join

log = logging.getLogger(__name__)

DEFAULT_CATALOG_DIR = Path(__file__).resolve().parent / "dummyjson"  # the real DummyJSON catalog (MIT)
PRICE_EPOCH = dt.date(2020, 1, 6)  # a Monday; week 0 of the weekly price/category random walk
SYNTH_CATEGORIES = ["Electronics", "Clothing", "Home", "Books", "Toys", "Sports", "Beauty", "Grocery"]
SYNTH_BRANDS = ["BrandA", "BrandB", "BrandC", "BrandD", "BrandE"]
SYNTH_FIRST = ["Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Sofia", "Leo"]
SYNTH_LAST = ["Smith", "Garcia", "Mueller", "Rossi", "Dubois", "Kowalski", "Silva", "Jensen", "Novak", "Ito"]
SYNTH_PLACES = [("Berlin", "Germany"), ("Lyon", "France"), ("Milan", "Italy"), ("Porto", "Portugal"),
                ("Austin", "United States"), ("Leeds", "United Kingdom"), ("Krakow", "Poland"), ("Osaka", "Japan")]
PRICE_CHANGE_RATE = 0.05  # share of products whose price changes in a given week
# Category changes: a product on its base category is reclassified with p 0.55%/week, a
# reclassified one goes back with p 4.5%/week: ~1% of products change category in a given week
# while ~89% stay on their catalog category in the long run.
RECLASSIFY_P, REVERT_P = 0.0055, 0.045
STREAM_PRODUCTS, STREAM_USERS, STREAM_WEEK = 101, 102, 103


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


@dataclass
class Catalog:
    """Base attributes taken from the DummyJSON catalog (or synthetic when it is missing)."""

    titles: list[str]
    categories: list[str]
    brands: list[str | None]
    price_cents: np.ndarray
    first: list[str]
    last: list[str]
    emails: list[str]
    cities: list[str]
    countries: list[str]
    synthetic_products: bool


def _read_list(path: Path, key: str) -> list[dict] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data[key] if isinstance(data, dict) else data


def load_catalog(catalog_dir: Path | None) -> Catalog:
    """Load products.json/users.json from ``catalog_dir``; fall back to synthetic attributes."""
    root = Path(catalog_dir) if catalog_dir is not None else DEFAULT_CATALOG_DIR
    prods = _read_list(root / "products.json", "products") if root.is_dir() else None
    users = _read_list(root / "users.json", "users") if root.is_dir() else None
    if prods is None or users is None:
        log.warning("catalog %s not found or incomplete; using synthetic attributes", root)
    if prods:
        titles = [p["title"] for p in prods]
        cats = [p["category"] for p in prods]
        brands = [p.get("brand") for p in prods]
        cents = np.array([round(float(p["price"]) * 100) for p in prods], dtype=np.int64)
    else:
        titles, cats, brands, cents = [], [], [], np.zeros(0, np.int64)
    if users:
        first = [u["firstName"] for u in users]
        last = [u["lastName"] for u in users]
        emails = [u["email"] for u in users]
        cities = [u.get("address", {}).get("city") for u in users]
        countries = [u.get("address", {}).get("country") for u in users]
    else:
        n = len(SYNTH_FIRST) * len(SYNTH_LAST)
        first = [SYNTH_FIRST[i % 10] for i in range(n)]
        last = [SYNTH_LAST[(i // 10) % 10] for i in range(n)]
        emails = [f"{f.lower()}.{ln.lower()}@example.com" for f, ln in zip(first, last, strict=True)]
        cities = [SYNTH_PLACES[i % 8][0] for i in range(n)]
        countries = [SYNTH_PLACES[i % 8][1] for i in range(n)]
    return Catalog(titles, cats, brands, cents, first, last, emails, cities, countries, not prods)


def _zipf_cdf(n: int, exponent: float, rng: np.random.Generator, offset: float = 0.0) -> np.ndarray:
    """CDF over item indices for p ∝ 1/(rank + offset)^exponent, ranks being a seeded permutation."""
    ranks = rng.permutation(n) + 1.0
    w = (ranks + offset) ** -exponent
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return cdf


@dataclass
class Master:
    """Products and users master data (a function of seed and catalog only)."""

    n_products: int
    n_users: int
    product_ids: pa.Array  # raw ids, + unknown product at [n], + "" at [n+1]
    user_ids: pa.Array
    category_names: list[str]
    base_category: np.ndarray  # index into category_names
    base_cents: np.ndarray
    product_cdf: np.ndarray
    user_cdf: np.ndarray
    product_rows: dict[str, pa.Array]  # static JSON-encoded columns of the products file
    user_rows: dict[str, pa.Array]
    seed: int
    _week_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def week_state(self, day: dt.date) -> tuple[np.ndarray, np.ndarray]:
        """(price_cents, category_idx) of every product for the week containing ``day``.

        Week k's state applies the changes of weeks 1..k (each drawn from rng(seed, k)) to the
        base state, so it is a pure function of (seed, week); consecutive calls advance a cache.
        """
        k = max(0, (monday_of(day) - PRICE_EPOCH).days // 7)
        if self._week_cache is not None and self._week_cache[0] <= k:
            w, cents, cats = self._week_cache
            cents, cats = cents.copy(), cats.copy()
        else:
            w, cents, cats = 0, self.base_cents.copy(), self.base_category.copy()
        n, ncat = self.n_products, len(self.category_names)
        for week in range(w + 1, k + 1):
            rng = np.random.default_rng([self.seed, week, STREAM_WEEK])
            u = rng.random((n, 4)).T  # product i always uses draws 4i..4i+3: independent of n
            ch = u[0] < PRICE_CHANGE_RATE
            ratio = cents / self.base_cents
            up = np.where(ratio > 1.3, False, np.where(ratio < 0.77, True, u[1] < 0.5))
            factor = np.where(up, 1.0, -1.0) * (0.05 + 0.15 * u[2]) + 1.0
            cents = np.where(ch, np.maximum(np.rint(cents * factor), 50).astype(np.int64), cents)
            on_base = cats == self.base_category
            move = on_base & (u[3] < RECLASSIFY_P) & (ncat > 1)
            back = ~on_base & (u[3] < REVERT_P)
            shift = 1 + (u[3] / RECLASSIFY_P * max(ncat - 1, 1)).astype(np.int64) % max(ncat - 1, 1)
            cats = np.where(move, (cats + shift) % ncat, np.where(back, self.base_category, cats))
        self._week_cache = (k, cents, cats)
        return cents.copy(), cats.copy()


def build_master(catalog: Catalog, n_products: int, n_users: int, seed: int) -> Master:
    def draw(stream: int) -> np.ndarray:  # uniform [0, 1) per product; product i's value ignores n
        return np.random.default_rng([seed, STREAM_PRODUCTS, stream]).random(n_products)

    n = np.arange(n_products)
    ids = join("PROD_", int_text(n + 1, 4))
    unknown = f"PROD_{max(9999, n_products + 1):04d}"
    product_ids = pa.concat_arrays([ids, pa.array([unknown, ""], pa.string())])
    copy_no = n // max(len(catalog.titles), 1)
    if catalog.synthetic_products:
        cat_names = list(SYNTH_CATEGORIES)
        base_cat = (draw(2) * len(cat_names)).astype(np.int64)
        base_cents = np.rint((5 + 495 * draw(3)) * 100).astype(np.int64)
        name = join(ids, " - ", pc.take(pa.array(cat_names), pa.array(base_cat)))
        name = join('"', name, '"')
        brand = pc.take(enc(SYNTH_BRANDS), pa.array((draw(4) * len(SYNTH_BRANDS)).astype(np.int64)))
    else:
        src = n % len(catalog.titles)
        cat_names = sorted(set(catalog.categories))
        cat_lookup = {c: i for i, c in enumerate(cat_names)}
        base_cat = np.array([cat_lookup[c] for c in catalog.categories], np.int64)[src]
        jitter = np.where(copy_no > 0, 0.8 + 0.4 * draw(5), 1.0)  # copies beyond the catalog
        base_cents = np.maximum(np.rint(catalog.price_cents[src] * jitter), 50).astype(np.int64)
        open_titles = pa.array([json.dumps(t)[:-1] for t in catalog.titles], pa.string())
        suffix = pc.if_else(pa.array(copy_no > 0), join(" #", pc.cast(pa.array(copy_no + 1), pa.string())), "")
        name = join(pc.take(open_titles, pa.array(src)), suffix, '"')
        brand = pc.take(enc(catalog.brands), pa.array(src))
    product_rows = {"product_id": join('"', ids, '"'), "product_name": name, "brand": brand}

    m = np.arange(n_users)
    uids = join("USER_", int_text(m + 1, 4))
    src_u = m % len(catalog.first)
    ucopy = m // len(catalog.first)
    pairs = [e.split("@", 1) if "@" in e else [e, "example.com"] for e in catalog.emails]
    local, domain = [p[0] for p in pairs], [p[1] for p in pairs]
    plus = pc.if_else(pa.array(ucopy > 0), join("+", pc.cast(pa.array(ucopy + 1), pa.string())), "")
    email = join(pc.take(pa.array([json.dumps(x)[:-1] for x in local]), pa.array(src_u)), plus, "@",
                 pc.take(pa.array([json.dumps(x)[1:] for x in domain]), pa.array(src_u)))
    start = (dt.date(2019, 1, 1) - dt.date(1970, 1, 1)).days
    signup_u = np.random.default_rng([seed, STREAM_USERS, 2]).random(n_users)
    signup = (start + signup_u * 5 * 365).astype(np.int32)
    signup_txt = join('"', pc.cast(pa.array(signup, pa.date32()), pa.string()), '"')
    take_u = pa.array(src_u)
    user_rows = {
        "user_id": join('"', uids, '"'),
        "first_name": pc.take(enc(catalog.first), take_u),
        "last_name": pc.take(enc(catalog.last), take_u),
        "email": email,
        "city": pc.take(enc(catalog.cities), take_u),
        "country": pc.take(enc(catalog.countries), take_u),
        "signup_date": signup_txt,
    }
    return Master(
        n_products=n_products,
        n_users=n_users,
        product_ids=product_ids,
        user_ids=pa.concat_arrays([uids, pa.array([""], pa.string())]),
        category_names=cat_names,
        base_category=base_cat.astype(np.int64),
        base_cents=base_cents,
        product_cdf=_zipf_cdf(n_products, 1.1, np.random.default_rng([seed, STREAM_PRODUCTS, 1])),
        user_cdf=_zipf_cdf(n_users, 1.0, np.random.default_rng([seed, STREAM_USERS, 1]), offset=25.0),
        product_rows=product_rows,
        user_rows=user_rows,
        seed=seed,
    )
