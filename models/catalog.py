"""The product catalog: products, their upgrade ladders and their categories.

Fed by the compacted ``catalog`` topic and, for products it never named, by the
price, category and brand last seen on shopper events.
"""
from __future__ import annotations

import bisect
import sys
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
        # The dict's own lookup, not a method around it: a decision reads the catalog a few
        # hundred times (the one in the class body is for readers and help()).
        self.get = self._products.get
        self._families: dict[str, list[str]] = defaultdict(list)
        self._categories: dict[str, PriceIndex] = defaultdict(PriceIndex)
        #: The ids of the products out of stock (stock 0): what a round of showcases leaves out
        #: of a category without reading each product (read only).
        self.out_of_stock: set[str] = set()

    def __len__(self) -> int:
        return len(self._products)

    @property
    def products_by_id(self) -> dict[str, Product]:
        """Product id -> product, as held (read only: the compiled kernels read it)."""
        return self._products

    def __contains__(self, product_id: str) -> bool:
        return product_id in self._products

    def get(self, product_id: str) -> Optional[Product]:  # replaced per instance by the dict's get
        """The product, or None."""
        return self._products.get(product_id)

    def products(self) -> Iterator[Product]:
        return iter(self._products.values())

    def upsert(self, product: Product) -> None:
        """Add or replace a product from the catalog topic."""
        product = _interned(product)
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
        if known is not None:
            if not known.from_events:
                return
            # the common case, every line of every order: nothing new about the product
            if ((price is None or price == known.price) and (category is None or category == known.category)
                    and (brand is None or brand == known.brand)):
                return
        else:
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
        index = self._categories.get(category)
        if not index:
            return []
        prices, ids = index.prices, index.ids
        start = bisect.bisect_left(prices, low)
        end = bisect.bisect_right(prices, high, start)     # a category holds thousands: C loops
        return list(map(self._products.__getitem__, ids[start:end]))

    def category_median(self, category: str) -> Optional[float]:
        """The median price of a category's products (None for an unknown category).

        >>> c = Catalog()
        >>> for pid, price in (("a", 10.0), ("b", 20.0), ("c", 40.0)):
        ...     c.upsert(Product(pid, price, category="mugs"))
        >>> c.category_median("mugs"), c.category_median("cups")
        (20.0, None)
        """
        index = self._categories.get(category)
        return index.prices[len(index.prices) // 2] if index else None

    def price_index(self, category: str) -> Optional["PriceIndex"]:
        """A category's products in (price, id) order (the index itself: do not change it), or
        None for an unknown category."""
        return self._categories.get(category) or None

    def in_category(self, category: str) -> list[str]:
        """A category's product ids, cheapest first (the index itself: do not change it).

        >>> c = Catalog()
        >>> for pid, price in (("b", 20.0), ("a", 20.0), ("c", 5.0)):
        ...     c.upsert(Product(pid, price, category="mugs"))
        >>> c.in_category("mugs"), c.in_category("cups")
        (['c', 'a', 'b'], [])
        """
        index = self._categories.get(category)
        return index.ids if index else []

    def _index(self, product: Product) -> None:
        if product.stock == 0:
            self.out_of_stock.add(product.product_id)
        if product.family is not None:
            ladder = self._families[product.family]
            ladder.append(product.product_id)
            ladder.sort(key=lambda pid: _tier_key(self._products[pid]))
        if product.category is not None:
            self._categories[product.category].add(product.price, product.product_id)

    def _unindex(self, product: Optional[Product]) -> None:
        if product is None:
            return
        self.out_of_stock.discard(product.product_id)
        if product.family is not None:
            self._families[product.family].remove(product.product_id)
        if product.category is not None:
            self._categories[product.category].remove(product.price, product.product_id)


class PriceIndex:
    """A category's products in (price, id) order, as two parallel lists: they hold the
    product's own price and id objects, 16 bytes a product instead of a tuple's 72.

    >>> index = PriceIndex()
    >>> for price, pid in ((9.0, "b"), (9.0, "a"), (3.0, "c")):
    ...     index.add(price, pid)
    >>> index.remove(9.0, "b")
    >>> index.prices, index.ids
    ([3.0, 9.0], ['c', 'a'])
    """

    __slots__ = ("prices", "ids")

    def __init__(self) -> None:
        self.prices: list[float] = []
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def _position(self, price: float, product_id: str) -> int:
        return position_in(self.prices, self.ids, price, product_id)

    def add(self, price: float, product_id: str) -> None:
        i = self._position(price, product_id)
        self.prices.insert(i, price)
        self.ids.insert(i, product_id)

    def remove(self, price: float, product_id: str) -> None:
        i = self._position(price, product_id)
        del self.prices[i], self.ids[i]


def position_in(prices: list[float], ids: list[str], price: float, product_id: str,
                lo: int = 0, hi: Optional[int] = None) -> int:
    """Where (price, product_id) is, or would go, among a :class:`PriceIndex`'s lists (or
    copies of them), searching ``lo`` to ``hi``: by price, then by id within a price.

    >>> position_in([3.0, 9.0, 9.0], ["c", "a", "b"], 9.0, "b"), position_in([3.0, 9.0], ["c", "a"], 5.0, "x")
    (2, 1)
    """
    lo = bisect.bisect_left(prices, price, lo, len(prices) if hi is None else hi)
    end = bisect.bisect_right(prices, price, lo, len(prices) if hi is None else hi)
    return bisect.bisect_left(ids, product_id, lo, end)     # ids are sorted within a price


def _interned(product: Product) -> Product:
    """The product with its labels interned: a catalog of a million products repeats a few
    thousand category, brand and family names, each decoded from its own message."""
    fields = {k: sys.intern(v) for k in ("category", "brand", "family")
              if type(v := getattr(product, k)) is str and sys.intern(v) is not v}
    return replace(product, **fields) if fields else product


def _tier_key(product: Product) -> tuple[float, float]:
    # Tiers order a family; without a tier, price does.
    return (product.tier if product.tier is not None else product.price, product.price)
