"""``nextoffer evaluate --live``: the evaluation's replay through Kafka, a worker and Redis.

The same orders and protocol as :mod:`nextoffer.streams.tools.evaluation`, but every event goes to the
input topics of a fresh deployment (its own prefix) and every scored offer is read
back from Redis as a storefront would. The figure must match the offline one within
noise: the only difference is that a worker learns each order a few milliseconds
after it is processed (through the baskets topic) instead of at once.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import orjson
import redis

from nextoffer.streams.tools.evaluation import Order, Score
from nextoffer.streams.io.admin import ensure_topics, remove_deployment
from nextoffer.streams.io.producer import make_producer
from nextoffer.streams.io.readers import consumer_at_end
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.topics import DEAD_LETTER

#: Logs go beside the worker's own files (NEXTOFFER_DATA_DIR, .run/faust): under the working directory.
RUN = Path(".run")
#: How long to wait for an offer before counting "no offer" (the engine makes none for ~0.2%).
NO_OFFER_AFTER = 2.0


def _purchase(order: Order) -> dict:
    return {"event_id": f"{order.order_id}-p", "type": "purchase", "user_id": order.user_id,
            "ts": order.ts, "order_id": order.order_id,
            "items": [{"product_id": l.product_id, "quantity": l.quantity, "price": l.price}
                      for l in order.lines]}


def _add(order: Order) -> dict:
    first = order.lines[0]
    return {"event_id": f"{order.order_id}-a", "type": "add", "user_id": order.user_id, "ts": order.ts,
            "product_id": first.product_id, "quantity": first.quantity, "price": first.price}


def run_live(settings: Settings, orders: list[Order], warm_up: float = 0.8, k: int = 3,
             progress: Optional[Callable[[int, int], None]] = None,
             env: Optional[dict[str, str]] = None) -> tuple[Score, dict]:
    """Replay ``orders`` live; ``env`` adds to the worker's environment (its settings)."""
    prefix = f"eval-{uuid.uuid4().hex[:6]}."
    s = dataclasses.replace(settings, topic_prefix=prefix)
    ensure_topics(s)
    log = RUN / f"{prefix}worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = subprocess.Popen([sys.executable, "-m", "nextoffer.streams.ops.cli", "worker"],
                              env={**os.environ, **(env or {}), "NEXTOFFER_TOPIC_PREFIX": prefix},
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    producer, client = make_producer(s), redis.Redis.from_url(s.redis_url)
    score, started = Score("nextoffer, configured rules, live pipeline"), time.perf_counter()
    try:
        _wait_ready(worker, log)
        first_scored = int(len(orders) * warm_up)
        history: dict[str, set] = {}
        for n, order in enumerate(orders):
            if n >= first_scored and len(order.lines) >= 2:
                offered = _offer_for(producer, client, s, _add(order))
                score.count(offered[:k], order.products[1:], history.get(order.user_id, set()))
            history.setdefault(order.user_id, set()).update(order.products)
            producer.send(s.topic("cart"), key=order.user_id, value=_purchase(order))
            if n == first_scored - 1:
                _barrier(producer, s)  # warm-up learned before scoring starts
            if progress:
                progress(n + 1, len(orders))
        producer.flush()
    finally:
        producer.close()
        if worker.poll() is None:
            os.killpg(worker.pid, 15)
            worker.wait(60)
        remove_deployment(s, client)  # a measurement, not a deployment
    return score, {"prefix": prefix, "seconds": round(time.perf_counter() - started, 1)}


def _offer_for(producer, client: redis.Redis, s: Settings, add: dict) -> list[str]:
    producer.send(s.topic("cart"), key=add["user_id"], value=add)
    producer.flush()
    deadline = time.monotonic() + NO_OFFER_AFTER
    key = s.redis_key(add["user_id"])
    while time.monotonic() < deadline:
        raw = client.hget(key, "cart")
        if raw:
            offer = orjson.loads(raw)
            if offer["event_id"] == add["event_id"]:
                return [item["product_id"] for item in offer["items"]]
        time.sleep(0.001)
    return []


def _barrier(producer, s: Settings, timeout: float = 600) -> None:
    """Wait until the worker has processed everything sent so far, on every partition.

    One unusable marker message per partition of the cart topic: each always ends up in
    the dead-letter topic, after everything sent to its partition before it.
    """
    token = uuid.uuid4().hex
    consumer = consumer_at_end(s, (DEAD_LETTER,))
    for p in range(s.partitions):
        producer.send(s.topic("cart"), key=f"barrier-{p}", value=f"barrier {token} {p}".encode(), partition=p)
    producer.flush()
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < s.partitions and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                seen.update(m.value.decode() for m in batch if token.encode() in m.value)
    finally:
        consumer.close()
    if len(seen) < s.partitions:
        raise TimeoutError("the worker did not catch up with the warm-up orders")
    time.sleep(1.0)  # and the shared learners a moment to read the last baskets


def _wait_ready(worker: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Worker ready" in text and "shared learners ready" in text:
            return
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited; see {log}")
        time.sleep(0.2)
    raise TimeoutError(f"the worker was not ready in {timeout:.0f} s; see {log}")
