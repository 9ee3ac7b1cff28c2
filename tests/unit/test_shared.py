"""The shared learners: catalog updates validated with the settings' limits, each order learned once."""
from __future__ import annotations

import orjson

from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.codecs import encode_basket
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.shared_learning import SharedLearning


def shared() -> SharedLearning:
    return SharedLearning(Settings.from_env({"NEXTOFFER_MAX_ID_LENGTH": "8"}), OfferEngine(OfferRules()))


def test_a_replayed_order_is_learned_once():
    s = shared()
    order = encode_basket(Basket("u1", 1.0, (LineItem("tea", 1, 5.0), LineItem("pot", 1, 30.0)), (), "e1"))
    s.apply(False, order)
    learned = s.engine.bought._orders
    s.apply(False, order)
    assert s.applied["baskets"] == 1 and s.applied["replayed"] == 1
    assert s.engine.bought._orders == learned > 0


def test_another_shoppers_order_with_the_same_event_id_still_counts():
    s = shared()
    for user in ("u1", "u2"):
        s.apply(False, encode_basket(Basket(user, 1.0, (LineItem("tea", 1, 5.0),), (), "e1")))
    assert s.applied["baskets"] == 2


def test_catalog_updates_use_the_configured_limits():
    s = shared()
    s.apply(True, orjson.dumps({"product_id": "much-too-long-id", "price": 5.0}))
    s.apply(True, orjson.dumps({"product_id": "ok", "price": 5.0}))
    assert s.applied == {**s.applied, "catalog": 1, "skipped": 1}
    assert "ok" in s.engine.catalog and "much-too-long-id" not in s.engine.catalog
