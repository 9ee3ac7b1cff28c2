"""How often buyers of a product buy it again: replenishment, learned from orders.

Coffee beans and cake cases come back; a sofa does not. The rate is smoothed
towards a prior so that a product seen twice does not look like a staple.
"""
from __future__ import annotations

from typing import Iterable


class RepeatPurchases:
    """Per product: orders that held it, and how many of those were a repeat by the same shopper.

    >>> r = RepeatPurchases(prior_rate=0.1, prior_weight=10)
    >>> for _ in range(20):
    ...     r.observe(["beans", "sofa"], repeats=["beans"])
    >>> round(r.rate("beans"), 2), round(r.rate("sofa"), 2), round(r.rate("new"), 2)
    (0.7, 0.03, 0.1)
    """

    def __init__(self, prior_rate: float = 0.1, prior_weight: float = 10.0) -> None:
        self.prior_rate = prior_rate
        self.prior_weight = prior_weight
        self._counts: dict[str, list] = {}   # pid -> [orders, repeat orders]

    @property
    def counts(self) -> dict[str, list]:
        """Product -> [orders, repeat orders], as held (read only: the ranking's rows read it)."""
        return self._counts

    def observe(self, products: Iterable[str], repeats: Iterable[str]) -> None:
        """One order's ``products``, of which ``repeats`` the shopper had bought before."""
        again = set(repeats)
        for pid in dict.fromkeys(products):
            entry = self._counts.get(pid)
            if entry is None:
                entry = self._counts[pid] = [0, 0]
            entry[0] += 1
            entry[1] += pid in again

    def orders(self, pid: str) -> int:
        """Orders that held this product."""
        entry = self._counts.get(pid)
        return entry[0] if entry else 0

    def rate(self, pid: str) -> float:
        """Smoothed share of this product's orders that were a shopper buying it again."""
        orders, again = self._counts.get(pid, (0, 0))
        return (again + self.prior_rate * self.prior_weight) / (orders + self.prior_weight)
