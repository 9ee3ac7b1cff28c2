"""What a shopper is like, learned online: affinities, price level, segment, lifecycle, intent.

Updated on every event by the engine and kept inside :class:`~nextoffer.models.shopper.ShopperState`
as a few bounded fields, so it stays compact for millions of shoppers:

* **affinity**: decayed weights of the categories and brands the shopper views (1), adds (3),
  buys (5) or accepts from an offer (3); the strongest few are kept;
* **price level**: a running mean of where the shopper's products sit in their category's
  price range (``log(price / category median)``: 0 is the middle, +0.3 about 35% above it);
* **price sensitivity**: from 0 (takes upgrades) to 1 (declines them, buys cheap), a running
  mean over upsell outcomes and purchases;
* **segment**: ``first_time`` (at most one order), ``repeat``, ``high_value`` (spent at least
  the configured amount);
* **lifecycle**: ``new`` (first seen recently), ``engaged``, ``at_risk`` (a customer back
  after a long gap), fixed when a session starts;
* **session intent**: ``browsing`` (views across categories), ``comparing`` (several views in
  one or two categories), ``buying`` (something added in this session).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from nextoffer.models.events import Product

if TYPE_CHECKING:
    from nextoffer.models.catalog import Catalog
    from nextoffer.models.shopper import ShopperState

DAY = 86_400.0
#: How much one event of each type adds to its product's category and brand affinity.
AFFINITY_WEIGHTS = {"view": 1.0, "click": 1.0, "add": 3.0, "purchase": 5.0, "accept": 3.0}
#: Categories and brands remembered per shopper (the strongest are kept).
MAX_AFFINITIES = 12
#: Share of a new observation in the running price level and sensitivity.
PRICE_RATE = 0.2
#: A gap without events that starts a new session when events carry no session_id.
SESSION_GAP = 1800.0
#: Categories remembered for the current session's intent.
MAX_SESSION_CATEGORIES = 4

SEGMENTS = ("first_time", "repeat", "high_value")
STAGES = ("new", "engaged", "at_risk")
INTENTS = ("browsing", "comparing", "buying")


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    """Thresholds of the profile (filled from :class:`~nextoffer.models.rules.OfferRules` and the learners)."""

    affinity_half_life: float = 30 * DAY
    high_value_spend: float = 1000.0
    new_shopper_for: float = 30 * DAY
    at_risk_after: float = 60 * DAY


def observe(shopper: "ShopperState", event, catalog: "Catalog", settings: ProfileSettings,
            previous_ts: Optional[float] = None, previous_session: Optional[str] = None) -> None:
    """Fold one applied event into the shopper's profile (``previous_ts`` and ``previous_session``:
    their last event's time and session before this one).

    >>> from nextoffer.models.catalog import Catalog
    >>> from nextoffer.models.events import ShopperEvent
    >>> from nextoffer.models.shopper import ShopperState
    >>> c = Catalog()
    >>> for pid, price in (("a", 10.0), ("b", 20.0), ("c", 40.0)):
    ...     c.upsert(Product(pid, price, category="mugs", brand="Acme"))
    >>> s = ShopperState("u1")
    >>> s.apply(ShopperEvent("clickstream", "view", "e1", "u1", 0.0, product_id="c"))
    True
    >>> observe(s, ShopperEvent("clickstream", "view", "e1", "u1", 0.0, product_id="c"), c, ProfileSettings())
    >>> v = view(s, 0.0, ProfileSettings())
    >>> v.category_affinity("mugs"), v.brand_affinity("Acme"), v.intent, v.stage, v.segment
    (1.0, 1.0, 'browsing', 'new', 'first_time')
    >>> round(v.price_level, 3)
    0.693
    """
    _start_session(shopper, event, settings, previous_ts, previous_session)
    kind = event.type
    products = [catalog.get(pid) for pid in _products_of(event)]
    weight = AFFINITY_WEIGHTS.get(kind, 0.0)
    for product in products:
        if product is None:
            continue
        if weight:
            _touch(shopper.affinity, "c:" + product.category if product.category else None, weight,
                   event.ts, settings.affinity_half_life)
            _touch(shopper.affinity, "b:" + product.brand if product.brand else None, weight,
                   event.ts, settings.affinity_half_life)
        if kind in ("view", "click", "add", "purchase"):
            position = price_position(product, catalog)
            if position is not None:
                _price_step(shopper, position, sensitive=position < 0 if kind == "purchase" else None)
    _session_step(shopper, event, products)


def learn_upsell_outcome(shopper: "ShopperState", taken: bool) -> None:
    """An offered upgrade taken or refused moves the shopper's price sensitivity."""
    level, n, sensitivity = shopper.price or [0.0, 0, 0.5]
    shopper.price = [level, n, round(sensitivity + PRICE_RATE * ((0.0 if taken else 1.0) - sensitivity), 4)]


