"""The offer a shopper is shown, and where it is shown."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional


class Placement(str, Enum):
    """Where on the storefront an offer is shown."""

    PRODUCT_PAGE = "product_page"
    CART = "cart"
    CHECKOUT = "checkout"
    POST_PURCHASE = "post_purchase"


class Kind(str, Enum):
    """Upsell: a better tier of the anchor. Cross-sell: a complement of it."""

    UPSELL = "upsell"
    CROSS_SELL = "cross_sell"


@dataclass(frozen=True, slots=True)
class OfferItem:
    """One offered product with its relevance score and a human-readable reason."""

    product_id: str
    score: float
    reason: str
    price: float | None = None
    propensity: float | None = None   # the probability the policy put this item in this slot

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"product_id": self.product_id, "score": round(self.score, 6),
                               "reason": self.reason}
        if self.price is not None:
            out["price"] = self.price
        if self.propensity is not None:
            out["propensity"] = self.propensity
        return out


@dataclass(frozen=True, slots=True)
class Offer:
    """A next-best offer: one kind, one anchor, one to three items.

    >>> item = OfferItem("case-1", 0.4, "often bought with Phone X", 19.0)
    >>> offer = Offer(offer_id_for("e1", Placement.CART), "u1", Placement.CART,
    ...               Kind.CROSS_SELL, "phone-x", (item,), "e1", 100.0, 3700.0)
    >>> offer.to_dict()["kind"], len(offer.to_dict()["items"])
    ('cross_sell', 1)
    """

    offer_id: str
    user_id: str
    placement: Placement
    kind: Kind
    anchor_product_id: str
    items: tuple[OfferItem, ...]
    event_id: str
    generated_at: float
    expires_at: float
    policy: str = "greedy"
    propensity: float = 1.0
    event_ts: Optional[float] = None   # the triggering event's time: the lookup keeps the newest

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON object, as a plain dict."""
        out = {
            "offer_id": self.offer_id,
            "user_id": self.user_id,
            "placement": self.placement.value,
            "kind": self.kind.value,
            "anchor_product_id": self.anchor_product_id,
            "items": [item.to_dict() for item in self.items],
            "event_id": self.event_id,
            "generated_at": self.generated_at,
            "expires_at": self.expires_at,
            "policy": self.policy,
            "propensity": self.propensity,
        }
        if self.event_ts is not None:
            out["event_ts"] = self.event_ts
        return out

    @property
    def product_ids(self) -> list[str]:
        return [item.product_id for item in self.items]


_OFFER_NAMESPACE = uuid.UUID("6b8f3c1e-2a47-4f0e-9d1a-6e0c5b7a9f21")
_NAMESPACE_BYTES = _OFFER_NAMESPACE.bytes


def offer_id_for(event_id: str, placement: Placement) -> str:
    """A stable offer id: replaying the same event yields the same id, so retries are idempotent.

    It is the name-based UUID (version 5) of the event id and placement, made from the SHA-1
    digest directly: ``uuid.uuid5`` builds two UUID objects on the way, a third of a decision's
    cost of making the offer.

    >>> offer_id_for("e1", Placement.CART) == offer_id_for("e1", Placement.CART)
    True
    >>> offer_id_for("e1", Placement.CART) == str(uuid.uuid5(_OFFER_NAMESPACE, "e1\x1fcart"))
    True
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{event_id}\x1f{placement.value}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50        # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80        # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
