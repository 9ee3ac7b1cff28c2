"""Typed shopper events and catalog products, as the core sees them.

The shell validates raw messages into these; the core never sees bytes or JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from nextoffer.models.offer import Placement

CLICKSTREAM_TYPES = ("view", "search", "click")
CART_TYPES = ("add", "remove", "checkout", "purchase")
FEEDBACK_TYPES = ("impression", "click", "accept", "decline", "dismiss")

CLICKSTREAM = "clickstream"
CART = "cart"
FEEDBACK = "offer-feedback"

#: The placement an event opens; events not listed open none.
PLACEMENT_FOR = {
    (CLICKSTREAM, "view"): Placement.PRODUCT_PAGE,
    (CLICKSTREAM, "click"): Placement.PRODUCT_PAGE,
    (CART, "add"): Placement.CART,
    (CART, "checkout"): Placement.CHECKOUT,
    (CART, "purchase"): Placement.POST_PURCHASE,
}


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of an order: a product, how many, at what unit price."""

    product_id: str
    quantity: int = 1
    price: Optional[float] = None


@dataclass(frozen=True, slots=True)
class ShopperEvent:
    """One clickstream, cart or offer-feedback event of one shopper.

    >>> e = ShopperEvent(CART, "add", "e1", "u1", 10.0, product_id="p1", price=5.0)
    >>> e.placement.value
    'cart'
    """

    source: str
    type: str
    event_id: str
    user_id: str
    ts: float
    product_id: Optional[str] = None
    price: Optional[float] = None
    quantity: int = 1
    category: Optional[str] = None
    brand: Optional[str] = None
    session_id: Optional[str] = None
    order_id: Optional[str] = None
    items: tuple[LineItem, ...] = ()
    query: Optional[str] = None
    offer_id: Optional[str] = None

    @property
    def placement(self) -> Optional[Placement]:
        return PLACEMENT_FOR.get((self.source, self.type))


@dataclass(frozen=True, slots=True)
class Product:
    """A catalog entry. ``stock`` None means unknown; ``family`` + ``tier`` form an upsell ladder.

    >>> Product("p1", price=10.0).available(min_stock=1)
    True
    >>> Product("p1", price=10.0, stock=0).available(min_stock=1)
    False
    """

    product_id: str
    price: float
    name: Optional[str] = None
    category: Optional[str] = None
    brand: Optional[str] = None
    margin: Optional[float] = None
    stock: Optional[int] = None
    family: Optional[str] = None
    tier: Optional[float] = None
    active: bool = True
    from_events: bool = False

    def available(self, min_stock: int) -> bool:
        """Active, and either stock unknown or at least ``min_stock`` units."""
        return self.active and (self.stock is None or self.stock >= min_stock)

    @property
    def label(self) -> str:
        return self.name or self.product_id
