"""A real store's orders as the benchmark's workload: each order replayed as a storefront sends it.

For every order of the export (Online Retail by default, or any export with a column mapping):
a view of its first line, an add per line (real basket sizes: Online Retail's run from 1 to
over 500 lines, 21 on average), a checkout and the purchase. Orders come round again, with fresh
event ids, once the export is used up. The catalog is every product with its last price.

>>> from nextoffer.streams.tools.evaluation import Order
>>> from nextoffer.models.events import LineItem
>>> w = ReplayWorkload([Order("o1", "u1", 0.0, (LineItem("tea", 1, 3.0), LineItem("pot", 1, 20.0)))])
>>> [(e["type"], e.get("product_id")) for _, _, e in (w.next_event() for _ in range(5))]
[('view', 'tea'), ('add', 'tea'), ('add', 'pot'), ('checkout', None), ('purchase', None)]
>>> w.catalog[1], w.next_event()[2]["event_id"] != "r1"
({'product_id': 'pot', 'price': 20.0}, True)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

from nextoffer.streams.tools.evaluation import Order


class ReplayWorkload:
    """The events of ``orders``, round after round; ``users`` is how many shoppers they have."""

    def __init__(self, orders: Sequence[Order], max_lines: Optional[int] = None) -> None:
        self.orders = list(orders)
        self.max_lines = max_lines
        prices: dict[str, float] = {}
        for order in self.orders:
            for line in order.lines:
                if line.price:
                    prices[line.product_id] = line.price
        self.catalog = [{"product_id": pid, "price": price} for pid, price in prices.items()]
        self.users = len({o.user_id for o in self.orders})
        self.lines = sum(len(o.lines) for o in self.orders)
        self._events = self._cycle()
        self._now: Optional[float] = None
        self.seq = 0
        self.spec: tuple = ("orders",)      # how a child process builds the same workload

    def next_event(self, now: Optional[float] = None) -> tuple[str, str, dict]:
        """(topic, key, event) of the next event, at ``now`` (the wall clock's time without it)."""
        self._now = now
        return next(self._events)

    def _cycle(self) -> Iterator[tuple[str, str, dict]]:
        while True:
            for order in self.orders:
                yield from self._order(order)

    def _order(self, order: Order) -> Iterator[tuple[str, str, dict]]:
        user = order.user_id
        lines = order.lines[: self.max_lines] if self.max_lines else order.lines

        def base(kind: str) -> dict:
            self.seq += 1
            return {"event_id": f"r{self.seq}", "type": kind, "user_id": user,
                    "ts": self._now if self._now is not None else time.time()}
        first = lines[0]
        yield "clickstream", user, {**base("view"), "product_id": first.product_id, "price": first.price}
        for line in lines:
            yield "cart", user, {**base("add"), "product_id": line.product_id, "price": line.price,
                                 "quantity": line.quantity}
        yield "cart", user, base("checkout")
        yield "cart", user, {**base("purchase"), "order_id": f"{order.order_id}-{self.seq}"}


def load(path: Path, limit: Optional[int] = None) -> ReplayWorkload:
    """The export at ``path`` (Online Retail's columns; a store's own via ``load_orders``)."""
    from nextoffer.streams.tools.evaluation_report import load_orders
    workload = ReplayWorkload(load_orders(path, limit))
    workload.spec = ("replay", str(path), limit)
    return workload
