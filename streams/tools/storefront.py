"""The simulated storefront: a seeded catalog and shoppers with hidden tastes.

One simulator serves two tools. :func:`storefront_records` turns its shoppers' visits into
contract messages for ``nextoffer simulate`` and the demo; :func:`run_loop` is the feedback
loop, where the same visits meet an engine and shoppers react to the offers they are shown.

The store: departments with product families in tiers (the upsell ladders) and
accessory categories (the cross-sells), several brands and price points. Each shopper has
hidden tastes: favourite departments and brands, the accessory categories they care for,
and a price level. They browse, add and buy on their own; every offer the engine makes is
shown to them, and they accept an item with a probability that only their hidden tastes
decide (:meth:`HiddenTaste.accept_probability`), or decline, dismiss or ignore it. Their
reactions go back to the engine as ``offer-feedback`` events, exactly as a storefront
sends them, so the acceptance model learns from the loop.

:func:`run_loop` drives one engine until a number of impressions and counts what
happened: acceptance over time, orders and order value for treated shoppers and the
control group, and every offer that showed an item the shopper had declined within the
cool-down (there must be none).

>>> result = run_loop(OfferRules(), impressions=300, seed=3)
>>> result.impressions >= 300, result.cooldown_violations
(True, 0)
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Generator, Iterator, Optional

import orjson

from nextoffer.models.engine import LearnerSettings, OfferEngine
from nextoffer.models.events import CART, CLICKSTREAM, FEEDBACK, LineItem, Product, ShopperEvent
from nextoffer.models.offer import Kind, Offer
from nextoffer.models.policy import OfferPolicy, in_control_group
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState
from nextoffer.streams.io.codecs import encode_decision
from nextoffer.streams.io.records import Record

DEPARTMENTS = ("phones", "laptops", "audio", "coffee", "running", "living")
BRANDS_PER_DEPARTMENT = 5
MAIN_CATEGORIES = 2              # per department, each with one family per brand
TIERS = (1.0, 1.3, 1.7)          # tier price multipliers of a family
ACCESSORY_CATEGORIES = 6         # per department
ACCESSORY_PRICES = (0.04, 0.08, 0.15)   # shares of the department's main price
POSITION_BIAS = (1.0, 0.8, 0.65)  # shoppers look at the first item of an offer most


@dataclass(frozen=True, slots=True)
class HiddenTaste:
    """What one simulated shopper likes; the engine never sees it."""

    user_id: str
    departments: tuple[str, ...]
    brands: frozenset
    accessories: frozenset        # accessory categories they care for
    level: float                  # log price level: 0 = the middle of a category
    thrift: float                 # 0..1: how much a price above their level puts them off

    def accept_probability(self, product: Product, position: float, kind: Kind) -> float:
        """P(accept) of one offered item: brand, category taste and price fit."""
        logit = -2.4
        logit += 1.5 if product.brand in self.brands else -0.3
        if kind is Kind.CROSS_SELL:
            logit += 1.6 if product.category in self.accessories else -0.8
        above = position - self.level
        logit -= (1.0 + 2.5 * self.thrift) * max(0.0, above) + 0.6 * max(0.0, -above)
        return 1.0 / (1.0 + math.exp(-logit))


@dataclass
class LoopResult:
    """What one run of the loop measured."""

    policy: str
    impressions: int = 0
    accepted: int = 0
    declined: int = 0
    window: int = 500
    curve: list = field(default_factory=list)        # acceptance rate of each window of impressions
    by_kind: dict = field(default_factory=dict)      # kind -> [shown, accepted]
    by_placement: dict = field(default_factory=dict)
    by_segment: dict = field(default_factory=dict)   # segment -> [items accepted, items declined]
    orders: dict = field(default_factory=lambda: {"treated": [0, 0.0], "control": [0, 0.0]})
    cooldown_violations: int = 0
    events: int = 0
    _window_start: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.impressions if self.impressions else 0.0

    def late_rate(self, share: float = 0.25) -> float:
        """Acceptance over the last ``share`` of the windows: after the model has learned."""
        tail = self.curve[-max(1, int(len(self.curve) * share)):]
        return sum(tail) / len(tail) if tail else 0.0

    def aov(self, group: str) -> float:
        count, value = self.orders[group]
        return value / count if count else 0.0

    def _count(self, offer: Offer, took: bool) -> None:
        self.impressions += 1
        self.accepted += took
        for table, key in ((self.by_kind, offer.kind.value), (self.by_placement, offer.placement.value)):
            row = table.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += took
        if self.impressions % self.window == 0:
            self.curve.append(round((self.accepted - self._window_start) / self.window, 4))
            self._window_start = self.accepted


class Storefront:
    """The simulated store: its catalog and shoppers, deterministic for a seed."""

    def __init__(self, seed: int = 7, shoppers: int = 500) -> None:
        self.rng = random.Random(seed)
        self.products: dict[str, Product] = {}
        self.mains: dict[str, list[Product]] = {}          # department -> main products
        self.accessories: dict[str, list[Product]] = {}    # department -> accessories
        self.positions: dict[str, float] = {}
        self._build_catalog()
        self.shoppers = [self._shopper(n) for n in range(shoppers)]

    def _build_catalog(self) -> None:
        rng = self.rng
        for d, dept in enumerate(DEPARTMENTS):
            base = round(rng.choice((90, 150, 300, 600, 900)) * rng.uniform(0.8, 1.2))
            brands = [f"{dept}-brand-{b}" for b in range(BRANDS_PER_DEPARTMENT)]
            mains, accessories = [], []
            for c in range(MAIN_CATEGORIES):
                category = f"{dept}.main{c}"
                for b, brand in enumerate(brands):
                    family = f"{dept}-{c}-{b}"
                    start = base * rng.uniform(0.75, 1.3)
                    for t, step in enumerate(TIERS, start=1):
                        mains.append(self._add(Product(
                            f"{family}-t{t}", round(start * step, 2), name=f"{brand} {dept} {c} tier {t}",
                            category=category, brand=brand, margin=round(rng.uniform(0.1, 0.3), 2),
                            stock=rng.randint(5, 100), family=family, tier=float(t))))
            for a in range(ACCESSORY_CATEGORIES):
                category = f"{dept}.accessory{a}"
                for b, brand in enumerate(brands):
                    for share in ACCESSORY_PRICES:
                        if rng.random() < 0.35:
                            continue   # not every brand makes every accessory at every price
                        accessories.append(self._add(Product(
                            f"{dept}-a{a}-b{b}-{int(share * 100)}", round(base * share * rng.uniform(0.8, 1.25), 2),
                            name=f"{brand} {dept} accessory {a}", category=category, brand=brand,
                            margin=round(rng.uniform(0.3, 0.6), 2), stock=rng.randint(0, 300))))
            self.mains[dept], self.accessories[dept] = mains, accessories
        for category in {p.category for p in self.products.values()}:
            prices = sorted(p.price for p in self.products.values() if p.category == category)
            median = prices[len(prices) // 2]
            for p in self.products.values():
                if p.category == category:
                    self.positions[p.product_id] = math.log(p.price / median)

    def _add(self, product: Product) -> Product:
        self.products[product.product_id] = product
        return product

    def _shopper(self, n: int) -> HiddenTaste:
        rng = self.rng
        departments = tuple(rng.sample(DEPARTMENTS, 2))
        brands = frozenset(f"{d}-brand-{b}" for d in departments for b in rng.sample(range(BRANDS_PER_DEPARTMENT), 2))
        accessories = frozenset(f"{d}.accessory{a}" for d in departments
                                for a in rng.sample(range(ACCESSORY_CATEGORIES), 2))
        return HiddenTaste(f"shopper-{n}", departments, brands, accessories,
                           rng.gauss(0.0, 0.3), rng.random())

    def catalog_events(self) -> list[Product]:
        return list(self.products.values())

    # -- what a shopper picks on their own ---------------------------------------
    def pick(self, taste: HiddenTaste, choices: list[Product]) -> Product:
        """A product the shopper would choose themselves: their brands and price level, mostly."""
        weights = [math.exp((1.2 if p.brand in taste.brands else 0.0)
                            + (1.2 if p.category in taste.accessories else 0.0)
                            - 2.0 * abs(self.positions[p.product_id] - taste.level)) for p in choices]
        return self.rng.choices(choices, weights)[0]


class _Loop:
    """One engine driven by one storefront until enough impressions."""

    def __init__(self, store: Storefront, engine: OfferEngine, rules: OfferRules, result: LoopResult,
                 log: Optional[list] = None) -> None:
        self.store, self.engine, self.rules, self.result = store, engine, rules, result
        self.log = log                  # decision records and feedback events, as a worker logs them
        self.shortlists: dict[str, tuple] = {}
        self.rng = random.Random(store.rng.random())
        self.states: dict[str, ShopperState] = {}
        self.declined: dict[str, dict[str, float]] = {}      # the storefront's own record, to audit
        self.ts = 1_700_000_000.0
        self.n = 0

    def send(self, taste: HiddenTaste, source: str, kind: str, **fields) -> Optional[Offer]:
        self.n += 1
        self.ts += self.rng.expovariate(1 / 20.0)
        event = ShopperEvent(source, kind, f"e{self.n}", taste.user_id, self.ts, **fields)
        state = self.states.setdefault(taste.user_id, ShopperState(taste.user_id))
        out = self.engine.process(state, event, generated_at=self.ts)
        self.result.events += 1
        if out.basket is not None:
            self.engine.learn_basket(out.basket)
        if self.log is not None and kind != "impression" and source == FEEDBACK:
            self.log.append({"type": kind, "offer_id": fields.get("offer_id"), "product_id": fields.get("product_id")})
        if self.log is not None and out.offer is not None:
            self.shortlists[out.offer.offer_id] = out.shortlist
        return out.offer

    def _log_decision(self, taste: HiddenTaste, offer: Offer) -> None:
        """The decision record a worker would publish, with each candidate's hidden acceptance
        (``extra.oracle``) for checking off-policy estimates against the truth."""
        shortlist = self.shortlists.pop(offer.offer_id, ())
        record = orjson.loads(encode_decision(offer, shortlist))
        record["extra"] = {"oracle": {c.product_id: taste.accept_probability(
            self.store.products[c.product_id], self.store.positions[c.product_id], offer.kind) for c in shortlist}}
        self.log += [record, {"type": "impression", "offer_id": offer.offer_id}]

    def show(self, taste: HiddenTaste, offer: Optional[Offer]) -> Optional[Product]:
        """The shopper sees the offer and reacts; returns the item accepted, if any."""
        if offer is None:
            return None
        self._audit(taste, offer)
        self.send(taste, FEEDBACK, "impression", offer_id=offer.offer_id)
        if self.log is not None:
            self._log_decision(taste, offer)
        taken = None
        for n, item in enumerate(offer.items):
            product = self.store.products[item.product_id]
            p = taste.accept_probability(product, self.store.positions[item.product_id], offer.kind)
            if self.rng.random() < p * POSITION_BIAS[min(n, len(POSITION_BIAS) - 1)]:
                taken = product
                break
        self.result._count(offer, taken is not None)
        if taken is not None:
            self.send(taste, FEEDBACK, "accept", offer_id=offer.offer_id, product_id=taken.product_id)
            return taken
        roll = self.rng.random()
        if roll < 0.6:
            kind = "decline" if roll < 0.4 else "dismiss"
            self.send(taste, FEEDBACK, kind, offer_id=offer.offer_id)
            self.result.declined += 1
            marks = self.declined.setdefault(taste.user_id, {})
            for pid in offer.product_ids:
                marks[pid] = self.ts
        return None

    def _audit(self, taste: HiddenTaste, offer: Offer) -> None:
        marks = self.declined.get(taste.user_id, {})
        for pid in offer.product_ids:
            if pid in marks and self.ts - marks[pid] < self.rules.decline_cooldown:
                self.result.cooldown_violations += 1

    def session(self) -> None:
        """One shopper's visit (:func:`shopping_session`): every event goes to the engine, every
        offer it makes is shown, and the shopper's reaction goes back as feedback."""
        taste = self.rng.choice(self.store.shoppers)
        visit = shopping_session(self.store, taste, self.rng, f"{taste.user_id}-{self.n}")
        taken, bought = None, False
        try:
            while True:
                step = visit.send(taken)
                offer = self.send(taste, step.source, step.type, **step.event_fields())
                if step.type == "purchase" and step.shown:
                    # the visit's order; an add-on bought after it on its own is not a new order
                    self._count_order(taste, step)
                    bought = True
                taken = self.show(taste, offer) if step.shown else None
        except StopIteration:
            pass
        if bought:
            self.ts += self.rng.expovariate(1 / 3600.0)   # the next visit comes later

    def _count_order(self, taste: HiddenTaste, step: "Step") -> None:
        group = "control" if in_control_group(taste.user_id, self.rules.control_share) else "treated"
        self.result.orders[group][0] += 1
        self.result.orders[group][1] += sum(line["price"] for line in step.fields["items"])


