"""``nextoffer explain``: why a shopper gets the offer they get, candidate by candidate.

Rebuilds what a worker knows, read-only, from Kafka: the catalog and every order (the shared
learners) and the shopper's state from the shopper table's changelog. Then runs the policy on
the shopper's next event at a placement and reports every candidate it looked at, its scores,
and the rule that removed it or its rank. The acceptance model is learned inside each worker
and is not rebuilt here: candidates are ranked by relevance and margin, as on a fresh worker.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Optional

import orjson
from kafka import TopicPartition
from kafka.partitioner.default import murmur2

from nextoffer.models.engine import OfferEngine
from nextoffer.models.events import CART, CLICKSTREAM, ShopperEvent
from nextoffer.models.policy import Explanation, Situation, in_control_group
from nextoffer.models.profile import view
from nextoffer.models.shopper import ShopperState
from nextoffer.models.showcases import KINDS, excluded, personalise
from nextoffer.streams.io.codecs import decode_state, encode_state
from nextoffer.streams.io.readers import read_to_end
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.shared_learning import LEARNED_FROM, SharedLearning

PLACEMENT_EVENTS = {"product_page": (CLICKSTREAM, "view"), "cart": (CART, "add"),
                    "checkout": (CART, "checkout"), "post_purchase": (CART, "purchase")}


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partition of a key (murmur2, as producers must use).

    >>> partition_of("shopper-1", 8) == partition_of("shopper-1", 8) < 8
    True
    """
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def load_engine(settings: Settings) -> OfferEngine:
    """An engine with the shared learners as every worker has them now."""
    engine = OfferEngine(settings.rules, settings.learners, showcases=settings.showcases)
    shared = SharedLearning(settings, engine, partitioned=False)    # counts every pair itself
    parts = [TopicPartition(settings.topic(t), p) for t in LEARNED_FROM for p in range(settings.partitions)]
    read_to_end(settings, parts, lambda tp, r: shared.dispatch(tp.topic, r.key, r.value, tp.partition, r.offset))
    return engine


def load_shopper(settings: Settings, user_id: str) -> Optional[ShopperState]:
    """The shopper's latest state from the table's changelog (None if never seen)."""
    changelog = f"{settings.topic(settings.app_id)}-shoppers-changelog"
    tp = TopicPartition(changelog, partition_of(user_id, settings.partitions))
    key, found = orjson.dumps(user_id), []      # the table's keys are JSON strings

    def keep(_tp, record) -> None:
        if record.key == key:
            found[:] = [record.value]
    read_to_end(settings, [tp], keep)
    return decode_state(found[0]) if found and found[0] else None


def next_event(shopper: ShopperState, placement: Optional[str], product: Optional[str]) -> ShopperEvent:
    """The event whose offer is explained: the shopper's next step at ``placement``.

    >>> s = ShopperState("u1", cart={"tea": [1, 5.0]}, views=["pot"], last_ts=100.0)
    >>> e = next_event(s, None, None)
    >>> (e.source, e.type, e.placement.value, e.ts)
    ('cart', 'checkout', 'checkout', 100.0)
    >>> next_event(s, "product_page", None).product_id
    'pot'
    """
    if placement is None:
        placement = "checkout" if shopper.cart else "product_page"
    if placement not in PLACEMENT_EVENTS:
        raise ValueError(f"unknown placement {placement!r}; one of {', '.join(PLACEMENT_EVENTS)}")
    source, kind = PLACEMENT_EVENTS[placement]
    if kind in ("view", "add") and product is None:
        recent = shopper.views if kind == "view" else list(shopper.cart)
        product = recent[-1] if recent else (shopper.views[-1] if shopper.views else None)
        if product is None:
            raise ValueError(f"the shopper has no recent product for {placement}; name one with --product")
    if kind == "purchase" and product is None and not shopper.cart:
        raise ValueError("the shopper's cart is empty; name the product bought with --product")
    price = (shopper.cart.get(product) or [None, None])[1] if product else None
    return ShopperEvent(source, kind, f"explain-{time.time_ns()}", shopper.user_id,
                        shopper.last_ts or time.time(), product_id=product if kind != "checkout" else None,
                        price=price)


