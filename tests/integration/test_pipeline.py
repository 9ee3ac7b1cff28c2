"""The live pipeline against the real broker and Redis: events in, offers out, per the contract."""
from __future__ import annotations

import subprocess
import time

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from nextoffer.streams.io.admin import ensure_topics
from nextoffer.streams.io.settings import Settings
from tests.integration.conftest import BOOTSTRAP

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
CATALOG = [
    {"product_id": "s-128", "name": "S phone 128GB", "category": "electronics.smartphone", "brand": "S",
     "price": 700.0, "margin": 0.2, "stock": 10, "family": "s-phone", "tier": 1},
    {"product_id": "s-256", "name": "S phone 256GB", "category": "electronics.smartphone", "brand": "S",
     "price": 800.0, "margin": 0.2, "stock": 10, "family": "s-phone", "tier": 2},
    {"product_id": "case", "name": "S case", "category": "electronics.accessories.case", "price": 25.0,
     "margin": 0.5, "stock": 100},
    {"product_id": "glass", "name": "Screen glass", "category": "electronics.accessories.screen",
     "price": 12.0, "margin": 0.6, "stock": 100},
    {"product_id": "mug", "name": "Mug", "category": "home.kitchen", "price": 8.0, "stock": 100},
]
OFFER_FIELDS = {"offer_id", "user_id", "placement", "kind", "anchor_product_id", "items", "event_id",
                "generated_at", "expires_at", "policy", "propensity"}


def seed(d, history_orders: int = 4) -> int:
    """Create the deployment's topics, its catalog, and a little order history to learn from;
    returns the number of orders, for :meth:`Worker.wait_learned`."""
    ensure_topics(Settings.from_env(d.env))
    for product in CATALOG:
        d.send("catalog", product, key=product["product_id"])
    for n in range(history_orders):
        user = f"history-{n}"
        d.send("cart", {"event_id": f"h{n}", "type": "purchase", "user_id": user, "ts": T0 + n,
                        "items": [{"product_id": "s-128", "quantity": 1, "price": 700.0},
                                  {"product_id": "case", "quantity": 1, "price": 25.0},
                                  {"product_id": "glass", "quantity": 1, "price": 12.0}]}, key=user)
        d.send("cart", {"event_id": f"m{n}", "type": "purchase", "user_id": f"mug-{n}", "ts": T0 + n,
                        "product_id": "mug", "price": 8.0}, key=f"mug-{n}")
    d.flush()
    return 2 * history_orders


def check_offer(offer: dict) -> None:
    assert OFFER_FIELDS <= set(offer)
    assert offer["placement"] in ("product_page", "cart", "checkout", "post_purchase")
    assert offer["kind"] in ("upsell", "cross_sell")
    assert 1 <= len(offer["items"]) <= 3
    for item in offer["items"]:
        assert isinstance(item["product_id"], str) and isinstance(item["score"], float)
        assert item["reason"] and isinstance(item["reason"], str)
    assert offer["expires_at"] > offer["generated_at"] > 0
    assert 0 < offer["propensity"] <= 1


def test_events_in_offers_out_on_the_topic_and_in_redis(deployment, stack):
    d = deployment()
    orders = seed(d)
    d.start_worker().wait_ready().wait_learned(orders)   # cross-sells come from the history
    events = [
        ("clickstream", {"event_id": "a1", "type": "view", "user_id": "alice", "product_id": "s-128",
                         "price": 700.0, "ts": T0 + 100}),
        ("cart", {"event_id": "a2", "type": "add", "user_id": "alice", "product_id": "s-128",
                  "price": 700.0, "ts": T0 + 110}),
        ("cart", {"event_id": "a3", "type": "checkout", "user_id": "alice", "ts": T0 + 120}),
        ("cart", {"event_id": "a4", "type": "purchase", "user_id": "alice", "ts": T0 + 130,
                  "order_id": "o1", "unknown_extra": {"ignored": True}}),
    ]
    for topic, event in events:
        d.send(topic, event, key="alice")
    d.flush()

    seen_in_redis_first = []

    def redis_has_it(offer: dict) -> None:
        stored = stack.hget(f"{d.prefix}nbo:{offer['user_id']}", offer["placement"])
        seen_in_redis_first.append(stored is not None and
                                   orjson.loads(stored)["generated_at"] >= offer["generated_at"])

    def alices(got):
        return [o for o in got if o["user_id"] == "alice"]
    offers = alices(d.read("offers", until=lambda got: len(alices(got)) >= 4, on_message=redis_has_it))
    by_event = {o["event_id"]: o for o in offers}
    assert set(by_event) == {"a1", "a2", "a3", "a4"}
    for offer in offers:
        check_offer(offer)
        assert offer["user_id"] == "alice"
    assert all(seen_in_redis_first), "every offer must be readable in Redis before it is on the topic"

    view, add, checkout, purchase = (by_event[e] for e in ("a1", "a2", "a3", "a4"))
    assert (view["placement"], view["kind"], view["items"][0]["product_id"]) == ("product_page", "upsell", "s-256")
    assert view["items"][0]["reason"] == "same line, S phone 256GB, +14%"
    assert (add["placement"], add["kind"]) == ("cart", "cross_sell")
    assert {i["product_id"] for i in add["items"]} == {"case", "glass"}
    assert "often bought with S phone 128GB" in add["items"][0]["reason"]
    assert (checkout["placement"], checkout["anchor_product_id"]) == ("checkout", "s-128")
    assert purchase["placement"] == "post_purchase" and purchase["anchor_product_id"] == "s-128"

    # A storefront's read, with the stock Redis client.
    key = f"{d.prefix}nbo:alice"
    out = subprocess.run(["redis-cli", "-u", "redis://127.0.0.1:6379/0", "HGET", key, "cart"],
                         capture_output=True, text=True, check=True).stdout
    assert orjson.loads(out) == add
    assert set(stack.hgetall(key)) == {b"product_page", b"cart", b"checkout", b"post_purchase"}
    assert 0 < stack.ttl(key) <= 86_400

    # The decision log: each offer's shortlist and propensities, for nextoffer ope.
    decisions = alices(d.read("nextoffer-decisions", until=lambda got: len(alices(got)) >= 4, timeout=30))
    assert {r["offer_id"] for r in decisions} == {o["offer_id"] for o in offers}
    logged = {r["offer_id"]: r for r in decisions}[add["offer_id"]]
    assert [pid for pid, _ in logged["offered"]] == [i["product_id"] for i in add["items"]]
    assert {c[0] for c in logged["candidates"]} >= {"case", "glass"}