@dataclass(frozen=True)
class Step:
    """One event of a simulated visit, as the contract's fields; ``shown``: the shopper sees the
    offer this event gets (and may take an item of it)."""

    source: str
    type: str
    fields: dict
    shown: bool = True

    def event_fields(self) -> dict:
        """The fields as :class:`~nextoffer.models.events.ShopperEvent` takes them."""
        if "items" not in self.fields:
            return self.fields
        items = tuple(LineItem(i["product_id"], i["quantity"], i["price"]) for i in self.fields["items"])
        return {**self.fields, "items": items}


def _line(p: Product) -> dict:
    return {"product_id": p.product_id, "quantity": 1, "price": p.price}


def shopping_session(store: Storefront, taste: HiddenTaste, rng: random.Random,
                     session: str) -> Generator[Step, Optional[Product], None]:
    """What a shopper does in one visit, left to themselves: views in a department they like,
    maybe an add and accessories, maybe a checkout and a purchase. It yields each event and is
    sent back the product the shopper took from the offer that event got (None: nothing taken,
    or no engine showing offers), so the same visit drives the feedback loop and the contract
    records of :meth:`Storefront.records`.

    >>> store = Storefront(seed=2, shoppers=3)
    >>> rng = random.Random(2)
    >>> steps = list(shopping_session(store, store.shoppers[0], rng, "s1"))
    >>> steps[0].type, all(s.fields["session_id"] == "s1" for s in steps)
    ('view', True)
    """
    dept = rng.choice(taste.departments) if rng.random() < 0.85 else rng.choice(DEPARTMENTS)
    main = store.pick(taste, store.mains[dept])
    family = [p for p in store.mains[dept] if p.category == main.category]
    extras = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        seen = store.pick(taste, family)
        taken = yield Step(CLICKSTREAM, "view", {"session_id": session, "product_id": seen.product_id,
                                                 "price": seen.price})
        main = seen
        if taken is not None and taken.category == seen.category:
            main = taken            # an upgrade taken
        elif taken is not None:
            extras.append(taken)    # a complement taken from the product page
    if rng.random() < 0.3:
        return
    cart = [main]
    extra = yield Step(CART, "add", {"session_id": session, "product_id": main.product_id, "price": main.price})
    for item in extras + ([extra] if extra else []) + [store.pick(taste, store.accessories[dept])
                                                       for _ in range(rng.choice((0, 0, 1, 2)))]:
        if item in cart:
            continue
        cart.append(item)
        yield Step(CART, "add", {"session_id": session, "product_id": item.product_id, "price": item.price})
    if rng.random() < 0.2:
        return   # an abandoned cart
    add_on = yield Step(CART, "checkout", {"session_id": session})
    if add_on is not None and add_on not in cart:
        cart.append(add_on)
        yield Step(CART, "add", {"session_id": session, "product_id": add_on.product_id,
                                 "price": add_on.price}, shown=False)
    after = yield Step(CART, "purchase", {"session_id": session, "order_id": session,
                                          "items": [_line(p) for p in cart]})
    if after is not None:
        yield Step(CART, "purchase", {"session_id": session, "order_id": f"{session}-more",
                                      "items": [_line(after)]}, shown=False)