def explain(settings: Settings, user_id: str, placement: Optional[str] = None,
            product: Optional[str] = None, engine: Optional[OfferEngine] = None) -> dict[str, Any]:
    """Everything ``nextoffer explain`` prints, as plain data."""
    state = load_shopper(settings, user_id)
    if state is None:
        raise ValueError(f"no state for user {user_id!r} in {settings.topic(settings.app_id)}: the "
                         "workers have not seen this shopper (check NEXTOFFER_TOPIC_PREFIX)")
    engine = engine or load_engine(settings)
    shopper = decode_state(encode_state(state))          # a copy: nothing is written back
    event = next_event(shopper, placement, product)
    order = shopper.order_lines(event) if event.type == "purchase" else ()
    shopper.apply(event)
    result: Explanation = engine.policy.explain(Situation(event, shopper, order, event.ts, event.ts))
    d = result.decision
    return {
        "user_id": user_id, "placement": event.placement.value, "event": {"type": event.type,
                                                                          "product_id": event.product_id},
        "control_group": in_control_group(user_id, settings.rules.control_share),
        "shopper": {"cart": {p: q for p, (q, _) in state.cart.items()}, "recent_views": state.views[-5:],
                    "orders": state.orders, "declined": sorted(state.declined), "last_ts": state.last_ts},
        "profile": profile_report(shopper, event.ts, settings),
        "learned": {"products": len(engine.catalog), "orders": round(engine.bought.orders(), 1)},
        "anchor": result.anchor, "context": result.context,
        "decision": {"reason": d.reason, "kind": d.offer.kind.value if d.offer else None,
                     "items": d.offer.product_ids if d.offer else []},
        "candidates": [asdict(row) for row in result.rows],
        "price_bounds": {name: {**asdict(bound), "describe": bound.describe()} for name, bound in
                         engine.policy.price_bounds(result.anchor).items()},
        "showcases": showcase_report(engine, shopper, event.product_id or result.anchor, event.ts, settings),
    }


def showcase_report(engine: OfferEngine, shopper: ShopperState, product: Optional[str], now: float,
                    settings: Settings) -> dict[str, Any]:
    """The showcase windows of the product's page, as the shopper would see them: each kind's
    product ids, personalised, and what the shopper's showcases leave out."""
    seen = view(shopper, now, settings.rules.profile_settings())
    gone = excluded(shopper, now, settings.showcases)
    windows = {kind: [i.product_id for i in personalise(engine.showcases.window(kind, product, now), seen, gone,
                                                        settings.showcases.showcase_affinity_weight)]
               for kind in KINDS}
    return {"product": product, "windows": windows, "left_out": sorted(gone)}


def profile_report(shopper, now: float, settings: Settings) -> dict[str, Any]:
    """The shopper's profile as the policy reads it now: segment, stage, intent, price, interests."""
    p = view(shopper, now, settings.rules.profile_settings())
    top = sorted(p.affinities.items(), key=lambda kv: kv[1], reverse=True)[:6]
    return {"segment": p.segment, "stage": p.stage, "intent": p.intent,
            "price_level": None if p.price_level is None else round(p.price_level, 3),
            "price_sensitivity": round(p.price_sensitivity, 3),
            "interests": {key: round(weight, 2) for key, weight in top}}


def render(report: dict[str, Any], console) -> None:
    from rich.table import Table
    s = report["shopper"]
    console.print(f"[bold]{report['user_id']}[/]: cart {s['cart'] or '{}'}, recent views {s['recent_views']}, "
                  f"{s['orders']} orders, declined {s['declined'] or 'nothing'}")
    p = report["profile"]
    level = "unknown" if p["price_level"] is None else f"{p['price_level']:+.2f}"
    console.print(f"profile: {p['segment']}, {p['stage']}, {p['intent']}; price level {level} "
                  f"(0 = middle of its categories), sensitivity {p['price_sensitivity']:.2f}; "
                  f"interests {', '.join(p['interests']) or 'none yet'}")
    console.print(f"learned from {report['learned']['orders']:,} orders, {report['learned']['products']:,} products")
    bounds = report["price_bounds"]
    console.print("price bounds: " + "; ".join(f"{name} {b['describe']}" for name, b in bounds.items()))
    e = report["event"]
    console.print(f"next event: {e['type']} {e['product_id'] or ''} at [bold]{report['placement']}[/], "
                  f"anchor {report['anchor']}" + (f", context {report['context']}" if report["context"] else ""))
    d = report["decision"]
    if d["kind"]:
        console.print(f"decision: [green]{d['kind']}[/] {', '.join(d['items'])}")
    else:
        console.print(f"decision: [yellow]no offer[/] ({d['reason']})")
    table = Table(show_edge=False)
    for col in ("kind", "product", "source", "score", "price", "value", "verdict", "reason"):
        table.add_column(col, justify="right" if col in ("score", "price", "value") else "left",
                         no_wrap=col != "reason", overflow="ellipsis" if col == "reason" else "fold")
    for c in report["candidates"]:
        colour = "green" if c["verdict"] == "offered" else "" if c["verdict"] == "ranked_lower" else "dim"
        table.add_row(c["kind"], c["product_id"], c["source"], f"{c['score']:.3f}",
                      "" if c["price"] is None else f"{c['price']:.2f}",
                      "" if c["value"] is None else f"{c['value']:.3f}",
                      f"[{colour}]{c['verdict']}[/]" if colour else c["verdict"], c["reason"])
    console.print(table if report["candidates"] else "no candidates at all: nothing learned for this anchor yet")
    shows = report["showcases"]
    console.print(f"showcases for {shows['product'] or 'the store'} (personalised; left out: "
                  f"{', '.join(shows['left_out']) or 'nothing'}):")
    for kind, ids in shows["windows"].items():
        console.print(f"  {kind}: {', '.join(ids) or '-'}")
