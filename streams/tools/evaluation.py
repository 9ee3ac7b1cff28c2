"""Offline evaluation: replay orders in time order, offer at each scored order's first line.

The protocol of the shared data sets: the first ``warm_up`` share of orders only
teaches; in the rest, each order with two or more distinct products is scored: its
first line is the anchor, the method offers up to ``k`` products, and it is a hit
when any other product of that order is among them. Every method sees the same
events in the same order and learns from each order after it is scored.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Optional, Protocol, Sequence

from nextoffer.models.engine import OfferEngine
from nextoffer.models.events import CART, LineItem, ShopperEvent
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    user_id: str
    ts: float
    lines: tuple[LineItem, ...]   # distinct products, in the order they were entered

    @property
    def products(self) -> list[str]:
        return [line.product_id for line in self.lines]


class Method(Protocol):
    name: str

    def recommend(self, order: Order, k: int) -> list[str]:
        """Up to ``k`` products to offer when ``order``'s first line is added."""

    def learn(self, order: Order) -> None:
        """See a whole order (after it was scored, if it was)."""


@dataclass
class Score:
    """One method's hits. As the next-basket literature does, the hits are also split by what
    was to be found: products the shopper had bought before (repeat) and products new to them;
    ``repeat``/``new`` count [orders with such products, orders where one of them was offered]."""

    name: str
    hits: int = 0
    scored: int = 0
    offered: int = 0                     # scored orders that got any offer
    curve: list[float] = field(default_factory=list)   # cumulative hit rate after each scored order
    repeat: list[int] = field(default_factory=lambda: [0, 0])
    new: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def hit_rate(self) -> float:
        return self.hits / self.scored if self.scored else 0.0

    @property
    def coverage(self) -> float:
        return self.offered / self.scored if self.scored else 0.0

    @property
    def repeat_hit_rate(self) -> Optional[float]:
        """Of the scored orders holding a product the shopper bought before, the share where one was offered."""
        return self.repeat[1] / self.repeat[0] if self.repeat[0] else None

    @property
    def new_hit_rate(self) -> Optional[float]:
        """Of the scored orders holding a product new to the shopper, the share where one was offered."""
        return self.new[1] / self.new[0] if self.new[0] else None

    def count(self, offered: Sequence[str], wanted: Sequence[str], bought_before: set) -> None:
        """Score one order: ``offered`` against the ``wanted`` products (the order's other lines)."""
        shown = set(offered)
        self.scored += 1
        self.offered += bool(shown)
        self.hits += bool(shown & set(wanted))
        self.curve.append(self.hits / self.scored)
        for split, targets in ((self.repeat, {p for p in wanted if p in bought_before}),
                               (self.new, {p for p in wanted if p not in bought_before})):
            if targets:
                split[0] += 1
                split[1] += bool(shown & targets)


def evaluate(orders: Sequence[Order], methods: Sequence[Method], warm_up: float = 0.8,
             k: int = 3, clock=time.perf_counter) -> tuple[list[Score], dict]:
    """Score every method on the same replay; also return the replay's counts and timings."""
    first_scored = int(len(orders) * warm_up)
    scores = [Score(m.name) for m in methods]
    seconds = Counter()
    history: dict[str, set] = defaultdict(set)     # what each shopper bought before
    for n, order in enumerate(orders):
        score_it = n >= first_scored and len(order.lines) >= 2
        for method, score in zip(methods, scores):
            start = clock()
            if score_it:
                score.count(method.recommend(order, k)[:k], order.products[1:], history[order.user_id])
            method.learn(order)
            seconds[method.name] += clock() - start
        history[order.user_id].update(order.products)
    info = {"orders": len(orders), "warm_up_orders": first_scored,
            "scored_orders": scores[0].scored if scores else 0, "seconds": dict(seconds)}
    return scores, info


class MostPopular:
    """The most bought products so far."""

    name = "most popular"

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def recommend(self, order: Order, k: int) -> list[str]:
        anchor = order.products[0]
        return [pid for pid, _ in self.counts.most_common(k + 1) if pid != anchor][:k]

    def learn(self, order: Order) -> None:
        self.counts.update(order.products)


