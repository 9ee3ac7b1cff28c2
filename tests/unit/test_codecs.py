import base64

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextoffer.streams.io.codecs import (InvalidMessage, Limits, dead_letter, decode_basket, decode_event,
                            decode_product, encode_basket)
from nextoffer.models.engine import Basket
from nextoffer.models.events import LineItem


def js(**kw) -> bytes:
    return orjson.dumps(kw)


GOOD = {"event_id": "e1", "type": "add", "user_id": "u1", "product_id": "p1", "ts": 1700000000}


def test_a_valid_cart_add_decodes_with_defaults():
    e = decode_event("cart", js(**GOOD))
    assert (e.source, e.type, e.user_id, e.product_id, e.quantity, e.ts) == ("cart", "add", "u1", "p1", 1, 1.7e9)


def test_unknown_extra_fields_are_ignored():
    assert decode_event("cart", js(**GOOD, surprise={"x": [1]})).product_id == "p1"


def test_iso_timestamps_and_numeric_ids_are_accepted():
    e = decode_event("clickstream", js(event_id=5, type="view", user_id=42, product_id=7,
                                       ts="2019-10-01T00:00:00Z"))
    assert (e.event_id, e.user_id, e.product_id, e.ts) == ("5", "42", "7", 1569888000.0)
    assert decode_event("clickstream", js(event_id=5, type="search", user_id=1, query="tea",
                                          ts="2019-10-01 00:00:00+00:00")).query == "tea"


def test_purchase_items_decode_into_lines():
    e = decode_event("cart", js(event_id="e", type="purchase", user_id="u", ts=1,
                                items=[{"product_id": "a", "quantity": 2, "price": 3.5}, {"product_id": "b"}]))
    assert e.items == (LineItem("a", 2, 3.5), LineItem("b", 1, None))