def test_malformed_messages_go_to_dead_letter_and_good_ones_keep_flowing(deployment):
    d = deployment()
    seed(d, history_orders=0)
    d.start_worker().wait_ready()
    bad = [
        (b"{not json", "not JSON"), (b"[]", "not a JSON object"), (b"\xff\xfe\xfd", "not JSON"),
        (orjson.dumps({"event_id": "x", "type": "teleport", "user_id": "u", "ts": 1}), "unknown type"),
        (orjson.dumps({"event_id": "x", "type": "view", "user_id": "u", "ts": 1}), "missing required field 'product_id'"),
        (orjson.dumps({"event_id": "x", "type": "view", "user_id": "u", "product_id": "p"}), "missing required field 'ts'"),
        (orjson.dumps({"event_id": "x", "type": "view", "user_id": "u", "product_id": "p", "ts": 1,
                       "price": "free"}), "field 'price' must be a number"),
        (orjson.dumps({"event_id": "x", "type": "view", "user_id": "u", "product_id": "p", "ts": 1,
                       "pad": "x" * 1_500_000}), "oversized"),
        (b"[" * 3000 + b"]" * 3000, "not JSON"),
    ]
    good_users = [f"good-{n}" for n in range(60)]
    sent_bad = 0
    for n, user in enumerate(good_users):
        for raw, _ in bad:
            d.send("clickstream", raw, key="u")
            sent_bad += 1
        d.send("clickstream", {"event_id": f"g{n}", "type": "view", "user_id": user, "product_id": "s-128",
                               "ts": T0 + n}, key=user)
    d.send("cart", {"event_id": "k", "type": "add", "user_id": "not-the-key", "product_id": "p", "ts": 1},
           key="someone")
    sent_bad += 1
    d.flush()

    offers = d.read("offers", until=lambda got: len(got) >= len(good_users))
    assert {o["user_id"] for o in offers} == set(good_users)
    letters = d.read("dead-letter", until=lambda got: len(got) >= sent_bad)
    assert len(letters) == sent_bad
    for letter in letters:
        assert {"source_topic", "partition", "offset", "error", "raw"} <= set(letter)
        assert letter["source_topic"] in (f"{d.prefix}clickstream", f"{d.prefix}cart")
        assert "\n" not in letter["error"] and letter["error"]
    errors = [letter["error"] for letter in letters]
    for _, reason in bad:
        assert sum(reason in e for e in errors) >= len(good_users)
    assert any("differs from user_id" in e for e in errors)
    offsets = {(x["source_topic"], x["partition"], x["offset"]) for x in letters}
    assert len(offsets) == sent_bad  # each bad message exactly once


def test_a_topic_prefix_isolates_two_deployments(deployment, stack):
    a, b = deployment(), deployment()
    for d in (a, b):
        seed(d, history_orders=0)
    wa, wb = a.start_worker(), b.start_worker()
    wa.wait_ready(), wb.wait_ready()
    a.send("clickstream", {"event_id": "x1", "type": "view", "user_id": "only-a", "product_id": "s-128",
                           "ts": T0}, key="only-a")
    b.send("clickstream", {"event_id": "x1", "type": "view", "user_id": "only-b", "product_id": "s-128",
                           "ts": T0}, key="only-b")
    a.flush(), b.flush()
    offers_a = a.read("offers", until=lambda got: len(got) >= 1)
    offers_b = b.read("offers", until=lambda got: len(got) >= 1)
    time.sleep(2)
    assert [o["user_id"] for o in a.read("offers", until=lambda got: False, timeout=3)] == ["only-a"]
    assert [o["user_id"] for o in offers_b] == ["only-b"] and [o["user_id"] for o in offers_a] == ["only-a"]
    assert stack.exists(f"{a.prefix}nbo:only-a") and not stack.exists(f"{a.prefix}nbo:only-b")
    assert stack.exists(f"{b.prefix}nbo:only-b") and not stack.exists(f"{b.prefix}nbo:only-a")