class _OraclePolicy(OfferPolicy):
    """Ranks eligible items by the shopper's hidden acceptance probability: an upper bound that
    no learner can beat, under the same rules (simulation only)."""

    def __init__(self, store: Storefront, base: OfferPolicy) -> None:
        super().__init__(base.rules, base.catalog, base.bought, base.repeats, base.acceptance, base.rng,
                         base.upgrades, base.categories, base.proportions)
        self.store = store
        self.tastes = {t.user_id: t for t in store.shoppers}
        self.name = "oracle"

    def _value_function(self, kind, placement, anchor, s, accept=None):
        taste, store = self.tastes[s.event.user_id], self.store
        return lambda c: taste.accept_probability(store.products[c.product_id], store.positions[c.product_id], kind)


def run_loop(rules: OfferRules, impressions: int = 20_000, seed: int = 7, shoppers: int = 500,
             window: int = 1000, name: Optional[str] = None,
             learners: LearnerSettings = LearnerSettings(), oracle: bool = False,
             log: Optional[list] = None) -> LoopResult:
    """Run the storefront against an engine with ``rules`` until ``impressions`` offers were shown
    (``oracle``: rank by the hidden tastes instead, for the upper bound). ``log`` collects the
    decision records and feedback events of every offer shown (:mod:`nextoffer.streams.tools.ope`)."""
    store = Storefront(seed, shoppers)
    engine = OfferEngine(rules, learners)
    if oracle:
        engine.policy = _OraclePolicy(store, engine.policy)
    for product in store.catalog_events():
        engine.update_product(product)
    result = LoopResult(name or engine.policy.name, window=window)
    loop = _Loop(store, engine, rules, result, log)
    while result.impressions < impressions:
        loop.session()
    for key, count in engine.tally.items():
        if key.startswith("segment_outcome."):
            _, segment, verdict = key.split(".")
            result.by_segment.setdefault(segment, [0, 0])[verdict == "declined"] += count
    return result