@pytest.mark.parametrize("raw,reason", [
    (b"", "empty message"),
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object (got a list)"),
    (b'"text"', "not a JSON object (got a string)"),
    (b"NaN", "not JSON"),
    (js(**{**GOOD, "type": "teleport"}), "unknown type 'teleport' for topic cart"),
    (js(**{k: v for k, v in GOOD.items() if k != "user_id"}), "missing required field 'user_id'"),
    (js(**{k: v for k, v in GOOD.items() if k != "ts"}), "missing required field 'ts'"),
    (js(**{k: v for k, v in GOOD.items() if k != "product_id"}), "missing required field 'product_id'"),
    (js(**{**GOOD, "user_id": ["u"]}), "field 'user_id' must be a string, got a list"),
    (js(**{**GOOD, "user_id": " "}), "field 'user_id' is empty"),
    (js(**{**GOOD, "price": "cheap"}), "field 'price' must be a number, got a string"),
    (js(**{**GOOD, "price": -1}), "field 'price' must be a finite number >= 0"),
    (js(**{**GOOD, "price": True}), "field 'price' must be a number, got a boolean"),
    (js(**{**GOOD, "quantity": -2}), "field 'quantity' must be a whole number >= 1"),
    (js(**{**GOOD, "quantity": 1.5}), "field 'quantity' must be a whole number >= 1"),
    (js(**{**GOOD, "ts": "yesterday"}), "field 'ts' is not an ISO-8601 time"),
    (js(**{**GOOD, "ts": -5}), "field 'ts' must be epoch seconds"),
    (js(**{**GOOD, "items": "all"}), "field 'items' must be a list"),
    (js(**{**GOOD, "items": [1]}), "items[0] must be an object"),
    (js(**{**GOOD, "items": [{"quantity": 1}]}), "items[0]: missing required field 'product_id'"),
    (js(**{**GOOD, "product_id": "x" * 300}), "field 'product_id' is 300 characters long (limit 256)"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[" * 5000 + b"]" * 5000, "not JSON"),
    (b'{"event_id": 99999999999999999999999, "type": "checkout"}', "field 'event_id' must be a string, got a number"),
    (js(**{k: v for k, v in GOOD.items() if k != "ts"})[:-1] + b',"ts":1e400}', "not JSON"),
    (b"1" * 2_000_000, "oversized: 2000000 bytes > limit of 1000000"),
])
def test_unusable_messages_say_why(raw, reason):
    with pytest.raises(InvalidMessage) as err:
        decode_event("cart", raw)
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


def test_order_size_is_limited():
    items = [{"product_id": str(n)} for n in range(11)]
    with pytest.raises(InvalidMessage, match="11 lines"):
        decode_event("cart", js(**{**GOOD, "type": "purchase", "items": items}), Limits(max_order_items=10))


def test_feedback_needs_an_offer_id_and_knows_its_types():
    with pytest.raises(InvalidMessage, match="offer_id"):
        decode_event("offer-feedback", js(event_id="f", type="accept", user_id="u", ts=1))
    e = decode_event("offer-feedback", js(event_id="f", type="click", user_id="u", ts=1, offer_id="o"))
    assert e.source == "offer-feedback" and e.placement is None


@pytest.mark.parametrize("fields,reason", [
    ({"product_id": "p", "price": 0}, "'price' must be > 0"),
    ({"product_id": "p"}, "missing required field 'price'"),
    ({"product_id": "p", "price": 5, "margin": 1.5}, "'margin' must be between 0 and 1"),
    ({"product_id": "p", "price": 5, "stock": -1}, "'stock' must be a whole number >= 0 or null"),
    ({"product_id": "p", "price": 5, "active": "yes"}, "'active' must be true or false"),
    ({"product_id": "p", "price": 5, "family": "p", "tier": 1}, "'family' points to the product itself"),
    ({"product_id": "p", "price": 1e12}, "a product can cost"),
    ({"product_id": "p", "price": 5, "tier": -1}, "'tier' must be a finite number >= 0"),
])
def test_catalog_products_are_validated(fields, reason):
    with pytest.raises(InvalidMessage, match=reason):
        decode_product(js(**fields))


def test_dead_letter_keeps_the_raw_bytes():
    text = orjson.loads(dead_letter("cart", 3, 42, "why", b'{"a":1}'))
    assert text == {"source_topic": "cart", "partition": 3, "offset": 42, "error": "why", "raw": '{"a":1}'}
    binary = orjson.loads(dead_letter("cart", 0, 1, "why", b"\xff\x00"))
    assert base64.b64decode(binary["raw"]) == b"\xff\x00" and binary["raw_encoding"] == "base64"


def test_baskets_round_trip():
    basket = Basket("u", 5.0, (LineItem("a", 2, 1.5), LineItem("b", 1, None)))
    assert decode_basket(encode_basket(basket)) == basket


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_either_decode_or_raise_invalid_message(raw):
    for source in ("clickstream", "cart", "offer-feedback"):
        try:
            decode_event(source, raw)
        except InvalidMessage:
            pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["event_id", "type", "user_id", "product_id", "ts", "price",
                                        "quantity", "items", "offer_id", "category"]), json_values))
def test_random_objects_either_decode_or_raise_invalid_message(fields):
    raw = orjson.dumps(fields)
    for source in ("clickstream", "cart", "offer-feedback"):
        try:
            decode_event(source, raw)
        except InvalidMessage:
            pass
    try:
        decode_product(raw)
    except InvalidMessage:
        pass


def test_dead_letters_of_huge_messages_are_cut_and_say_so():
    record = orjson.loads(dead_letter("cart", 0, 1, "oversized", b"a" * 100 + "é".encode() * 50, raw_limit=101))
    assert record["raw"] == "a" * 100 and record["raw_truncated"] and record["raw_bytes"] == 200
    assert "raw_encoding" not in record
    binary = orjson.loads(dead_letter("cart", 0, 1, "x", b"\xff" * 10, raw_limit=4))
    assert binary["raw_encoding"] == "base64" and base64.b64decode(binary["raw"]) == b"\xff" * 4