def price_position(product: Product, catalog: "Catalog", medians: Optional[dict] = None) -> Optional[float]:
    """Where a product's price sits in its category: ``log(price / category median)``.
    ``medians`` keeps each category's median for many reads (a category's upgrades).

    >>> from nextoffer.models.catalog import Catalog
    >>> c, memo = Catalog(), {}
    >>> for pid, price in (("a", 10.0), ("b", 20.0), ("c", 40.0)):
    ...     c.upsert(Product(pid, price, category="mugs"))
    >>> round(price_position(c.get("c"), c, memo), 4), memo
    (0.6931, {'mugs': 20.0})
    """
    if product.category is None or product.price <= 0:
        return None
    if medians is None:
        median = catalog.category_median(product.category)
    elif (median := medians.get(product.category)) is None:
        median = medians[product.category] = catalog.category_median(product.category) or 0.0
    return math.log(product.price / median) if median else None


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The profile as the policy and the acceptance model read it, at one moment.

    >>> p = ProfileView("repeat", "engaged", "buying", None, 0.5, {"c:home.mugs": 3.0, "c:home.tea": 1.0, "b:Acme": 2.0})
    >>> p.category_affinity("home.mugs"), p.category_affinity("home.plates"), p.parent_affinity("home.plates")
    (0.75, 0.0, 1.0)
    """

    segment: str
    stage: str
    intent: str
    price_level: Optional[float]
    price_sensitivity: float
    affinities: dict
    totals: tuple = (0.0, 0.0)     # the category and the brand weights' sums (filled by view())

    def __post_init__(self) -> None:
        if self.totals == (0.0, 0.0) and self.affinities:
            categories = sum(w for k, w in self.affinities.items() if k.startswith("c:"))
            object.__setattr__(self, "totals", (categories, sum(self.affinities.values()) - categories))

    def category_affinity(self, category: Optional[str]) -> float:
        """Share of the shopper's category interest on exactly ``category``, 0 to 1."""
        total = self.totals[0]
        return self.affinities.get("c:" + category, 0.0) / total if category and total else 0.0

    def parent_affinity(self, category: Optional[str]) -> float:
        """Share of the shopper's category interest on ``category``'s parent (``a.b`` for ``a.b.c``)."""
        total = self.totals[0]
        if not category or not total or "." not in category:
            return 0.0
        prefix = "c:" + category.rsplit(".", 1)[0] + "."
        return sum(w for k, w in self.affinities.items() if k.startswith(prefix)) / total

    def brand_affinity(self, brand: Optional[str]) -> float:
        total = self.totals[1]
        return self.affinities.get("b:" + brand, 0.0) / total if brand and total else 0.0


def view(shopper: "ShopperState", now: float, settings: ProfileSettings) -> ProfileView:
    """Read the shopper's profile at time ``now`` (affinities decayed to it)."""
    half_life = settings.affinity_half_life
    affinities = {k: w * 0.5 ** (max(0.0, now - ts) / half_life) for k, (w, ts) in shopper.affinity.items()}
    price = shopper.price
    return ProfileView(segment(shopper, settings), shopper.stage or "new", intent(shopper),
                       price[0] if price and price[1] else None, price[2] if price else 0.5, affinities)


def segment(shopper: "ShopperState", settings: ProfileSettings) -> str:
    """``first_time``, ``repeat`` or ``high_value``.

    >>> from nextoffer.models.shopper import ShopperState
    >>> s = ShopperState("u1", orders=3, spend=1500.0)
    >>> segment(s, ProfileSettings()), segment(ShopperState("u2", orders=1), ProfileSettings())
    ('high_value', 'first_time')
    """
    if shopper.spend >= settings.high_value_spend:
        return "high_value"
    return "first_time" if shopper.orders <= 1 else "repeat"


def intent(shopper: "ShopperState") -> str:
    views, adds, categories = shopper.session_stats or (0, 0, [])
    if adds:
        return "buying"
    return "comparing" if views >= 2 and len(categories) <= 2 else "browsing"


# -- internals ----------------------------------------------------------------
def _products_of(event) -> list[str]:
    if event.items:
        return [line.product_id for line in event.items]
    return [event.product_id] if event.product_id else []


def _start_session(shopper: "ShopperState", event, settings: ProfileSettings,
                   previous_ts: Optional[float], previous_session: Optional[str]) -> None:
    new_session = (previous_ts is None or event.ts - previous_ts > SESSION_GAP
                   or (event.session_id is not None and event.session_id != previous_session))
    if not new_session:
        return
    first = shopper.first_ts if shopper.first_ts is not None else event.ts
    if previous_ts is not None and shopper.orders and event.ts - previous_ts > settings.at_risk_after:
        shopper.stage = "at_risk"
    elif event.ts - first < settings.new_shopper_for:
        shopper.stage = "new"
    else:
        shopper.stage = "engaged"
    shopper.session_stats = [0, 0, []]


def _session_step(shopper: "ShopperState", event, products: list[Optional[Product]]) -> None:
    views, adds, categories = shopper.session_stats or (0, 0, [])
    if event.type in ("view", "click"):
        views += 1
    elif event.type == "add":
        adds += 1
    for product in products:
        if product is not None and product.category and product.category not in categories:
            categories = (categories + [product.category])[-MAX_SESSION_CATEGORIES:]
    shopper.session_stats = [views, adds, categories]


def _touch(affinity: dict, key: Optional[str], weight: float, ts: float, half_life: float) -> None:
    if key is None:
        return
    w, at = affinity.pop(key, (0.0, ts))
    affinity[key] = [round(w * 0.5 ** (max(0.0, ts - at) / half_life) + weight, 3), ts]
    if len(affinity) > MAX_AFFINITIES:
        # the weakest as of now goes; decay makes old interests weak
        weakest = min(affinity, key=lambda k: affinity[k][0] * 0.5 ** ((ts - affinity[k][1]) / half_life))
        del affinity[weakest]


def _price_step(shopper: "ShopperState", position: float, sensitive: Optional[bool]) -> None:
    level, n, sensitivity = shopper.price or [0.0, 0, 0.5]
    rate = max(PRICE_RATE, 1.0 / (n + 1))        # a plain mean for the first few, then running
    level += rate * (position - level)
    if sensitive is not None:
        sensitivity += 0.5 * PRICE_RATE * ((1.0 if sensitive else 0.0) - sensitivity)
    shopper.price = [round(level, 4), n + 1, round(sensitivity, 4)]