def storefront_records(seed: int = 7, shoppers: int = 2000, start_ts: float = 1_700_000_000.0,
                       malformed_share: float = 0.0, run_id: str = "") -> Iterator[Record]:
    """The simulated store as contract messages, for ``nextoffer simulate`` and the demo: its
    catalog, then visits (:func:`shopping_session`) without end, about five events a second of
    event time from ``start_ts``; ``malformed_share`` of the events have an unusable ``ts``.
    Deterministic for a seed.

    >>> from itertools import islice
    >>> records = list(islice(storefront_records(seed=1, shoppers=50, start_ts=0.0), 1000))
    >>> records[0].topic, records[-1].topic in ("clickstream", "cart")
    ('catalog', True)
    """
    store = Storefront(seed, shoppers)
    rng = random.Random(store.rng.random())
    for p in store.catalog_events():
        fields = {k: v for k, v in dataclasses.asdict(p).items() if v is not None and k != "from_events"}
        yield Record("catalog", p.product_id, fields, paced=False)
    n, ts = 0, start_ts
    while True:
        taste = rng.choice(store.shoppers)
        for step in shopping_session(store, taste, rng, f"{taste.user_id}-{n}"):
            n += 1
            ts += rng.expovariate(5.0)
            value = {"event_id": f"{run_id}s{n}", "type": step.type, "user_id": taste.user_id,
                     "ts": round(ts, 3), **step.fields}
            if malformed_share and rng.random() < malformed_share:
                value = {"event_id": f"{run_id}bad{n}", "type": step.type, "user_id": taste.user_id,
                         "ts": "yesterday-ish"}
            yield Record(step.source, taste.user_id, value)
