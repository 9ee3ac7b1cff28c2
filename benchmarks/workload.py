"""The benchmark's workload: a 10k-product catalog and a realistic event mix over many shoppers.

Views, adds, removes, checkouts, purchases and offer feedback, each shopper's events in a
plausible order (a purchase buys what the shopper's cart holds). Deterministic for a seed.

>>> w = Workload(users=100, products=300, seed=1)
>>> records = [w.next_event() for _ in range(1000)]
>>> sorted({topic for topic, _, _ in records})
['cart', 'clickstream', 'offer-feedback']
"""
from __future__ import annotations

import random
import time
from typing import Iterator

#: Share of each event type in the mix (views dominate, as on a real storefront).
MIX = {"view": 0.45, "add": 0.22, "remove": 0.03, "checkout": 0.05, "purchase": 0.05,
       "impression": 0.12, "click": 0.03, "decline": 0.05}


class Workload:
    """A catalog of ``products`` (tiered families and accessories) and ``users`` shoppers."""

    def __init__(self, users: int = 100_000, products: int = 10_000, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.users = users
        self.catalog = self._catalog(products)
        self.mains = [p for p in self.catalog if p.get("family")]
        self.accessories = [p for p in self.catalog if not p.get("family")]
        self.carts: dict[int, list[dict]] = {}
        self.seq = 0
        self.types = list(MIX)
        self.weights = list(MIX.values())
        self.spec = ("synthetic", users, products)   # how a child process builds the same workload

    def _catalog(self, products: int) -> list[dict]:
        out = []
        families = int(products * 0.6) // 3
        for f in range(families):
            category = f"dept{f % 50}.line{f % 7}"
            base = round(self.rng.uniform(20, 900), 2)
            for tier in (1, 2, 3):
                out.append({"product_id": f"f{f}-t{tier}", "name": f"Product {f} tier {tier}",
                            "category": category, "brand": f"brand{f % 300}",
                            "price": round(base * (1 + 0.3 * (tier - 1)), 2), "margin": 0.25,
                            "stock": 100, "family": f"f{f}", "tier": tier})
        for a in range(products - len(out)):
            out.append({"product_id": f"a{a}", "name": f"Accessory {a}", "category": f"dept{a % 50}.acc",
                        "brand": f"brand{a % 300}", "price": round(self.rng.uniform(3, 60), 2),
                        "margin": 0.5, "stock": 500})
        return out

    def next_event(self, now: float | None = None) -> tuple[str, str, dict]:
        """(topic, key, event) of the next event of a random shopper."""
        rng = self.rng
        u = rng.randrange(self.users)
        user = f"user-{u}"
        kind = rng.choices(self.types, self.weights)[0]
        self.seq += 1
        base = {"event_id": f"e{self.seq}", "user_id": user, "ts": now if now is not None else time.time()}
        cart = self.carts.get(u)
        if kind in ("view", "add") or (kind in ("remove", "checkout", "purchase") and not cart):
            product = rng.choice(self.mains) if rng.random() < 0.7 else rng.choice(self.accessories)
            if kind == "add":
                self.carts.setdefault(u, []).append(product)
                return "cart", user, {**base, "type": "add", "product_id": product["product_id"],
                                      "price": product["price"]}
            return "clickstream", user, {**base, "type": "view", "product_id": product["product_id"],
                                         "price": product["price"], "category": product["category"]}
        if kind == "remove":
            product = cart.pop(rng.randrange(len(cart)))
            return "cart", user, {**base, "type": "remove", "product_id": product["product_id"]}
        if kind == "checkout":
            return "cart", user, {**base, "type": "checkout"}
        if kind == "purchase":
            items = [{"product_id": p["product_id"], "quantity": 1, "price": p["price"]} for p in cart]
            del self.carts[u]
            return "cart", user, {**base, "type": "purchase", "order_id": f"o{self.seq}", "items": items}
        product = rng.choice(self.accessories)
        return "offer-feedback", user, {**base, "type": kind, "offer_id": f"offer-{u}",
                                        "product_id": product["product_id"]}

    def events(self, count: int) -> Iterator[tuple[str, str, dict]]:
        for _ in range(count):
            yield self.next_event()


def make_workload(spec: tuple, seed: int):
    """The workload ``spec`` names: ("synthetic", users, products), ("replay", path, limit) or
    ("large_carts", products, orders, seed)."""
    if spec[0] == "large_carts":
        from nextoffer.benchmarks.large_carts import workload
        return workload(spec[1], spec[2], spec[3])
    if spec[0] == "replay":
        from pathlib import Path
        from nextoffer.benchmarks.replay import load
        return load(Path(spec[1]), spec[2])
    return Workload(users=spec[1], products=spec[2], seed=seed)
