"""A steady, reproducible stream of shopper events for the fault tests, and what it must produce.

The expected per-shopper state is computed directly from the input log with the pure
core (:class:`nextoffer.models.shopper.ShopperState`), so a test can compare it with what the
workers persisted in the state table's changelog, field by field.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Callable, Optional

import orjson
from kafka import KafkaConsumer, TopicPartition

from nextoffer.models.events import ShopperEvent
from nextoffer.models.shopper import ShopperState
from nextoffer.streams.io.admin import input_lag
from nextoffer.streams.io.codecs import decode_event
from nextoffer.streams.io.settings import Settings
from tests.integration.conftest import BOOTSTRAP, PARTITIONS

T0 = 1_700_000_000.0
# A phone ladder for an upsell that needs no learned data, and add-ons to fill carts with.
CATALOG = [
    {"product_id": "phone-1", "name": "Phone 128GB", "category": "electronics.smartphone",
     "price": 700.0, "margin": 0.2, "stock": 1000, "family": "phone", "tier": 1},
    {"product_id": "phone-2", "name": "Phone 256GB", "category": "electronics.smartphone",
     "price": 900.0, "margin": 0.2, "stock": 1000, "family": "phone", "tier": 2},
] + [{"product_id": f"addon-{n}", "name": f"Add-on {n}", "category": "electronics.accessories",
      "price": 10.0 + n, "margin": 0.5, "stock": 1000} for n in range(12)]
#: Fields that only applying events changes (offers shown depend on learned data and timing).
STATE_FIELDS = ("c", "v", "p", "d", "e", "n", "m", "f", "l")

Event = tuple[str, dict]


def shopper_log(users: int, per_user: int, seed: int = 7) -> list[Event]:
    """``users`` shoppers with ``per_user`` events each, interleaved at random, each shopper's own
    events in time order; every shopper's last event is a view of ``phone-1`` (an upsell)."""
    rng = random.Random(seed)
    queues: list[list[Event]] = []
    for u in range(users):
        user = f"shopper-{u:05d}"
        events = [_random_event(rng, user, n) for n in range(per_user - 1)]
        events.append(("clickstream", {"event_id": f"{user}-last", "type": "view", "user_id": user,
                                       "product_id": "phone-1", "price": 700.0}))
        queues.append(events)
    log: list[Event] = []
    live = [q for q in queues]
    while live:
        q = rng.choice(live)
        topic, event = q.pop(0)
        event["ts"] = T0 + len(log) * 0.01
        log.append((topic, event))
        if not q:
            live.remove(q)
    return log


def _random_event(rng: random.Random, user: str, n: int) -> Event:
    addon = f"addon-{rng.randrange(12)}"
    kind = rng.choices(["view", "add", "remove", "purchase"], weights=[4, 4, 1, 1])[0]
    base = {"event_id": f"{user}-{n}", "user_id": user}
    if kind == "view":
        return "clickstream", {**base, "type": "view", "product_id": addon}
    if kind == "purchase":
        return "cart", {**base, "type": "purchase", "order_id": f"{user}-o{n}"}
    return "cart", {**base, "type": kind, "product_id": addon, "quantity": rng.randint(1, 3),
                    "price": 10.0 + int(addon.split("-")[1])}


def expected_states(log: list[Event]) -> dict[str, dict]:
    """Each shopper's state after applying every event of ``log`` exactly once."""
    states: dict[str, ShopperState] = {}
    for topic, event in log:
        parsed: ShopperEvent = decode_event(topic, orjson.dumps(event))
        states.setdefault(parsed.user_id, ShopperState(parsed.user_id)).apply(parsed)
    return {user: _fields(s.to_dict()) for user, s in states.items()}


def _fields(state: dict) -> dict:
    # Kafka orders a shopper's events within a topic, not across clickstream and cart: the event
    # ids are compared as a set (every other field depends on one topic's order alone).
    return {k: sorted(state[k]) if k == "e" else state[k] for k in STATE_FIELDS}


def compare_states(expected: dict[str, dict], stored: dict[str, dict]) -> dict[str, int]:
    """Counts of shoppers whose stored state matches field by field, whose every event was applied
    exactly once (the same event ids, the same number of orders), and who are missing."""
    report = {"users": len(expected), "match": 0, "exactly_once": 0, "missing": 0}
    for user, want in expected.items():
        got = stored.get(user)
        if got is None:
            report["missing"] += 1
            continue
        got = _fields(got)
        report["match"] += got == want
        report["exactly_once"] += (got["e"], got["n"]) == (want["e"], want["n"])
    return report


def first_difference(expected: dict[str, dict], stored: dict[str, dict],
                     fields: tuple[str, ...] = STATE_FIELDS) -> Optional[str]:
    for user, want in expected.items():
        got = stored.get(user)
        if got is None:
            return f"{user}: no stored state"
        got = _fields(got)
        diff = {k: (want[k], got[k]) for k in fields if want[k] != got[k]}
        if diff:
            return f"{user}: expected vs stored {diff}"
    return None


def stored_states(prefix: str, app_id: str = "nextoffer") -> dict[str, dict]:
    """The latest value of every key of the shopper table's changelog, as a restarted worker would
    recover it."""
    topic = f"{prefix}{app_id}-shoppers-changelog"
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    states: dict[str, dict] = {}
    try:
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for batch in consumer.poll(timeout_ms=500).values():
                for msg in batch:
                    user = orjson.loads(msg.key)
                    if msg.value is None:
                        states.pop(user, None)
                    else:
                        states[user] = orjson.loads(msg.value)
    finally:
        consumer.close()
    return states


def group_lag(d) -> int:
    """Input events the deployment's workers have not committed yet."""
    return sum(input_lag(Settings.from_env(d.env)).values())


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> float:
    """Seconds it took for ``check()`` to hold; fails with ``what`` after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start


class SteadyProducer(threading.Thread):
    """Sends a log at a steady rate from a background thread (the load a fault hits)."""

    def __init__(self, deployment, log: list[Event], rate: float) -> None:
        super().__init__(daemon=True)
        self.deployment, self.log, self.rate = deployment, log, rate
        self.sent = 0
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        start = time.monotonic()
        try:
            for topic, event in self.log:
                self.deployment.send(topic, event, key=event["user_id"])
                self.sent += 1
                ahead = start + self.sent / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            self.deployment.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def wait_sent(self, count: int, timeout: float = 60) -> None:
        wait_until(lambda: self.sent >= count or not self.is_alive(), timeout, f"{count} events sent",
                   every=0.05)

    def finish(self, timeout: float = 120) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        if self.error:
            raise self.error
