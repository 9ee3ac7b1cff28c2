"""streams/io/schema/contract.schema.json matches what the code accepts and produces."""
import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem, Product, ShopperEvent
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState
from nextoffer.streams.io.codecs import InvalidMessage, dead_letter, decode_event, decode_product, encode_offer

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "streams/io/schema/contract.schema.json").read_text())
Draft202012Validator.check_schema(SCHEMA)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{name}"})


VALID = {
    "clickstream": [{"event_id": "e", "type": "view", "user_id": "u", "product_id": "p", "ts": 1.5},
                    {"event_id": 1, "type": "search", "user_id": 2, "query": "tea", "ts": "2024-01-01T00:00:00Z"}],
    "cart": [{"event_id": "e", "type": "add", "user_id": "u", "product_id": "p", "quantity": 2, "price": 3, "ts": 1},
             {"event_id": "e", "type": "purchase", "user_id": "u", "ts": 1,
              "items": [{"product_id": "a", "quantity": 1, "price": 2.5}]},
             {"event_id": "e", "type": "checkout", "user_id": "u", "ts": 1, "extra": "ignored"}],
    "offer_feedback": [{"event_id": "e", "type": "decline", "user_id": "u", "offer_id": "o", "ts": 1}],
    "catalog": [{"product_id": "p", "price": 9.5, "family": "f", "tier": 2, "stock": None, "margin": 0.3}],
}
INVALID = {
    "clickstream": [{"event_id": "e", "type": "view", "user_id": "u", "ts": 1},
                    {"event_id": "e", "type": "jump", "user_id": "u", "product_id": "p", "ts": 1}],
    "cart": [{"event_id": "e", "type": "add", "user_id": "u", "product_id": "p", "quantity": 0, "ts": 1},
             {"event_id": "e", "type": "add", "user_id": "u", "product_id": "p", "price": -1, "ts": 1},
             {"event_id": "e", "type": "remove", "user_id": "u", "ts": 1},
             {"type": "add", "user_id": "u", "product_id": "p", "ts": 1}],
    "offer_feedback": [{"event_id": "e", "type": "accept", "user_id": "u", "ts": 1}],
    "catalog": [{"product_id": "p", "price": 0}, {"product_id": "p", "price": 1, "margin": 2},
                {"product_id": "p", "price": 1, "stock": -1}],
}
TOPIC = {"clickstream": "clickstream", "cart": "cart", "offer_feedback": "offer-feedback"}


def decode(name: str, message: dict):
    raw = orjson.dumps(message)
    return decode_product(raw) if name == "catalog" else decode_event(TOPIC[name], raw)


@pytest.mark.parametrize("name,message", [(n, m) for n, ms in VALID.items() for m in ms])
def test_valid_messages_pass_the_schema_and_the_decoder(name, message):
    validator(name).validate(message)
    decode(name, message)


@pytest.mark.parametrize("name,message", [(n, m) for n, ms in INVALID.items() for m in ms])
def test_invalid_messages_fail_the_schema_and_the_decoder(name, message):
    assert not validator(name).is_valid(message)
    with pytest.raises(InvalidMessage):
        decode(name, message)


def test_offers_the_engine_makes_match_the_schema():
    engine = OfferEngine(OfferRules())
    engine.update_product(Product("a", 100.0, family="f", tier=1))
    engine.update_product(Product("b", 120.0, family="f", tier=2))
    for n in range(3):
        engine.learn_basket(Basket("x", 0.0, (LineItem("a"), LineItem("c", 1, 5.0))))
        engine.learn_basket(Basket("y", 0.0, (LineItem("d"),)))
    offers = [engine.process(ShopperState("u"), ShopperEvent(source, kind, "e", "u", 1.0, product_id="a"), 5.0).offer
              for source, kind in (("clickstream", "view"), ("cart", "add"))]
    assert {o.kind.value for o in offers} == {"upsell", "cross_sell"}
    for offer in offers:
        validator("offer").validate(orjson.loads(encode_offer(offer)))


def test_dead_letters_match_the_schema():
    for raw in (b"{bad", b"\xff\xfe", b"x" * 100):
        validator("dead_letter").validate(orjson.loads(dead_letter("cart", 1, 2, "why", raw, raw_limit=10)))