def test_two_workers_share_the_partitions_and_every_user_gets_offers(deployment):
    d = deployment()
    seed(d, history_orders=0)
    first = d.start_worker().wait_ready()
    second = d.start_worker().wait_ready()
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    group = d.prefix + "nextoffer"
    deadline = time.monotonic() + 60
    info: dict = {}
    while time.monotonic() < deadline:
        info = admin.describe_groups([group])[group]
        if len(info["members"]) == 2 and info["group_state"] == "Stable":
            break
        time.sleep(1)
    admin.close()
    assert len(info["members"]) == 2, f"expected 2 members in {group}: {info}"
    owned = [_input_partitions(member, d.prefix) for member in info["members"]]
    assert all(owned), f"each worker must own input partitions: {owned}"

    users = [f"shopper-{n}" for n in range(200)]
    for n, user in enumerate(users):
        d.send("clickstream", {"event_id": f"v{n}", "type": "view", "user_id": user, "product_id": "s-128",
                               "ts": T0 + n}, key=user)
    d.flush()
    offers = d.read("offers", until=lambda got: len({o["user_id"] for o in got}) >= len(users), timeout=90)
    assert {o["user_id"] for o in offers} == set(users)
    assert len(offers) == len(users)  # one offer per event, none twice
    for worker in (first, second):
        assert worker.proc.poll() is None


def _input_partitions(member: dict, prefix: str) -> list:
    assignment = member.get("member_assignment") or {}
    topics = assignment.get("assignment") or assignment.get("assigned_partitions") or []
    found = []
    for entry in topics:
        topic, partitions = (entry["topic"], entry["partitions"]) if isinstance(entry, dict) else entry
        if topic == f"{prefix}clickstream":
            found.extend(partitions)
    return found


def test_a_restarted_worker_recovers_its_shoppers(deployment):
    d = deployment()
    orders = seed(d)
    worker = d.start_worker().wait_ready().wait_learned(orders)
    d.send("cart", {"event_id": "b1", "type": "add", "user_id": "bob", "product_id": "s-128", "price": 700.0,
                    "ts": T0 + 200}, key="bob")
    d.flush()
    d.read("offers", until=lambda got: any(o["event_id"] == "b1" for o in got))
    worker.stop()
    d.start_worker().wait_ready()
    d.send("cart", {"event_id": "b2", "type": "checkout", "user_id": "bob", "ts": T0 + 210}, key="bob")
    d.flush()
    offers = d.read("offers", until=lambda got: any(o["event_id"] == "b2" for o in got))
    checkout = next(o for o in offers if o["event_id"] == "b2")
    # The checkout offer is anchored on the cart the first worker built: the state survived.
    assert checkout["placement"] == "checkout" and checkout["anchor_product_id"] == "s-128"


def _create(d, counts: dict) -> None:
    from kafka.admin import NewTopic
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(d.prefix + name, n, 1) for name, n in counts.items()])
    finally:
        admin.close()


def test_a_worker_adopts_the_partition_count_of_existing_topics_and_refuses_topics_that_disagree(deployment):
    # The input topics exist already, made by the store's producers with 4 partitions; the worker
    # is started without NEXTOFFER_PARTITIONS (default 8).
    d = deployment()
    _create(d, {"clickstream": 4, "cart": 4, "offer-feedback": 4})
    env = {k: v for k, v in d.env.items() if k != "NEXTOFFER_PARTITIONS"}
    d.env = env
    worker = d.start_worker().wait_ready()
    d.send("catalog", {"product_id": "s-128", "price": 700.0, "family": "s", "tier": 1}, key="s-128")
    d.send("catalog", {"product_id": "s-256", "price": 800.0, "family": "s", "tier": 2}, key="s-256")
    d.flush()
    time.sleep(1.0)
    d.send("clickstream", {"event_id": "v1", "type": "view", "user_id": "u1", "product_id": "s-128",
                           "ts": 1_700_000_000}, key="u1")
    d.flush()
    offer = d.read("offers", until=lambda got: len(got) >= 1)[0]
    assert offer["event_id"] == "v1" and offer["items"][0]["product_id"] == "s-256"
    assert "topics have 4 partitions: using 4" in worker.text()
    # Topics that disagree with each other: refused, with their counts.
    odd = deployment()
    _create(odd, {"clickstream": 4, "cart": 2})
    odd.env = {k: v for k, v in odd.env.items() if k != "NEXTOFFER_PARTITIONS"}
    refused = odd.start_worker()
    refused.proc.wait(60)
    assert refused.proc.returncode == 1
    assert "disagree on their partition count" in refused.text() and "cart has 2" in refused.text()
