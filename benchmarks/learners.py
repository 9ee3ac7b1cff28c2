"""Memory and learning speed of the shared learners on a large catalog.

Every worker holds the shared learners ("bought together", category pairs, repeat rates,
learned upgrades, proportions, showcase counts) and the catalog, and learns every order
(:meth:`~nextoffer.models.engine.OfferEngine.learn_basket`). This measures what they take as a
catalog grows: the store's catalog loaded first (every product, with its theme as category),
then the large-cart orders of :mod:`nextoffer.benchmarks.large_carts` learned one by one.
Memory is the process's resident set growth (what a worker's container pays), read from
``/proc/self/statm`` after a garbage collection, so tracing does not slow the learning timed
beside it.
"""
from __future__ import annotations

import gc
import os
import time

from nextoffer.benchmarks.large_carts import THEME_SIZE, large_cart_orders
from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import Product
from nextoffer.models.rules import OfferRules

MIB = 1024 * 1024


def resident_bytes() -> int:
    """This process's resident set size."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def learner_memory(products: int, orders: int, seed: int = 7) -> dict:
    """Resident memory of the catalog and of the learners after ``orders`` large-cart orders
    over ``products`` products, and how fast the orders were learned."""
    data = large_cart_orders(products, orders, seed)
    themes = max(1, products // THEME_SIZE)
    prices = {line.product_id: line.price for o in data for line in o.lines}
    start = resident_bytes()
    engine = OfferEngine(OfferRules())
    for n in range(products):
        pid = f"p{n}"
        engine.catalog.upsert(Product(pid, prices.get(pid, 10.0), category=f"theme-{n % themes}"))
    catalog = resident_bytes()
    began, lines = time.perf_counter(), 0
    for o in data:
        engine.learn_basket(Basket(o.user_id, o.ts, o.lines, event_id=o.order_id))
        lines += len(o.lines)
    seconds = time.perf_counter() - began
    learned = resident_bytes()
    bought = engine.bought
    pairs = sum(len(row) for row in bought._pairs.values())
    return {"products": products, "orders": orders, "lines_per_order": round(lines / max(1, orders), 1),
            "products_ordered": bought.products, "pairs_stored": pairs,
            "catalog_mib": round((catalog - start) / MIB, 1), "learners_mib": round((learned - catalog) / MIB, 1),
            "total_mib": round((learned - start) / MIB, 1),
            "bytes_per_pair": round((learned - catalog) / max(1, pairs), 1),
            "orders_per_s": round(orders / seconds, 1), "lines_per_s": round(lines / seconds)}
