"""Bytes in, typed events out; offers and dead-letter records in, bytes out.

Every problem with an input message raises :class:`InvalidMessage` with a one-line
reason that says what is wrong and where; the agent sends it to the dead-letter topic.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

import orjson

from nextoffer.models.engine import Basket
from nextoffer.models.shopper import ShopperState
from nextoffer.models.events import (CART, CART_TYPES, CLICKSTREAM, CLICKSTREAM_TYPES, FEEDBACK,
                           FEEDBACK_TYPES, LineItem, Product, ShopperEvent)
from nextoffer.models.offer import Offer

TYPES = {CLICKSTREAM: CLICKSTREAM_TYPES, CART: CART_TYPES, FEEDBACK: FEEDBACK_TYPES}
NEEDS_PRODUCT = {(CLICKSTREAM, "view"), (CLICKSTREAM, "click"), (CART, "add"), (CART, "remove")}
MAX_TEXT = 1000  # free-text fields (query, names) are cut to this many characters


class InvalidMessage(ValueError):
    """An input message that cannot be used; ``str()`` is the one-line reason."""


#: Highest catalog price accepted: beyond it a price is a unit or typing error, and sums of such
#: prices lose precision in spend and order values.
MAX_PRICE = 1e9


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits of input messages (see Settings)."""

    max_message_bytes: int = 1_000_000
    max_order_items: int = 2000
    max_id_length: int = 256
    dead_letter_raw_bytes: int = 65_536


def decode_event(source: str, raw: Optional[bytes], limits: Limits = Limits()) -> ShopperEvent:
    """Validate a clickstream, cart or offer-feedback message.

    >>> decode_event("cart", b'{"event_id":"e1","type":"add","user_id":"u1","product_id":"p1","ts":5}').product_id
    'p1'
    >>> decode_event("cart", b'{"event_id":"e1","type":"add","user_id":"u1","ts":5}')
    Traceback (most recent call last):
    ...
    nextoffer.streams.io.codecs.InvalidMessage: missing required field 'product_id' (needed for cart 'add')
    """
    data = _load(raw, limits)
    kind = _string(data, "type", limits, required=True)
    if kind not in TYPES[source]:
        raise InvalidMessage(f"unknown type {kind!r} for topic {source} "
                             f"(expected one of {', '.join(TYPES[source])})")
    product_id = _ident(data, "product_id", limits, required=(source, kind) in NEEDS_PRODUCT)
    return ShopperEvent(
        source=source, type=kind,
        event_id=_ident(data, "event_id", limits, required=True),
        user_id=_ident(data, "user_id", limits, required=True),
        ts=_timestamp(data),
        product_id=product_id,
        price=_number(data, "price"),
        quantity=_quantity(data, "quantity"),
        category=_string(data, "category", limits),
        brand=_string(data, "brand", limits),
        session_id=_ident(data, "session_id", limits),
        order_id=_ident(data, "order_id", limits),
        items=_items(data, limits) if source == CART else (),
        query=_string(data, "query", limits),
        offer_id=_ident(data, "offer_id", limits, required=source == FEEDBACK),
    )


def decode_product(raw: Optional[bytes], limits: Limits = Limits()) -> Product:
    """Validate a catalog message.

    >>> decode_product(b'{"product_id":"p1","price":9.5,"family":"f","tier":2}').tier
    2.0
    """
    data = _load(raw, limits)
    price = _number(data, "price", required=True)
    if price <= 0:
        raise InvalidMessage(f"field 'price' must be > 0 for a catalog product, got {price}")
    margin = _number(data, "margin")
    if margin is not None and margin > 1:
        raise InvalidMessage(f"field 'margin' must be between 0 and 1, got {margin}")
    stock = data.get("stock")
    if stock is not None and (not _is_int(stock) or stock < 0):
        raise InvalidMessage(f"field 'stock' must be a whole number >= 0 or null, got {_show(stock)}")
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise InvalidMessage(f"field 'active' must be true or false, got {_show(active)}")
    if price > MAX_PRICE:
        raise InvalidMessage(f"field 'price' is {price:g}, above the {MAX_PRICE:g} a product can cost")
    product_id, family = _ident(data, "product_id", limits, required=True), _ident(data, "family", limits)
    if family is not None and family == product_id:
        # A ladder the product points into by its own id is a loop, not a product line.
        raise InvalidMessage(f"field 'family' points to the product itself ({family!r}); name the "
                             "product line its tiers share, e.g. 'phone-x'")
    return Product(
        product_id=product_id, price=price,
        name=_string(data, "name", limits), category=_string(data, "category", limits),
        brand=_string(data, "brand", limits), margin=margin, stock=stock,
        family=family, tier=_number(data, "tier"), active=active)


