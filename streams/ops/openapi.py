"""The OpenAPI 3.1 document of ``nextoffer serve``, built on the contract's JSON Schema.

>>> from nextoffer.streams.io.settings import Settings
>>> doc = document(Settings())
>>> sorted(doc["paths"]), doc["components"]["schemas"]["offer"]["properties"]["kind"]["enum"]
(['/feedback', '/healthz', '/offers/{user_id}'], ['upsell', 'cross_sell'])
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from nextoffer.streams.io.settings import Settings


@lru_cache(maxsize=1)
def contract_schema() -> dict:
    """streams/io/schema/contract.schema.json: every message of the contract."""
    return json.loads(resources.files("nextoffer.streams.io").joinpath("schema/contract.schema.json").read_text("utf-8"))


def _components() -> dict:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs point into components instead of $defs.
    text = json.dumps(contract_schema()["$defs"]).replace("#/$defs/", "#/components/schemas/")
    return json.loads(text)


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}}


def document(settings: Settings) -> dict:
    schemas = _components()
    feedback_in = {**schemas["offer_feedback"], "required": ["type", "user_id", "offer_id"],
                   "description": "An offer-feedback event; event_id and ts are filled in when left out."}
    return {
        "openapi": "3.1.0",
        "info": {"title": "nextoffer HTTP lookup and feedback", "version": "1",
                 "description": "Read a shopper's current offers and report what the shopper did with "
                                "them, without a Redis or Kafka client. The same offer JSON as the "
                                "Redis lookup and the offers topic."},
        "servers": [{"url": f"http://{settings.http_host}:{settings.http_port}"}],
        "security": [{"bearer": []}],
        "components": {"schemas": {**schemas, "feedback_request": feedback_in},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "NEXTOFFER_HTTP_TOKEN"}}},
        "paths": {
            "/offers/{user_id}": {"get": {
                "summary": "The shopper's current offers",
                "description": "Without placement: an object mapping each placement to its offer. With "
                               "placement: that offer. Offers expire with the shopper's lookup key.",
                "parameters": [
                    {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "placement", "in": "query", "required": False,
                     "schema": schemas["offer"]["properties"]["placement"]}],
                "responses": {
                    "200": {"description": "The offer, or offers by placement", "content": {
                        "application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/offer"},
                            {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/offer"}}]}}}},
                    "400": _error("Unknown placement"), "401": _error("Missing or wrong token"),
                    "404": _error("No current offer")}}},
            "/feedback": {"post": {
                "summary": "Report an impression, click, accept, decline or dismiss of an offer",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/feedback_request"}}}},
                "responses": {
                    "202": {"description": "Written to the offer-feedback topic", "content": {
                        "application/json": {"schema": {"type": "object", "required": ["event_id", "topic"],
                                                        "properties": {"event_id": {"type": "string"},
                                                                       "topic": {"type": "string"}}}}}},
                    "400": _error("Not a valid offer-feedback event (the reason says which field)"),
                    "401": _error("Missing or wrong token"),
                    "503": _error("Kafka unreachable; retry later")}}},
            "/healthz": {"get": {
                "summary": "Whether the service reaches Redis, and how many workers report",
                "security": [],
                "responses": {"200": {"description": "Healthy"}, "503": {"description": "Redis unreachable"}}}},
        },
    }
