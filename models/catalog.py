"""The product catalog: products, their upgrade ladders and their categories.

Fed by the compacted ``catalog`` topic and, for products it never named, by the
price, category and brand last seen on shopper events.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import replace
from typing import Iterator, Optional

from nextoffer.models.events import Product


class Catalog:
    """Products by id, with family ladders and price-sorted categories.

    >>> c = Catalog()
    >>> c.upsert(Product("s-128", 700.0, family="phone-s", tier=1, category="phone"))
    >>> c.upsert(Product("s-256", 850.0, family="phone-s", tier=2, category="phone"))
    >>> [p.product_id for p in c.higher_tiers("s-128")]
    ['s-256']
    >>> [p.product_id for p in c.in_category_between("phone", 800, 900)]
    ['s-256']
    """

    def __init__(self) -> None:
        self._products: dict[str, Product] = {}
        self._families: dict[str, list[str]] = defaultdict(list)
        self._categories: dict[str, list[tuple[float, str]]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._products)

    def __contains__(self, product_id: str) -> bool:
        return product_id in self._products

    def get(self, product_id: str) -> Optional[Product]:
        return self._products.get(product_id)

    def products(self) -> Iterator[Product]:
        return iter(self._products.values())

    def upsert(self, product: Product) -> None:
        """Add or replace a product from the catalog topic."""
        self._unindex(self._products.get(product.product_id))
        self._products[product.product_id] = product
        self._index(product)

    def observe(self, product_id: str, price: Optional[float], category: Optional[str] = None,
                brand: Optional[str] = None) -> None:
        """Learn a product's price, category and brand from an event.

        A product the catalog topic declared keeps its declared attributes; one
        only seen on events takes the latest values seen.
        """
        known = self._products.get(product_id)
        if known is not None and not known.from_events:
            return
        if known is None:
            if price is None or price <= 0:
                return
            self.upsert(Product(product_id, price, category=category, brand=brand, from_events=True))
            return
        changed = {k: v for k, v in (("price", price), ("category", category), ("brand", brand))
                   if v is not None and getattr(known, k) != v and (k != "price" or v > 0)}
        if changed:
            self.upsert(replace(known, **changed))

    def higher_tiers(self, product_id: str) -> list[Product]:
        """Tiers of the product's family above it, nearest first."""
        anchor = self._products.get(product_id)
        if anchor is None or anchor.family is None:
            return []
        ladder = [self._products[pid] for pid in self._families[anchor.family]]
        rank = _tier_key(anchor)
        return [p for p in ladder if _tier_key(p) > rank]

    def in_category_between(self, category: str, low: float, high: float) -> list[Product]:
        """Products of a category priced within [low, high], cheapest first."""
        prices = self._categories.get(category)
        if not prices:
            return []
        start = bisect.bisect_left(prices, (low, ""))
        out = []
        for price, pid in prices[start:]:
            if price > high:
                break
            out.append(self._products[pid])
        return out

    def category_median(self, category: str) -> Optional[float]:
        """The median price of a category's products (None for an unknown category).

        >>> c = Catalog()
        >>> for pid, price in (("a", 10.0), ("b", 20.0), ("c", 40.0)):
        ...     c.upsert(Product(pid, price, category="mugs"))
        >>> c.category_median("mugs"), c.category_median("cups")
        (20.0, None)
        """
        prices = self._categories.get(category)
        return prices[len(prices) // 2][0] if prices else None

    def in_category(self, category: str) -> list[tuple[float, str]]:
        """A category's (price, product id) pairs, cheapest first (the index itself: do not change it)."""
        return self._categories.get(category, [])

    def _index(self, product: Product) -> None:
        if product.family is not None:
            ladder = self._families[product.family]
            ladder.append(product.product_id)
            ladder.sort(key=lambda pid: _tier_key(self._products[pid]))
        if product.category is not None:
            bisect.insort(self._categories[product.category], (product.price, product.product_id))

    def _unindex(self, product: Optional[Product]) -> None:
        if product is None:
            return
        if product.family is not None:
            self._families[product.family].remove(product.product_id)
        if product.category is not None:
            entries = self._categories[product.category]
            entries.pop(bisect.bisect_left(entries, (product.price, product.product_id)))


def _tier_key(product: Product) -> tuple[float, float]:
    # Tiers order a family; without a tier, price does.
    return (product.tier if product.tier is not None else product.price, product.price)
