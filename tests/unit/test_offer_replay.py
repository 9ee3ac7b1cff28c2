"""Offers on a fixed replay stay the same when the model does: a guard for speed work.

The engine replays fixed orders of the large-cart mix (shoppers coming back, so repeat buys
and cross-sells mix), every add and purchase as a storefront sends them, and the offers made
are digested. A change that only makes the engine faster must leave the digest
as it is; a change of the model changes it, and the new digest is written here with the reason.
"""
from __future__ import annotations

import hashlib

from nextoffer.benchmarks.large_carts import large_cart_orders
from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import CART, ShopperEvent
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState

#: The digest of the offers below, and how many offers it covers. Changed by: the learned
#: cross-sell order (models/reranker.py), a model change (was eb74e7a383373422 / 4e216ec0b52a86e5);
#: its recent-sales and price features and its depth of 40 candidates, another (was
#: 48c8c327b9481197 / 8fd844f30592a16d).
EXPECTED = {"default": ("bb338c97b71ffee0", 2083), "relevance_only": ("e6c3a4059c39eb1c", 2085)}


def replay_digest(rules: OfferRules) -> tuple[str, int]:
    """Offers of a seeded replay: 250 orders of 20 to 60 lines over 3,000 products (the first 200
    only learned, the next 50 added line by line, checked out and bought)."""
    engine = OfferEngine(rules)
    orders = large_cart_orders(products=3_000, orders=250, seed=11, shoppers=60)
    shoppers: dict[str, ShopperState] = {}
    digest, offers = hashlib.sha256(), 0
    for n, order in enumerate(orders):
        shopper = shoppers.setdefault(order.user_id, ShopperState(order.user_id))
        events = [] if n < 200 else [
            ShopperEvent(CART, "add", f"{order.order_id}-{k}", order.user_id, order.ts + k,
                         product_id=line.product_id, price=line.price, quantity=line.quantity)
            for k, line in enumerate(order.lines)]
        events.append(ShopperEvent(CART, "purchase", f"{order.order_id}-p", order.user_id, order.ts + 100,
                                   items=order.lines))
        for event in events:
            out = engine.process(shopper, event, generated_at=event.ts)
            if out.offer is not None:
                offers += 1
                digest.update(repr((out.offer.kind.value, out.offer.placement.value,
                                    [(i.product_id, round(i.score, 9)) for i in out.offer.items])).encode())
            if out.basket is not None:
                engine.learn_basket(out.basket)
    return digest.hexdigest()[:16], offers


def test_offers_on_a_fixed_replay_are_unchanged_with_the_default_rules():
    assert replay_digest(OfferRules()) == EXPECTED["default"]


def test_offers_on_a_fixed_replay_are_unchanged_with_relevance_only_rules():
    assert replay_digest(OfferRules(price_rules=False)) == EXPECTED["relevance_only"]