# -- outputs ----------------------------------------------------------------------
def encode_offer(offer: Offer) -> bytes:
    return orjson.dumps(offer.to_dict())


def encode_decision(offer: Offer, shortlist) -> bytes:
    """The decision log's record of one offer (internal ``nextoffer-decisions`` topic): what was
    offered with each item's propensity, and the ranked shortlist it was chosen from.

    >>> from nextoffer.models.offer import Kind, OfferItem, Placement
    >>> from nextoffer.models.policy import LoggedCandidate
    >>> offer = Offer("o1", "u1", Placement.CART, Kind.CROSS_SELL, "a", (OfferItem("b", 0.5, "x", None, 0.9),),
    ...               "e1", 1.0, 2.0, event_ts=1.0)
    >>> orjson.loads(encode_decision(offer, [LoggedCandidate("b", 0.4, 0.5, 0.2, 3)]))["candidates"]
    [['b', 0.4, 0.5, 0.2, 3]]
    """
    return orjson.dumps({"offer_id": offer.offer_id, "user_id": offer.user_id, "ts": offer.event_ts,
                         "placement": offer.placement.value, "kind": offer.kind.value, "policy": offer.policy,
                         "offered": [[i.product_id, i.propensity if i.propensity is not None else 1.0]
                                     for i in offer.items],
                         "candidates": [list(c) for c in shortlist]})


def dead_letter(source_topic: str, partition: int, offset: int, error: str,
                raw: Optional[bytes], raw_limit: int = 65_536) -> bytes:
    """The contract's dead-letter record; ``raw`` as text, or base64 when not UTF-8.

    A message larger than ``raw_limit`` bytes keeps only its first ``raw_limit``
    bytes (an oversized message could not be republished whole); ``raw_truncated``
    and ``raw_bytes`` then say so.

    >>> orjson.loads(dead_letter("cart", 0, 7, "why", b"x" * 10, raw_limit=4))["raw"]
    'xxxx'
    """
    record: dict[str, Any] = {"source_topic": source_topic, "partition": partition, "offset": offset,
                              "error": error, "raw": ""}
    if raw is not None:
        cut = len(raw) > raw_limit
        if cut:
            record.update(raw_truncated=True, raw_bytes=len(raw))
        record["raw"], binary = _as_text(raw[:raw_limit], cut)
        if binary:
            record["raw_encoding"] = "base64"
    return orjson.dumps(record)


def encode_state(state: ShopperState) -> bytes:
    """A shopper's state as the table keeps it: compact JSON bytes (about 600 bytes for a
    shopper with a cart, an order and three offers shown, against about 3.8 KB as Python dicts).

    >>> decode_state(encode_state(ShopperState("u1", orders=2))).orders
    2
    """
    # orjson returns its 4 KB working buffer; a copy of the exact size keeps a long-lived
    # table value at its real size.
    return bytes(memoryview(orjson.dumps(state.to_dict())))


def decode_state(raw: bytes | dict) -> ShopperState:
    """A shopper's state from the table: bytes, or a dict as recovery may hand it over."""
    return ShopperState.from_dict(raw if isinstance(raw, dict) else orjson.loads(raw))


def compact_state(value):
    """A recovered table value in the table's compact form (recovery decodes it as JSON)."""
    return bytes(memoryview(orjson.dumps(value))) if isinstance(value, dict) else value


def encode_basket(basket: Basket) -> bytes:
    """The internal baskets topic's record of one order.

    >>> b = Basket("u1", 5.0, (LineItem("p1", 2, 3.5),), event_id="e9", upgrades=(("p0", "p1"),),
    ...            first_order=True)
    >>> decode_basket(encode_basket(b)) == b
    True
    """
    return orjson.dumps({"user_id": basket.user_id, "ts": basket.ts,
                         "items": [[i.product_id, i.quantity, i.price] for i in basket.items],
                         "repeats": list(basket.repeats), "event_id": basket.event_id,
                         **({"upgrades": [list(v) for v in basket.upgrades]} if basket.upgrades else {}),
                         **({"first_order": True} if basket.first_order else {})})


