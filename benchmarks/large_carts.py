"""A large-cart store: carts of 20 to 60 lines over a long-tail catalog of 100k to 1M products.

Products belong to themes (a kitchen, a nursery, a workshop); an order picks a theme, most of
its lines from that theme (a few favourites often, most products rarely: Zipf), and a few from
anywhere in the catalog. So "bought together" has real structure, most pairs are seen once
or twice (the long tail), and the learners grow with the catalog as they would in a large
store. Prices are log-normal per theme, so the price rules see a spread of price levels.

>>> orders = large_cart_orders(products=2_000, orders=50, seed=1)
>>> len(orders), all(20 <= len(o.lines) <= 60 for o in orders)
(50, True)
>>> len({line.product_id for o in orders for line in o.lines}) > 500     # a long tail, not a few hits
True
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from nextoffer.models.events import LineItem
from nextoffer.streams.tools.evaluation import Order

#: Products per theme.
THEME_SIZE = 500
#: Share of an order's lines drawn from the whole catalog instead of its theme.
STRAY_SHARE = 0.1
#: Zipf exponents: of the themes' popularity and of the products' within a theme.
THEME_SKEW, PRODUCT_SKEW = 0.8, 1.1
#: Seconds between two orders of the workload.
ORDER_GAP = 60.0


def large_cart_orders(products: int = 100_000, orders: int = 20_000, seed: int = 7,
                      lines: tuple[int, int] = (20, 60), shoppers: Optional[int] = None) -> list[Order]:
    """``orders`` orders of ``lines`` distinct products each (uniform in the range), over a
    catalog of ``products``; ``shoppers`` (default: a third of the orders) place them."""
    rng = np.random.default_rng(seed)
    themes = max(1, products // THEME_SIZE)
    theme_weights = _zipf(themes, THEME_SKEW)
    within = _zipf(THEME_SIZE, PRODUCT_SKEW)
    base_price = np.exp(rng.normal(3.0, 1.0, themes))                  # a theme's price level
    price = np.round(base_price[np.arange(products) % themes] * np.exp(rng.normal(0.0, 0.5, products)), 2) + 0.5
    users = shoppers or max(1, orders // 3)
    sizes = rng.integers(lines[0], lines[1] + 1, orders)
    picked_themes = rng.choice(themes, size=orders, p=theme_weights)
    users_of = rng.integers(0, users, orders)
    out = []
    for n in range(orders):
        size, theme = int(sizes[n]), int(picked_themes[n])
        strays = int(rng.binomial(size, STRAY_SHARE))
        ranks = rng.choice(THEME_SIZE, size=size - strays, replace=False, p=within)
        chosen = [theme + themes * int(r) for r in ranks if theme + themes * int(r) < products]
        picked = dict.fromkeys(chosen)
        while len(picked) < size:       # strays from anywhere, none twice
            picked.setdefault(int(rng.integers(0, products)))
        items = tuple(LineItem(f"p{pid}", 1 + int(rng.integers(0, 3)), float(price[pid])) for pid in picked)
        out.append(Order(f"lc{n}", f"s{int(users_of[n])}", 1_700_000_000.0 + n * ORDER_GAP, items))
    return out


def _zipf(n: int, skew: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** skew
    return weights / weights.sum()


def workload(products: int = 100_000, orders: int = 6_000, seed: int = 7):
    """The large-cart mix as the benchmark's workload (:class:`~nextoffer.benchmarks.replay.ReplayWorkload`)."""
    from nextoffer.benchmarks.replay import ReplayWorkload
    w = ReplayWorkload(large_cart_orders(products, orders, seed))
    themes = max(1, products // THEME_SIZE)
    for entry in w.catalog:          # the store's catalog knows each product's theme
        entry["category"] = f"theme-{int(entry['product_id'][1:]) % themes}"
    w.spec = ("large_carts", products, orders, seed)
    return w