class BoughtTogetherCounts:
    """Plain "frequently bought together" co-counts with the anchor, topped up by popularity.

    ``streaming`` False freezes the counts after ``frozen_after`` orders (the batch baseline).
    """

    def __init__(self, streaming: bool, frozen_after: Optional[int] = None) -> None:
        self.name = "bought together, streaming" if streaming else "bought together, batch"
        self.frozen_after = None if streaming else frozen_after
        self.pairs: dict[str, Counter] = defaultdict(Counter)
        self.popular = MostPopular()
        self.seen = 0

    def recommend(self, order: Order, k: int) -> list[str]:
        anchor = order.products[0]
        picks = [pid for pid, _ in self.pairs.get(anchor, Counter()).most_common(k)]
        for pid in self.popular.recommend(order, k + len(picks)):
            if len(picks) >= k:
                break
            if pid not in picks:
                picks.append(pid)
        return picks

    def learn(self, order: Order) -> None:
        if self.frozen_after is not None and self.seen >= self.frozen_after:
            return
        self.seen += 1
        self.popular.learn(order)
        products = order.products
        for a in products:
            # every product of the order counted in C (Counter.update), then the anchor taken out
            # again (a row never holds its own anchor): the same counts, in the same order, as a
            # loop over the pairs
            row = self.pairs[a]
            row.update(products)
            del row[a]


class EngineMethod:
    """nextoffer's engine, driven with the events a storefront would send.

    Scored orders: an ``add`` of the first line (the cart offer is what is scored),
    then the purchase of the whole order; other orders: the purchase only.
    """

    def __init__(self, name: str, rules: OfferRules, engine_factory=OfferEngine) -> None:
        self.name = name
        self.engine = engine_factory(rules)
        self.shoppers: dict[str, ShopperState] = {}
        self.events = 0

    def _shopper(self, user: str) -> ShopperState:
        shopper = self.shoppers.get(user)
        if shopper is None:
            shopper = self.shoppers[user] = ShopperState(user)
        return shopper

    def recommend(self, order: Order, k: int) -> list[str]:
        first = order.lines[0]
        event = ShopperEvent(CART, "add", f"{order.order_id}-a", order.user_id, order.ts,
                             product_id=first.product_id, price=first.price, quantity=first.quantity)
        self.events += 1
        out = self.engine.process(self._shopper(order.user_id), event, generated_at=order.ts)
        return out.offer.product_ids if out.offer is not None else []

    def learn(self, order: Order) -> None:
        event = ShopperEvent(CART, "purchase", f"{order.order_id}-p", order.user_id, order.ts,
                             items=order.lines)
        self.events += 1
        out = self.engine.process(self._shopper(order.user_id), event, generated_at=order.ts)
        if out.basket is not None:
            self.engine.learn_basket(out.basket)


def orders_from(invoices: Iterable) -> list[Order]:
    """Orders from objects with invoice, user_id, ts and lines of (product, qty, price, ...)."""
    out = []
    for inv in invoices:
        merged: dict[str, LineItem] = {}
        for pid, qty, price, *_ in inv.lines:
            prev = merged.get(pid)
            merged[pid] = LineItem(pid, qty + (prev.quantity if prev else 0), price)
        out.append(Order(inv.invoice, inv.user_id, inv.ts, tuple(merged.values())))
    return out


@dataclass
class EventShares:
    """What a replay of shopping events got: per placement, the events and the offers by kind."""

    events: Counter = field(default_factory=Counter)        # placement -> events
    offers: Counter = field(default_factory=Counter)        # (placement, kind) -> offers

    def share(self, placement: str, kind: Optional[str] = None) -> float:
        """Share of the placement's events that got an offer (of ``kind``, if given)."""
        n = self.events[placement]
        got = sum(v for (p, k), v in self.offers.items() if p == placement and kind in (None, k))
        return got / n if n else 0.0

    def report(self) -> dict:
        return {placement: {"events": n, "offered": round(self.share(placement), 4),
                            "upsell": round(self.share(placement, "upsell"), 4),
                            "cross_sell": round(self.share(placement, "cross_sell"), 4)}
                for placement, n in sorted(self.events.items())}


def replay_events(events: Iterable[ShopperEvent], engine: OfferEngine) -> EventShares:
    """Every event through ``engine`` as a worker applies it (each purchase learned as it comes),
    counting the offers by placement and kind.

    >>> from nextoffer.models.events import Product
    >>> engine = OfferEngine(OfferRules())
    >>> engine.update_product(Product("s-128", 700.0, family="s", tier=1))
    >>> engine.update_product(Product("s-256", 800.0, family="s", tier=2))
    >>> shares = replay_events([ShopperEvent("clickstream", "view", "e1", "u1", 1.0, product_id="s-128")], engine)
    >>> shares.report()["product_page"]
    {'events': 1, 'offered': 1.0, 'upsell': 1.0, 'cross_sell': 0.0}
    """
    shares, shoppers = EventShares(), {}
    for event in events:
        shopper = shoppers.get(event.user_id)
        if shopper is None:
            shopper = shoppers[event.user_id] = ShopperState(event.user_id)
        out = engine.process(shopper, event, generated_at=event.ts)
        if out.basket is not None:
            engine.learn_basket(out.basket)
        if event.placement is not None and out.applied:
            shares.events[event.placement.value] += 1
            if out.offer is not None:
                shares.offers[(event.placement.value, out.offer.kind.value)] += 1
    return shares
