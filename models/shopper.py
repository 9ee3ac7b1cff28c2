"""Per-shopper state: cart, recent views and purchases, declines, offer fatigue, spend.

Kept compact (bounded lists and maps) because one exists per active shopper; it
travels through a Faust table as the plain dict of :meth:`ShopperState.to_dict`, with the
short keys of :data:`STATE_KEYS` and the format's version under ``"V"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from nextoffer.models.acceptance import OfferedItem
from nextoffer.models.events import CART, FEEDBACK, LineItem, ShopperEvent

MAX_SEEN_EVENTS = 64
MAX_VIEWS = 12
MAX_PURCHASES = 100
MAX_SHOWN = 60
MAX_DECLINED = 60
MAX_OFFERS = 8
MAX_CART_LINES = 200
MAX_ATTACHED = 20

_NEGATIVE_FEEDBACK = ("decline", "dismiss")

#: The version of the stored state. 1: no "V" key (before 0.2); 2: the same fields, with "V".
STATE_VERSION = 2
#: Each field of :class:`ShopperState` and its key in the stored state: one letter each,
#: because the key is repeated in every shopper's changelog record and in-memory value.
STATE_KEYS = {"user_id": "u", "cart": "c", "views": "v", "purchases": "p", "declined": "d",
              "shown": "s", "offers": "o", "seen": "e", "orders": "n", "spend": "m",
              "first_ts": "f", "last_ts": "l", "session_id": "i"}
#: Fields stored only when they hold something (most shoppers have none of them).
OPTIONAL_STATE_KEYS = {"attached": "a", "affinity": "y", "price": "q", "stage": "g",
                       "session_stats": "t"}


@dataclass(slots=True)
class ShopperState:
    """What nextoffer remembers of one shopper.

    >>> s = ShopperState("u1")
    >>> s.apply(ShopperEvent("cart", "add", "e1", "u1", 5.0, product_id="p1", price=2.0))
    True
    >>> s.apply(ShopperEvent("cart", "add", "e1", "u1", 5.0, product_id="p1", price=2.0))
    False
    >>> s.cart
    {'p1': [1, 2.0]}
    >>> ShopperState.from_dict(s.to_dict()) == s
    True
    """

    user_id: str
    cart: dict[str, list] = field(default_factory=dict)          # pid -> [quantity, unit price]
    views: list[str] = field(default_factory=list)               # most recent last
    purchases: dict[str, list] = field(default_factory=dict)     # pid -> [orders with it, last at]
    declined: dict[str, float] = field(default_factory=dict)     # pid -> declined at
    shown: dict[str, list] = field(default_factory=dict)         # pid -> [times, first shown at]
    offers: dict[str, list[OfferedItem]] = field(default_factory=dict)  # offer_id -> open items
    seen: list[str] = field(default_factory=list)                # recent event ids, for dedup
    orders: int = 0
    spend: float = 0.0
    first_ts: Optional[float] = None
    last_ts: Optional[float] = None
    session_id: Optional[str] = None
    attached: list[str] = field(default_factory=list)            # offered items taken into the cart
    # the profile (models/profile.py): what the shopper is like
    affinity: dict[str, list] = field(default_factory=dict)      # "c:cat" / "b:brand" -> [weight, at]
    price: Optional[list] = None                                 # [level, observations, sensitivity]
    stage: Optional[str] = None                                  # lifecycle: new, engaged, at_risk
    session_stats: Optional[list] = None                         # [views, adds, categories] this session

    # -- applying events ------------------------------------------------------
    def apply(self, event: ShopperEvent) -> bool:
        """Apply an event once; returns False (and changes nothing) for a duplicate event_id."""
        if event.event_id in self.seen:
            return False
        _push(self.seen, event.event_id, MAX_SEEN_EVENTS)
        self.first_ts = event.ts if self.first_ts is None else min(self.first_ts, event.ts)
        self.last_ts = event.ts if self.last_ts is None else max(self.last_ts, event.ts)
        if event.session_id:
            self.session_id = event.session_id
        if event.source == CART:
            self._apply_cart(event)
        elif event.source == FEEDBACK:
            self._apply_feedback(event)
        elif event.type in ("view", "click") and event.product_id:
            if event.product_id in self.views:
                self.views.remove(event.product_id)
            _push(self.views, event.product_id, MAX_VIEWS)
        return True

    def _apply_cart(self, event: ShopperEvent) -> None:
        pid = event.product_id
        if event.type == "add" and pid:
            qty, price = self.cart.get(pid, [0, event.price])
            if pid in self.cart or len(self.cart) < MAX_CART_LINES:
                self.cart[pid] = [qty + event.quantity, event.price if event.price is not None else price]
        elif event.type == "remove" and pid and pid in self.cart:
            left = self.cart[pid][0] - event.quantity
            if left > 0:
                self.cart[pid][0] = left
            else:
                del self.cart[pid]
        elif event.type == "purchase":
            self._apply_purchase(event)

    def _apply_purchase(self, event: ShopperEvent) -> None:
        lines = self.order_lines(event)
        for line in lines:
            times, _ = self.purchases.pop(line.product_id, (0, event.ts))
            self.purchases[line.product_id] = [times + 1, event.ts]
            self.cart.pop(line.product_id, None)
        if not event.items and not event.product_id:
            self.cart.clear()
        _trim_map(self.purchases, MAX_PURCHASES)
        self.orders += 1
        self.spend += sum((line.price or 0.0) * line.quantity for line in lines)

    def order_lines(self, event: ShopperEvent) -> tuple[LineItem, ...]:
        """The lines a purchase buys: its items, its one product, or else the whole cart."""
        if event.items:
            return event.items
        if event.product_id:
            known = self.cart.get(event.product_id, [event.quantity, None])
            return (LineItem(event.product_id, event.quantity,
                             event.price if event.price is not None else known[1]),)
        return tuple(LineItem(pid, qty, price) for pid, (qty, price) in self.cart.items())

    def _apply_feedback(self, event: ShopperEvent) -> None:
        if event.type not in _NEGATIVE_FEEDBACK:
            return
        records = self.offers.get(event.offer_id or "", [])
        targets = [event.product_id] if event.product_id else [r.product_id for r in records]
        for pid in targets:
            self.declined.pop(pid, None)
            self.declined[pid] = event.ts
        _trim_map(self.declined, MAX_DECLINED)

    # -- offers shown ---------------------------------------------------------
    def record_offer(self, offer_id: str, records: list[OfferedItem], now: float,
                     window: float) -> list[OfferedItem]:
        """Remember an offer's items for feedback, outcomes and the frequency cap; returns the
        still-open items of offers that lapse to make room."""
        self.offers[offer_id] = list(records)
        lapsed = []
        while len(self.offers) > MAX_OFFERS:
            lapsed.extend(self.offers.pop(next(iter(self.offers))))
        for pid in (r.product_id for r in records):
            times, since = self.shown.pop(pid, [0, now])
            self.shown[pid] = [1, now] if now - since > window else [times + 1, since]
        _trim_map(self.shown, MAX_SHOWN)
        return lapsed

    def take_outcomes(self, event: ShopperEvent, products: set[str]) -> list[tuple[OfferedItem, bool]]:
        """Offered items this event settles, each with whether it was taken (and forgets them).

        Feedback settles its offer's items (accept, click: taken; decline, dismiss: not); an add or
        a purchase of offered ``products`` settles them as taken. Impressions settle nothing.
        """
        if event.source == FEEDBACK:
            if event.type == "impression" or event.offer_id not in self.offers:
                return []
            taken = event.type in ("accept", "click")
            return [(r, taken) for r in self._take(event.offer_id, event.product_id)]
        if products:
            return [(r, True) for offer_id in list(self.offers) for r in self._take(offer_id, None, products)]
        return []

    def _take(self, offer_id: str, pid: Optional[str], pids: Optional[set] = None) -> list[OfferedItem]:
        records = self.offers.get(offer_id, [])
        wanted = [r for r in records if (pid is None or r.product_id == pid)
                  and (pids is None or r.product_id in pids)]
        if wanted:
            self.offers[offer_id] = [r for r in records if r not in wanted]
        return wanted

    def attach(self, products: set[str], order: tuple[LineItem, ...]) -> bool:
        """Remember offered items taken into the cart; for an ``order``, whether it holds one
        (an offered item bought, directly or after an add), forgetting those bought.

        >>> s = ShopperState("u1")
        >>> s.attach({"case"}, ())
        False
        >>> s.attach(set(), (LineItem("phone", 1, 500.0), LineItem("case", 1, 20.0)))
        True
        >>> s.attached
        []
        """
        for pid in products:
            if pid not in self.attached:
                _push(self.attached, pid, MAX_ATTACHED)
        if not order:
            return False
        bought = {line.product_id for line in order}
        hit = bool(bought & set(self.attached))
        self.attached = [pid for pid in self.attached if pid not in bought]
        return hit

    def times_shown(self, pid: str, now: float, window: float) -> int:
        times, since = self.shown.get(pid, (0, now))
        return 0 if now - since > window else times

    def bought_at(self, pid: str) -> Optional[float]:
        """When the shopper last bought ``pid`` (None: not in their remembered history)."""
        entry = self.purchases.get(pid)
        return entry[1] if entry else None

    @property
    def cart_value(self) -> float:
        return sum(qty * (price or 0.0) for qty, price in self.cart.values())

    # -- serialisation --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The state as stored: :data:`STATE_KEYS`, the optional keys that hold something, the
        version; offered items as lists (JSON has no named records).

        >>> ShopperState("u1", orders=2).to_dict()["n"], ShopperState("u1").to_dict()["V"]
        (2, 2)
        """
        out: dict[str, Any] = {key: getattr(self, name) for name, key in STATE_KEYS.items()}
        out["o"] = {oid: [list(r) for r in items] for oid, items in self.offers.items()}
        for name, key in OPTIONAL_STATE_KEYS.items():
            value = getattr(self, name)
            if value:
                out[key] = value
        out["V"] = STATE_VERSION
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShopperState":
        """A stored state, of this version or an older one (version 1 had no ``"V"``).

        >>> ShopperState.from_dict({"u": "u1", "c": {}, "v": ["p1"], "p": {}, "d": {}, "s": {},
        ...     "o": {"x": [["p2", "upsell", "product_page", "ladder", 0.5, 1.2, 0]]}, "e": [],
        ...     "n": 0, "m": 0.0, "f": None, "l": None, "i": None}).offers["x"][0].kind
        'upsell'
        """
        version = data.get("V", 1)
        if version > STATE_VERSION:
            raise ValueError(f"shopper state of version {version}, newer than this nextoffer's "
                             f"{STATE_VERSION}: upgrade nextoffer on every worker")
        fields = {name: data[key] for name, key in STATE_KEYS.items()}
        fields.update((name, data[key]) for name, key in OPTIONAL_STATE_KEYS.items() if key in data)
        fields["offers"] = {oid: [OfferedItem(*r) for r in items] for oid, items in data["o"].items()}
        return cls(**fields)


def _push(items: list, value: Any, limit: int) -> None:
    items.append(value)
    if len(items) > limit:
        del items[: len(items) - limit]


def _trim_map(mapping: dict, limit: int) -> None:
    # dicts keep insertion order and callers re-insert on touch: the oldest go first.
    while len(mapping) > limit:
        del mapping[next(iter(mapping))]
