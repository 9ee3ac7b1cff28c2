"""streams/io/schema/asyncapi.yaml describes the topics the code uses, with examples the code accepts."""
import json
from pathlib import Path

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator

from nextoffer.streams.io import topics as names  # the contract's topic names
from nextoffer.streams.io.codecs import decode_event, decode_product

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "streams" / "io" / "schema"
DOC = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
CONTRACT = json.loads((SCHEMA_DIR / "contract.schema.json").read_text())
TOPICS = {names.CLICKSTREAM, names.CART, names.CATALOG, names.FEEDBACK, names.OFFERS, names.DEAD_LETTER}


def payload_validator(message: dict) -> Draft202012Validator:
    ref = message["payload"]["$ref"]
    file, pointer = ref.split("#")
    assert file == "contract.schema.json" and pointer.startswith("/$defs/")
    name = pointer.split("/")[-1]
    assert name in CONTRACT["$defs"], f"{ref} points to nothing"
    return Draft202012Validator({**CONTRACT, "$ref": f"#/$defs/{name}"})


def test_channels_are_exactly_the_contract_topics():
    assert DOC["asyncapi"].startswith("3.")
    assert {c["address"] for c in DOC["channels"].values()} == TOPICS
    for op in DOC["operations"].values():
        channel = op["channel"]["$ref"].split("/")[-1]
        assert channel in DOC["channels"]
        topic = DOC["channels"][channel]["address"]
        assert op["action"] == ("receive" if topic in (names.OFFERS, names.DEAD_LETTER) else "send")


MESSAGES = [(name, m) for name, m in DOC["components"]["messages"].items()]


@pytest.mark.parametrize("name,message", MESSAGES, ids=[n for n, _ in MESSAGES])
def test_every_example_validates_and_inputs_are_accepted_by_the_decoder(name, message):
    validator = payload_validator(message)
    topic = next(c["address"] for c in DOC["channels"].values()
                 if any(ref["$ref"].endswith("/" + name) for ref in c["messages"].values()))
    assert message["examples"], f"{name} has no example"
    for example in message["examples"]:
        validator.validate(example["payload"])
        raw = orjson.dumps(example["payload"])
        if topic == names.CATALOG:
            assert decode_product(raw).product_id == example["key"]
        elif topic in names.SHOPPER_INPUTS:
            assert decode_event(topic, raw).user_id == example["key"]


def test_openapi_document_refs_resolve_and_the_offer_example_validates():
    import re
    from nextoffer.streams.ops.openapi import document
    from nextoffer.streams.io.settings import Settings
    doc = document(Settings())
    text = json.dumps(doc)
    schemas = doc["components"]["schemas"]
    for ref in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert ref in schemas, f"dangling $ref {ref}"
    offer_example = DOC["components"]["messages"]["offer"]["examples"][0]["payload"]
    as_defs = json.loads(text.replace("#/components/schemas/", "#/$defs/"))["components"]["schemas"]
    Draft202012Validator({"$defs": as_defs, "$ref": "#/$defs/offer"}).validate(offer_example)
    feedback = DOC["components"]["messages"]["offer_feedback"]["examples"][0]["payload"]
    request = {k: v for k, v in feedback.items() if k not in ("event_id", "ts")}
    Draft202012Validator({"$defs": as_defs, "$ref": "#/$defs/feedback_request"}).validate(request)
