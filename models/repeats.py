"""How often buyers of a product buy it again: replenishment, learned from orders.

Coffee beans and cake cases come back; a sofa does not. The rate is smoothed
towards a prior so that a product seen twice does not look like a staple.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from nextoffer.models.product_index import ProductIndex


class RepeatPurchases:
    """Per product: orders that held it, and how many of those were a repeat by the same shopper,
    as two arrays over ``products`` (a :class:`ProductIndex`, shared with the engine's other
    per-product counts; its own without one).

    >>> r = RepeatPurchases(prior_rate=0.1, prior_weight=10)
    >>> for _ in range(20):
    ...     r.observe(["beans", "sofa"], repeats=["beans"])
    >>> round(r.rate("beans"), 2), round(r.rate("sofa"), 2), round(r.rate("new"), 2), r.orders("sofa")
    (0.7, 0.03, 0.1, 20)
    """

    def __init__(self, prior_rate: float = 0.1, prior_weight: float = 10.0,
                 products: Optional[ProductIndex] = None) -> None:
        self.prior_rate = prior_rate
        self.prior_weight = prior_weight
        self.products = ProductIndex() if products is None else products
        #: product -> position in the arrays (the shared index's dict, read by the ranking kernel)
        self.index = self.products.index
        # whole numbers, held as doubles (exact below 2 ** 53) for the kernel, read back as ints
        self._orders = np.zeros(1024)
        self._again = np.zeros(1024)

    def observe(self, products: Iterable[str], repeats: Iterable[str]) -> None:
        """One order's ``products``, of which ``repeats`` the shopper had bought before."""
        again, distinct = set(repeats), list(dict.fromkeys(products))
        position = self.products.position
        idx = [position(pid) for pid in distinct]      # distinct: one += each
        self.order_counts()[idx] += 1.0                 # the arrays grown to the new positions
        repeated = [i for i, pid in zip(idx, distinct) if pid in again]
        if repeated:
            self._again[repeated] += 1.0

    def order_counts(self) -> np.ndarray:
        """Orders per product position (0 for a product indexed but never ordered), grown to
        every position of the index: what the ranking kernel reads with :attr:`index`."""
        if len(self._orders) < len(self.products):
            self._orders = self.products.covering(self._orders)
            self._again = self.products.covering(self._again)
        return self._orders

    def again_counts(self) -> np.ndarray:
        """Repeat orders per product position, grown as :meth:`order_counts` (the kernels read it)."""
        self.order_counts()
        return self._again

    def orders(self, pid: str) -> int:
        """Orders that held this product."""
        return self._counts_of(pid)[0]

    def rate(self, pid: str) -> float:
        """Smoothed share of this product's orders that were a shopper buying it again."""
        orders, again = self._counts_of(pid)
        return (again + self.prior_rate * self.prior_weight) / (orders + self.prior_weight)

    def _counts_of(self, pid: str) -> tuple[int, int]:
        """(orders, repeat orders) of a product, (0, 0) for one never ordered."""
        i = self.index.get(pid)
        return (int(self._orders[i]), int(self._again[i])) if i is not None and i < len(self._orders) else (0, 0)
