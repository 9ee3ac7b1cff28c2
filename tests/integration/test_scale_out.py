"""Partitioned learning against the real broker and Redis: two workers split the "bought
together" counting, each knows every pair through the complements topic, and a worker that
takes over a killed one's partitions counts the same pairs as one worker counting everything."""
from __future__ import annotations

import random
import re
import signal

import orjson
import pytest

from nextoffer.models.engine import OfferEngine
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.admin import ensure_topics
from nextoffer.streams.io.codecs import decode_basket
from nextoffer.streams.io.settings import Settings
from tests.integration.steady import CATALOG, T0, wait_until

pytestmark = pytest.mark.integration

FAST = {"NEXTOFFER_COMPLEMENTS_INTERVAL": "1", "NEXTOFFER_SESSION_TIMEOUT": "10",
        "NEXTOFFER_STALL_TIMEOUT": "5", "NEXTOFFER_STALL_RESTART": "45"}
ADDONS = [p["product_id"] for p in CATALOG if p["product_id"].startswith("addon-")]


def send_orders(d, first: int, count: int, seed: int) -> None:
    """``count`` orders of 2 to 5 add-ons, each by its own shopper (spread over all partitions):
    adds, then a purchase."""
    rng = random.Random(seed)
    for n in range(first, first + count):
        user, ts = f"buyer-{n:04d}", T0 + 60 * n
        group = rng.randrange(3)      # three families of add-ons bought together, and some noise
        lines = rng.sample(ADDONS[4 * group:4 * group + 4], rng.randint(2, 4)) + rng.sample(ADDONS, 1)
        for i, pid in enumerate(dict.fromkeys(lines)):
            d.send("cart", {"event_id": f"{user}-a{i}", "type": "add", "user_id": user, "product_id": pid,
                            "quantity": 1, "price": 10.0 + int(pid.split("-")[1]), "ts": ts + i}, key=user)
        d.send("cart", {"event_id": f"{user}-p", "type": "purchase", "user_id": user,
                        "order_id": f"{user}-o", "ts": ts + 10}, key=user)
    d.flush()


def takeovers(worker) -> int:
    """How many times the worker has taken over its learning partitions (each rebalance)."""
    return worker.text().count("counting the pairs of learning partitions")


def statuses(d) -> dict[str, dict]:
    """Each running worker's latest status snapshot (the dashboard's), by worker id."""
    keys = d.redis.keys(Settings.from_env(d.env).status_key("*"))
    return {k.decode().rsplit(":", 1)[-1]: orjson.loads(d.redis.get(k)) for k in keys if d.redis.get(k)}


def expected(d) -> tuple[int, list]:
    """Pair updates and the strongest pairs of one engine that counts every order itself, once."""
    engine, seen = OfferEngine(OfferRules()), set()
    for record in d.read("nextoffer-baskets", until=lambda got: False, timeout=5):
        basket = decode_basket(orjson.dumps(record))
        if (basket.user_id, basket.event_id) not in seen:  # published again after the kill: learned once
            seen.add((basket.user_id, basket.event_id))
            engine.learn_basket(basket)
    return engine.tally["updates.pairs"], [[c.anchor_id, c.product_id, c.attachment_rate, c.lift]
                                           for c in engine.bought.strongest_pairs(10)]


def settled(d, workers: int, orders: int):
    """The snapshots once ``workers`` workers have learned ``orders`` orders and publish the same
    strongest pairs (every row shared)."""
    def check():
        found = statuses(d)
        return (len(found) == workers and all(s["learned"]["orders"] >= orders for s in found.values())
                and len({orjson.dumps(s["complements"]) for s in found.values()}) == 1)
    try:
        wait_until(check, 90, f"{workers} workers to learn {orders} orders and share their rows")
    except AssertionError as exc:
        seen = {w: (s["learned"], s["complements"][:3]) for w, s in statuses(d).items()}
        raise AssertionError(f"{exc}; workers' orders learned and strongest pairs: {seen}") from None
    return statuses(d)


def test_two_workers_split_the_pair_counting_and_a_take_over_counts_the_rest(deployment):
    d = deployment()
    ensure_topics(Settings.from_env(d.env))
    for product in CATALOG:
        d.send("catalog", product, key=product["product_id"])
    # The first worker shares its rows only every 20 s: it dies with orders counted, not shared.
    first = d.start_worker(**{**FAST, "NEXTOFFER_COMPLEMENTS_INTERVAL": "20"}).wait_ready()
    second = d.start_worker(**FAST).wait_ready()
    wait_until(lambda: takeovers(first) >= 2 and takeovers(second) >= 1 and len(statuses(d)) == 2, 60,
               "both workers to count their partitions' pairs")
    send_orders(d, 0, 200, seed=1)
    found = settled(d, 2, 200)
    total, strongest = expected(d)
    owned = [s["learned"]["learning_partitions"] for s in found.values()]
    assert sorted(sum(owned, [])) == [0, 1, 2, 3] and all(owned)    # each counts its own partitions
    updates = [s["tally"]["updates.pairs"] for s in found.values()]
    print(f"\n[scale-out] pair updates per worker {updates}, one worker alone {total}")
    assert sum(updates) == total                       # every pair counted once, by its owner
    assert all(0.2 * total < n < 0.8 * total for n in updates)
    assert all(s["complements"] == strongest for s in found.values())

    # More orders, then the first worker dies (its latest rows maybe never published): the
    # second takes its partitions over from the shared rows and counts only what they miss.
    send_orders(d, 200, 100, seed=2)
    wait_until(lambda: all(s["learned"]["orders"] >= 300 for s in statuses(d).values()), 60,
               "both workers to learn the new orders")
    first.stop(signal.SIGKILL)
    wait_until(lambda: takeovers(second) >= 2, 90, "the second worker to take the partitions over")
    d.redis.delete(*d.redis.keys(Settings.from_env(d.env).status_key("*")))   # snapshots from before it
    (only,) = settled(d, 1, 300).values()
    total, strongest = expected(d)
    counted_again = int(re.findall(r"(\d+) orders counted again", second.text())[-1])
    print(f"[scale-out] take-over: {counted_again} orders counted again, pair updates "
          f"{only['tally']['updates.pairs']} of {total}")
    assert counted_again > 0                            # the rows shared last missed them
    assert only["complements"] == strongest
    assert only["tally"]["updates.pairs"] < total       # it did not count the first worker's share again
