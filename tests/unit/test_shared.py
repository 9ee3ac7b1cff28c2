"""The shared learners: catalog updates validated with the settings' limits, each order learned once."""
from __future__ import annotations

import orjson

from kafka import TopicPartition

from nextoffer.models.acceptance import PROBE, AcceptanceModel
from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.codecs import encode_basket
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.shared_learning import ACCEPTANCE_KEY, SharedLearning


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


def _checkpoint(worker: str, accepted: bool, outcomes: int) -> bytes:
    model = AcceptanceModel()
    for _ in range(outcomes):
        model.learn(PROBE, accepted)
    return orjson.dumps({**model.snapshot(), "worker": worker})


def test_a_starting_worker_resumes_from_the_latest_checkpoint():
    s = SharedLearning(Settings.from_env({}), OfferEngine(OfferRules()), worker="me")
    s.resume(ACCEPTANCE_KEY, _checkpoint("w1", False, 50))
    s.resume(ACCEPTANCE_KEY, _checkpoint("w2", True, 200))
    assert s.engine.acceptance.updates == 200 and s.engine.acceptance.probe() > 0.8


def test_partitions_taken_over_bring_the_other_workers_learning_with_them():
    s = SharedLearning(Settings.from_env({}), OfferEngine(OfferRules()), worker="me")
    s.on_assigned({TopicPartition("clickstream", 0)})         # at start, before the learners are ready
    s.ready.set()
    for _ in range(20):
        s.engine.acceptance.learn(PROBE, False)
    mine = s.engine.acceptance.probe()
    s.resume(ACCEPTANCE_KEY, _checkpoint("me", False, 20))    # its own checkpoint: not a peer's
    s.resume(ACCEPTANCE_KEY, _checkpoint("w2", True, 300))    # a running worker keeps its model...
    assert s.engine.acceptance.probe() == mine
    assert s.on_assigned({TopicPartition("clickstream", 0)}) == 0, "no partition gained: nothing merged"
    # ...until the other worker's partitions come to it (the other worker stopped or scaled in)
    assert s.on_assigned({TopicPartition("clickstream", 0), TopicPartition("clickstream", 1)}) == 1
    assert s.engine.acceptance.probe() > 0.5 > mine, "the merged model leans to the one with more outcomes"
    assert s.engine.acceptance.updates == 300
    assert s.on_assigned({TopicPartition("clickstream", 0), TopicPartition("clickstream", 2)}) == 0, \
        "a checkpoint is taken in once"

