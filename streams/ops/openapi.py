"""The OpenAPI 3.1 document of ``nextoffer serve``, built on the contract's JSON Schema.

>>> from nextoffer.streams.io.settings import Settings
>>> doc = document(Settings())
>>> sorted(doc["paths"]), doc["components"]["schemas"]["offer"]["properties"]["kind"]["enum"]
(['/feedback', '/healthz', '/offers/{user_id}', '/showcases/{kind}'], ['upsell', 'cross_sell'])
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from nextoffer.models.showcases import KINDS
from nextoffer.streams.io.settings import Settings

#: One showcase window as ``GET /showcases/{kind}`` returns it.
SHOWCASE = {
    "type": "object", "required": ["kind", "source", "personalised", "items"],
    "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "product": {"type": ["string", "null"]}, "user": {"type": ["string", "null"]},
        "source": {"type": "string", "enum": ["product", "store", "none"],
                   "description": "The product's window, the store's (a popularity window of a product "
                                  "not seen yet), or none (similar or bought together of an unknown product)."},
        "personalised": {"type": "boolean", "description": "Reordered and filtered for the user's profile"},
        "items": {"type": "array", "items": {
            "type": "object", "required": ["product_id", "score"],
            "properties": {"product_id": {"type": "string"}, "score": {"type": "number"},
                           "category": {"type": "string"}, "brand": {"type": "string"},
                           "price": {"type": "number"}}}}}}


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
        "components": {"schemas": {**schemas, "feedback_request": feedback_in, "showcase": SHOWCASE},
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
            "/showcases/{kind}": {"get": {
                "summary": "A recommendation window: best sellers, most viewed, trending, similar products, "
                           "frequently bought together",
                "description": "For a product's page (popularity windows keep to its category), else the "
                               "store's; with user, personalised: the shopper's category and brand affinities "
                               "reorder it and nothing in their cart, just bought or declined appears. The "
                               "token is needed only with user.",
                "security": [{}, {"bearer": []}],
                "parameters": [
                    {"name": "kind", "in": "path", "required": True, "schema": {"type": "string", "enum": list(KINDS)}},
                    {"name": "product", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "user", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
                "responses": {
                    "200": {"description": "The window, best first", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/showcase"}}}},
                    "400": _error("Unknown kind, or a bad limit"),
                    "401": _error("A user was named without the right token")}}},
            "/healthz": {"get": {
                "summary": "Whether the service reaches Redis, and how many workers report",
                "security": [],
                "responses": {"200": {"description": "Healthy"}, "503": {"description": "Redis unreachable"}}}},
        },
    }
