"""One day of events (funnel sessions) and orders, plus dirty-row injection, all vectorised.

Tables are dicts of equal-length numpy arrays; text is produced later by the writers.
Timestamps are integer seconds relative to the day's midnight.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from devtools.generate.master import Master

FUNNEL_P = np.array([0.6, 0.35, 0.6, 0.7])  # P(continue) page_view->view->cart->checkout->purchase
MEAN_SESSION = 1 + np.cumprod(FUNNEL_P).sum()
# relative traffic per hour of day: quiet at night, peaks around lunch and in the evening
HOUR_WEIGHT = np.array([.30, .18, .10, .07, .06, .08, .18, .38, .60, .75, .85, .95,
                        1.0, .95, .88, .85, .88, .95, 1.05, 1.15, 1.2, 1.05, .75, .48])
HOUR_CDF = np.cumsum(HOUR_WEIGHT / HOUR_WEIGHT.sum())
STATUS_P = np.array([0.70, 0.10, 0.12, 0.08])  # paid, pending, cancelled, refunded
QTY_P = np.array([0.72, 0.15, 0.07, 0.04, 0.02])  # quantity 1..5
DAY = 86_400
UPPER, HOVER = 5, 10  # event type codes: 0..4 funnel, 5..9 upper-case variants, 10 "hover"

Table = dict[str, np.ndarray]


def _pick(cdf: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def diurnal_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    hours = _pick(HOUR_CDF, rng, n)
    return hours * 3600 + rng.integers(0, 3600, n)


def make_events(master: Master, n_events: int, rng: np.random.Generator) -> Table:
    """Funnel sessions trimmed to exactly ``n_events`` rows, sorted by time; ids 0..n-1."""
    sessions = int(n_events / MEAN_SESSION * 1.05) + 16
    while True:
        cont = rng.random((sessions, 4)) < FUNNEL_P
        length = 1 + np.cumprod(cont, axis=1).sum(axis=1)
        if length.sum() >= n_events:
            break
        sessions *= 2
    ends = np.cumsum(length)
    ns = int(np.searchsorted(ends, n_events)) + 1 if n_events else 0
    length = length[:ns]
    starts = ends[:ns] - length
    ends = np.minimum(ends[:ns], n_events)  # the last session may be cut short
    sess = np.repeat(np.arange(ns), ends - starts)
    stage = np.arange(n_events) - starts[sess]
    user = _pick(master.user_cdf, rng, ns)
    product = _pick(master.product_cdf, rng, ns)
    gaps = np.where(stage == 0, 0, 4 + rng.exponential(50.0, n_events).astype(np.int64))
    csum = np.cumsum(gaps)
    within = csum - (csum[starts] - gaps[starts])[sess]
    duration = within[ends - 1] if ns else np.zeros(0, np.int64)
    start_ts = np.minimum(diurnal_seconds(rng, ns), DAY - 1 - duration)
    ts = start_ts[sess] + within
    order = np.argsort(ts, kind="stable")
    return {
        "id": np.arange(n_events), "id_day": np.zeros(n_events, np.int64), "id_null": np.zeros(n_events, bool),
        "user": user[sess][order], "product": np.where(stage == 0, master.n_products + 1, product[sess])[order],
        "etype": stage[order], "ts": ts[order], "ts_bad": np.zeros(n_events, bool),
    }


def make_orders(master: Master, n_orders: int, events: Table, cents: np.ndarray,
                rng: np.random.Generator) -> Table:
    """Orders for the day's purchase events (a few minutes later) + other-channel orders."""
    pur = np.flatnonzero(events["etype"] == 4)
    if len(pur) > n_orders:
        pur = np.sort(rng.choice(pur, n_orders, replace=False))
    extra = n_orders - len(pur)
    user = np.concatenate([events["user"][pur], _pick(master.user_cdf, rng, extra)])
    product = np.concatenate([events["product"][pur], _pick(master.product_cdf, rng, extra)])
    lag = rng.integers(15, 240, len(pur))
    ts = np.concatenate([np.minimum(events["ts"][pur] + lag, DAY - 1), diurnal_seconds(rng, extra)])
    order = np.argsort(ts, kind="stable")
    qty = 1 + _pick(np.cumsum(QTY_P), rng, n_orders)
    status = _pick(np.cumsum(STATUS_P), rng, n_orders)
    product = product[order]
    return {
        "id": np.arange(n_orders), "id_day": np.zeros(n_orders, np.int64), "id_null": np.zeros(n_orders, bool),
        "user": user[order], "product": product, "qty": qty, "cents": cents[product],
        "ts": ts[order], "ts_bad": np.zeros(n_orders, bool), "status": status,
    }


