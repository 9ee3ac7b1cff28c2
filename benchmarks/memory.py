"""Memory per shopper: the worker's state table and the Redis lookup.

The worker keeps each active shopper in its table as compact JSON bytes
(``nextoffer.streams.io.codecs.encode_state``; Faust's in-memory store holds the Python objects it is
given), so its cost per shopper is measured with tracemalloc over a table of realistic
states: a few views, a cart, an order and the offers shown.
Redis is measured by writing offers through the worker's own store code (two placements per
user: offers the engine makes on the benchmark's workload, and, for the worst case, large
three-item offers) and reading ``used_memory`` before and after.
"""
from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc

import orjson
import redis

from typing import Optional

from nextoffer.benchmarks.workload import Workload
from nextoffer.models import profile
from nextoffer.models.acceptance import OfferedItem
from nextoffer.models.engine import OfferEngine
from nextoffer.models.catalog import Catalog
from nextoffer.models.events import LineItem, Product, ShopperEvent
from nextoffer.models.offer import Kind, Offer, OfferItem, Placement, offer_id_for
from nextoffer.models.profile import ProfileSettings
from nextoffer.models.shopper import ShopperState
from nextoffer.streams.io.codecs import decode_event, decode_product, encode_offer, encode_state
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.store import RedisOfferStore


def bench_catalog() -> Catalog:
    """The products :func:`realistic_state` uses, with categories and brands, so the profile fills."""
    catalog = Catalog()
    for f in range(2000):
        for tier, price in ((1, 120.0), (2, 150.0)):
            catalog.upsert(Product(f"f{f}-t{tier}", price, category=f"main.c{f % 40}", brand=f"b{f % 60}",
                                   family=f"f{f}", tier=float(tier)))
    for a in range(4000):
        catalog.upsert(Product(f"a{a}", 19.0, category=f"acc.c{a % 80}", brand=f"b{a % 60}"))
    return catalog


def realistic_state(n: int, rng: random.Random, now: float, catalog: Optional[Catalog] = None) -> ShopperState:
    """A shopper after a short visit: views, two adds, a purchase, three offers shown, and the
    profile those events build (with ``catalog``)."""
    user = f"user-{n}"
    s = ShopperState(user)
    seq = 0
    settings = ProfileSettings()

    def apply(topic, kind, **kw):
        nonlocal seq
        seq += 1
        previous = (s.last_ts, s.session_id)
        event = ShopperEvent(topic, kind, f"e{n}-{seq}", user, now + seq, session_id=f"{user}-1", **kw)
        s.apply(event)
        if catalog is not None:
            profile.observe(s, event, catalog, settings, *previous)
    for _ in range(3):
        apply("clickstream", "view", product_id=f"f{rng.randrange(2000)}-t1", price=120.0)
    for _ in range(2):
        apply("cart", "add", product_id=f"a{rng.randrange(4000)}", price=19.0)
    apply("cart", "purchase", items=(LineItem(f"f{rng.randrange(2000)}-t2", 1, 150.0),))
    for k in range(3):
        pid = f"a{rng.randrange(4000)}"
        s.record_offer(f"{user}-offer-{k}", [OfferedItem(pid, "cross_sell", "cart", "bought_together", 0.1, 0.2, 0)],
                       now + seq, 86_400)
    return s


def worker_bytes_per_user(users: int, seed: int = 1, chunk: int = 50_000) -> float:
    """Bytes of Python heap per shopper for a table of ``users`` realistic shoppers, keys,
    values and the table's own slots included."""
    rng = random.Random(seed)
    catalog = bench_catalog()
    table: dict[str, bytes] = {}
    traced = 0
    for start in range(0, users, chunk):
        states = [realistic_state(n, rng, 1_700_000_000.0, catalog) for n in range(start, min(users, start + chunk))]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n, state in enumerate(states, start=start):
            table[f"user-{n}"] = encode_state(state)
        traced += tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        del states
    per_user = traced / users
    table.clear()
    gc.collect()
    return per_user


def sample_offer(user: str, placement: Placement, now: float) -> bytes:
    items = tuple(OfferItem(f"a{k}", 0.123456, "often bought with Product 17 tier 1: in 12% of its "
                            "orders, 3.1x the usual rate", 19.99) for k in range(3))
    offer = Offer(offer_id_for(f"e-{user}", placement), user, placement, Kind.CROSS_SELL, "f17-t1",
                  items, f"e-{user}", now, now + 3600, "greedy", 1.0)
    return encode_offer(offer)


def engine_offers(per_placement: int = 1000, seed: int = 7) -> dict[Placement, list[bytes]]:
    """Offers the engine itself makes on the benchmark's workload, ``per_placement`` each for the
    product page and the cart: what Redis really holds, reasons and item counts included.

    >>> offers = engine_offers(20)
    >>> sorted(p.value for p in offers), all(len(v) == 20 for v in offers.values())
    (['cart', 'product_page'], True)
    """
    workload = Workload(seed=seed)
    settings = Settings.from_env({})
    engine = OfferEngine(settings.rules, settings.learners)
    for raw in workload.catalog:
        engine.update_product(decode_product(orjson.dumps(raw)))
    states: dict[str, ShopperState] = {}
    wanted = (Placement.PRODUCT_PAGE, Placement.CART)
    offers: dict[Placement, list[bytes]] = {p: [] for p in wanted}
    while any(len(v) < per_placement for v in offers.values()):
        topic, user, raw = workload.next_event()
        shopper = states.setdefault(user, ShopperState(user))
        offer = engine.process(shopper, decode_event(topic, orjson.dumps(raw)), generated_at=raw["ts"]).offer
        if offer is not None and offer.placement in offers and len(offers[offer.placement]) < per_placement:
            offers[offer.placement].append(encode_offer(offer))
    return offers


def redis_bytes_per_user(url: str, prefix: str, users: int, ttl: int = 86_400,
                         offers: Optional[dict[Placement, list[bytes]]] = None) -> tuple[float, int]:
    """Redis ``used_memory`` per shopper with two placements' offers each (the product page's
    and the cart's), and the mean offer size. ``offers``: payloads to cycle through (their
    ``user_id`` set to each shopper's); by default a large three-item offer, the worst case."""
    client = redis.Redis.from_url(url)
    store = RedisOfferStore(url, ttl)
    placements = (Placement.PRODUCT_PAGE, Placement.CART)

    def payload(user: str, placement: Placement, n: int) -> bytes:
        if offers is None:
            return sample_offer(user, placement, 1.7e9)
        offer = orjson.loads(offers[placement][n % len(offers[placement])])
        offer["user_id"] = user
        return orjson.dumps(offer)
    sizes = [len(payload("user-0", p, n)) for p in placements for n in range(100)]

    async def write() -> None:
        batch = []
        for n in range(users):
            user = f"user-{n}"
            batch.extend((f"{prefix}nbo:{user}", p.value, payload(user, p, n)) for p in placements)
            if len(batch) >= 2000:
                await store.put_many(batch)
                batch = []
        if batch:
            await store.put_many(batch)
        await store.close()
    before = client.info("memory")["used_memory"]
    asyncio.run(write())
    after = client.info("memory")["used_memory"]
    keys = list(client.scan_iter(f"{prefix}nbo:*", count=5000))
    for start in range(0, len(keys), 5000):
        client.unlink(*keys[start:start + 5000])
    client.close()
    return (after - before) / users, round(sum(sizes) / len(sizes))
