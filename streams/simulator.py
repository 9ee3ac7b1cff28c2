"""A storefront simulator: a realistic catalog and shoppers who browse, add, remove and buy.

Shoppers have a hidden price level and favourite departments; products come in
families of tiers (the upsell ladder) and have complements (the cross-sells they
should learn). Deterministic for a seed; time advances from ``start_ts``.

>>> sim = StorefrontSimulator(seed=1, shoppers=50, start_ts=0.0)
>>> from itertools import islice
>>> records = list(islice(sim.records(), 200))
>>> records[0].topic, records[-1].topic in ("clickstream", "cart")
('catalog', True)
"""
from __future__ import annotations

import random
from typing import Iterator

from streams.datasets import Record

# family, category, brand, name, tiers (label, price), margin
FAMILIES = [
    ("nova-phone", "electronics.smartphone", "Nova", "Nova phone", [("128GB", 599), ("256GB", 689), ("512GB", 829)], 0.18),
    ("zen-phone", "electronics.smartphone", "Zen", "Zen phone", [("64GB", 299), ("128GB", 359)], 0.22),
    ("aero-laptop", "electronics.laptop", "Aero", "Aero laptop", [("8GB", 899), ("16GB", 1099), ("32GB", 1399)], 0.12),
    ("sonic-phones", "electronics.audio.headphones", "Sonic", "Sonic headphones", [("Lite", 79), ("Pro", 99), ("Max", 129)], 0.30),
    ("barista", "home.coffee.machine", "Barista", "Barista coffee machine", [("Basic", 149), ("Plus", 189), ("Pro", 249)], 0.25),
    ("stride-shoes", "apparel.shoes.running", "Stride", "Stride running shoes", [("Road", 89), ("Trail", 115)], 0.40),
    ("cosy-sofa", "furniture.sofa", "Cosy", "Cosy sofa", [("2-seat", 499), ("3-seat", 649), ("Corner", 899)], 0.35),
]
# category, brand, name, price, margin
ACCESSORIES = [
    ("electronics.accessories.case", "Nova", "Nova phone case", 29, 0.6),
    ("electronics.accessories.case", "Armor", "Armor rugged case", 19, 0.55),
    ("electronics.accessories.screen", "Clear", "Screen protector", 12, 0.7),
    ("electronics.accessories.charger", "Volt", "Fast charger 30W", 25, 0.5),
    ("electronics.accessories.sleeve", "Aero", "Laptop sleeve", 35, 0.5),
    ("electronics.accessories.mouse", "Click", "Wireless mouse", 29, 0.45),
    ("electronics.accessories.hub", "Volt", "USB-C hub", 39, 0.45),
    ("electronics.audio.case", "Sonic", "Headphone travel case", 15, 0.6),
    ("home.coffee.beans", "Roast", "Espresso beans 1kg", 18, 0.35),
    ("home.coffee.filters", "Roast", "Water filters (3)", 9, 0.6),
    ("home.coffee.descaler", "Barista", "Descaler", 8, 0.65),
    ("apparel.socks", "Stride", "Running socks (3)", 15, 0.6),
    ("apparel.insoles", "Stride", "Cushion insoles", 19, 0.55),
    ("furniture.cushion", "Cosy", "Throw cushions (2)", 39, 0.5),
    ("furniture.throw", "Cosy", "Wool throw", 59, 0.45),
]
COMPLEMENTS = {
    "electronics.smartphone": ["electronics.accessories.case", "electronics.accessories.screen",
                               "electronics.accessories.charger"],
    "electronics.laptop": ["electronics.accessories.sleeve", "electronics.accessories.mouse",
                           "electronics.accessories.hub"],
    "electronics.audio.headphones": ["electronics.audio.case"],
    "home.coffee.machine": ["home.coffee.beans", "home.coffee.filters", "home.coffee.descaler"],
    "apparel.shoes.running": ["apparel.socks", "apparel.insoles"],
    "furniture.sofa": ["furniture.cushion", "furniture.throw"],
}