# --- dirty rows --------------------------------------------------------------------------------
Mutator = Callable[[Table, np.ndarray, np.random.Generator, Master], None]
Values = Callable[[Table, np.ndarray, np.random.Generator, Master], np.ndarray]


def _set(col: str, value: Values | int | bool) -> Mutator:
    def apply(t: Table, r: np.ndarray, rng: np.random.Generator, m: Master) -> None:
        t[col][r] = value(t, r, rng, m) if callable(value) else value
    return apply


def _unknown_product(t: Table, r: np.ndarray, rng: np.random.Generator, m: Master) -> None:
    t["product"][r] = m.n_products  # PROD_9999
    if "etype" in t:  # a page_view has no product: make it a product view
        t["etype"][r] = np.where(t["etype"][r] == 0, 1, t["etype"][r])


def _prev_day_id(t: Table, r: np.ndarray, rng: np.random.Generator, m: Master) -> None:
    t["id"][r] = rng.integers(0, len(t["id"]), len(r))  # the previous day has the same row count
    t["id_day"][r] = -1


ID_COLS = ("id", "id_day", "id_null")
# an order resent with other content is the same order: the same user, product and price (a changed quantity,
# status or time), so staging quarantines it as duplicate_id_conflict; another product would make it a second
# line of the order (multiple_order_lines), which the quality gate warns about
ORDER_CONFLICT_COLS = (*ID_COLS, "user", "product", "cents")


def _dup(exact: bool) -> Callable[[Table, np.ndarray, np.ndarray], None]:
    def apply(t: Table, r: np.ndarray, src: np.ndarray) -> None:
        shared = t if exact else ORDER_CONFLICT_COLS if "qty" in t else ID_COLS
        for col in shared:
            t[col][r] = t[col][src]
    return apply


COMMON: dict[str, Mutator] = {
    "null_id": _set("id_null", True),
    "null_user_id": _set("user", lambda t, r, g, m: np.full(len(r), m.n_users)),
    "bad_timestamp": _set("ts_bad", True),
    "unknown_product": _unknown_product,
    "future_timestamp": _set("ts", lambda t, r, g, m: t["ts"][r] + DAY * g.integers(1, 4, len(r))),
    "late_record": _set("ts", lambda t, r, g, m: g.integers(0, DAY, len(r)) - DAY * g.integers(1, 3, len(r))),
    "dup_prev_day": _prev_day_id,
}
ORDER_KINDS: dict[str, Mutator] = {
    **COMMON,
    "bad_quantity": _set("qty", lambda t, r, g, m: -g.integers(0, 3, len(r))),
    "negative_price": _set("cents", lambda t, r, g, m: -np.abs(t["cents"][r])),
}
EVENT_KINDS: dict[str, Mutator] = {
    **COMMON,
    "unknown_event_type": _set("etype", HOVER),
    "uppercase_event_type": _set("etype", lambda t, r, g, m: t["etype"][r] % UPPER + UPPER),
}
DUP_KINDS = {"dup_exact": _dup(True), "dup_conflict": _dup(False)}


def inject_dirty(t: Table, kinds: dict[str, Mutator], rate: float, rng: np.random.Generator,
                 master: Master) -> dict[str, int]:
    """Replace round(rate * rows) random rows, cycling through ``kinds`` and the duplicate kinds."""
    n = len(t["id"])
    k = int(round(rate * n))
    if k == 0:
        return {}
    names = list(kinds) + list(DUP_KINDS)
    rows = rng.permutation(n)[:k]
    which = np.arange(k) % len(names)
    clean = np.ones(n, bool)
    clean[rows] = False
    pool = np.flatnonzero(clean) if clean.any() else np.arange(n)
    counts: dict[str, int] = {}
    for i, name in enumerate(names):  # dup kinds come last so they copy from clean rows
        r = rows[which == i]
        counts[name] = len(r)
        if name in DUP_KINDS:
            DUP_KINDS[name](t, r, rng.choice(pool, len(r)))
        else:
            kinds[name](t, r, rng, master)
    return counts