def decode_basket(raw: bytes) -> Basket:
    data = orjson.loads(raw)
    return Basket(data["user_id"], data["ts"], tuple(LineItem(*item) for item in data["items"]),
                  tuple(data.get("repeats", ())), data.get("event_id", ""),
                  tuple(tuple(v) for v in data.get("upgrades", ())), bool(data.get("first_order")))


def _as_text(data: bytes, cut: bool) -> tuple[str, bool]:
    """UTF-8 text, or base64 (and True) for bytes that are not UTF-8."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError as exc:
        # Cutting may split the last character; text valid up to the cut is still text.
        if cut and exc.start >= len(data) - 3:
            return data[:exc.start].decode("utf-8"), False
        return base64.b64encode(data).decode("ascii"), True


# -- field checks -----------------------------------------------------------------
def _load(raw: Optional[bytes], limits: Limits) -> dict[str, Any]:
    if raw is None or len(raw) == 0:
        raise InvalidMessage("empty message (a JSON object is expected)")
    if len(raw) > limits.max_message_bytes:
        raise InvalidMessage(f"oversized: {len(raw)} bytes > limit of {limits.max_message_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"not JSON: {_one_line(str(exc))}") from None
    if not isinstance(data, dict):
        raise InvalidMessage(f"not a JSON object (got {_json_type(data)})")
    return data


def _ident(data: dict, name: str, limits: Limits, required: bool = False) -> Optional[str]:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidMessage(f"missing required field {name!r}{_needed_for(data, name)}")
        return None
    if _is_int(value):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidMessage(f"field {name!r} must be a string, got {_json_type(value)}")
    if not value.strip():
        raise InvalidMessage(f"field {name!r} is empty")
    if len(value) > limits.max_id_length:
        raise InvalidMessage(f"field {name!r} is {len(value)} characters long "
                             f"(limit {limits.max_id_length})")
    return value


def _string(data: dict, name: str, limits: Limits, required: bool = False) -> Optional[str]:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidMessage(f"missing required field {name!r}")
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"field {name!r} must be a string, got {_json_type(value)}")
    return value[:MAX_TEXT]


def _number(data: dict, name: str, required: bool = False) -> Optional[float]:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidMessage(f"missing required field {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidMessage(f"field {name!r} must be a number, got {_json_type(value)}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidMessage(f"field {name!r} must be a finite number >= 0, got {value}")
    return value


def _quantity(data: dict, name: str) -> int:
    value = data.get(name, 1)
    if value is None:
        return 1
    if not _is_int(value) or value < 1:
        raise InvalidMessage(f"field {name!r} must be a whole number >= 1, got {_show(value)}")
    return value


def _timestamp(data: dict) -> float:
    value = data.get("ts")
    if value is None:
        raise InvalidMessage("missing required field 'ts'")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" UTC", "+00:00"))
        except ValueError:
            raise InvalidMessage(f"field 'ts' is not an ISO-8601 time: {_show(value)}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise InvalidMessage(f"field 'ts' must be epoch seconds or an ISO-8601 string, got {_show(value)}")
    return float(value)


def _items(data: dict, limits: Limits) -> tuple[LineItem, ...]:
    items = data.get("items")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InvalidMessage(f"field 'items' must be a list, got {_json_type(items)}")
    if len(items) > limits.max_order_items:
        raise InvalidMessage(f"field 'items' has {len(items)} lines (limit {limits.max_order_items})")
    lines = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidMessage(f"items[{n}] must be an object, got {_json_type(item)}")
        try:
            lines.append(LineItem(_ident(item, "product_id", limits, required=True),
                                  _quantity(item, "quantity"), _number(item, "price")))
        except InvalidMessage as exc:
            raise InvalidMessage(f"items[{n}]: {exc}") from None
    return tuple(lines)


def _needed_for(data: dict, name: str) -> str:
    if name == "product_id" and isinstance(data.get("type"), str):
        topic = CART if data["type"] in CART_TYPES else CLICKSTREAM
        return f" (needed for {topic} {data['type']!r})"
    return ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