class StorefrontSimulator:
    """Generates catalog records, then shopping sessions, as contract events."""

    def __init__(self, seed: int = 7, shoppers: int = 2000, start_ts: float = 1_700_000_000.0,
                 malformed_share: float = 0.0, run_id: str = "") -> None:
        self.rng = random.Random(seed)
        self.ts = start_ts
        self.run_id = run_id
        self.malformed_share = malformed_share
        self.products = self._catalog()
        self.by_category: dict[str, list[dict]] = {}
        for p in self.products:
            self.by_category.setdefault(p["category"], []).append(p)
        departments = list(COMPLEMENTS)
        self.shoppers = [(f"shopper-{n}", self.rng.lognormvariate(0, 0.35),
                          self.rng.sample(departments, 2)) for n in range(shoppers)]
        self._n = 0

    def _catalog(self) -> list[dict]:
        out = []
        for family, category, brand, name, tiers, margin in FAMILIES:
            for tier, (label, price) in enumerate(tiers, start=1):
                out.append({"product_id": f"{family}-{label.lower()}", "name": f"{name} {label}",
                            "category": category, "brand": brand, "price": float(price),
                            "margin": margin, "stock": self.rng.randint(5, 200),
                            "family": family, "tier": tier})
        for n, (category, brand, name, price, margin) in enumerate(ACCESSORIES):
            out.append({"product_id": f"acc-{n}", "name": name, "category": category, "brand": brand,
                        "price": float(price), "margin": margin, "stock": self.rng.randint(0, 500)})
        return out

    def records(self) -> Iterator[Record]:
        for p in self.products:
            yield Record("catalog", p["product_id"], p, paced=False)
        while True:
            yield from self._session()

    def _event(self, topic: str, user: str, kind: str, **fields) -> Record:
        self._n += 1
        self.ts += self.rng.expovariate(5.0)
        if self.malformed_share and self.rng.random() < self.malformed_share:
            return Record(topic, user, {"event_id": f"{self.run_id}bad{self._n}", "type": kind,
                                        "user_id": user, "ts": "yesterday-ish"})
        return Record(topic, user, {"event_id": f"{self.run_id}s{self._n}", "type": kind,
                                    "user_id": user, "ts": round(self.ts, 3), **fields})

    def _session(self) -> Iterator[Record]:
        rng = self.rng
        user, level, departments = rng.choice(self.shoppers)
        session = f"{user}-{self._n}"
        category = rng.choice(departments)
        # Shoppers look at the tier nearest their price level, sometimes one up.
        family = sorted(self.by_category[category], key=lambda p: p["price"])
        pick = min(family, key=lambda p: abs(p["price"] - level * family[0]["price"] * 1.15))
        seen = [pick] + ([family[family.index(pick) + 1]] if pick is not family[-1] and rng.random() < 0.3 else [])
        for p in seen:
            yield self._event("clickstream", user, "view", session_id=session, product_id=p["product_id"],
                              price=p["price"], category=p["category"], brand=p["brand"])
        if rng.random() < 0.35:
            return
        main = seen[-1] if level > 1.1 else seen[0]
        cart = [main]
        yield self._event("cart", user, "add", session_id=session, product_id=main["product_id"], price=main["price"])
        for comp_category in COMPLEMENTS[category]:
            if rng.random() < 0.45:
                comp = rng.choice(self.by_category[comp_category])
                cart.append(comp)
                yield self._event("cart", user, "add", session_id=session, product_id=comp["product_id"],
                                  price=comp["price"])
        if len(cart) > 1 and rng.random() < 0.1:
            gone = cart.pop()
            yield self._event("cart", user, "remove", session_id=session, product_id=gone["product_id"])
        if rng.random() < 0.2:
            return  # abandoned cart
        yield self._event("cart", user, "checkout", session_id=session)
        items = [{"product_id": p["product_id"], "quantity": 1, "price": p["price"]} for p in cart]
        yield self._event("cart", user, "purchase", session_id=session, order_id=session, items=items)
