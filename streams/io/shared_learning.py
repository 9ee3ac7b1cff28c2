"""The learners every worker shares: the catalog, "bought together" and showcases from all shoppers.

Shopper events are split between workers by user, but complements must be learned
from everyone's orders and every worker needs the whole catalog. So each worker
also reads *all* partitions of the compacted ``catalog`` topic and of the internal
``nextoffer-baskets`` topic (like a Kafka Streams global table), from the start, with
a consumer outside the consumer group; likewise ``nextoffer-activity`` (each worker's view
counts, for the showcases) and ``nextoffer-models`` (checkpoints). Shopper events wait until it
has caught up.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Optional

import orjson

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from nextoffer.models.engine import OfferEngine
from nextoffer.streams.io.codecs import InvalidMessage, decode_basket, decode_product
from nextoffer.streams.io.security import aiokafka_client
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.topics import ACTIVITY, BASKETS, CATALOG, MODELS

log = logging.getLogger("nextoffer")


#: The key of the acceptance model's checkpoint on the models topic.
ACCEPTANCE_KEY = b"acceptance"

#: Order ids remembered to learn a replayed order once (a worker that crashed after publishing an
#: order but before saving the shopper's state publishes it again when the event is redelivered).
RECENT_ORDERS = 200_000

#: The topics every worker learns from, in full.
LEARNED_FROM = (CATALOG, BASKETS, MODELS, ACTIVITY)

#: Other workers whose latest acceptance checkpoint is remembered.
MAX_PEERS = 64


class SharedLearning:
    """Feeds one worker's engine from the catalog and baskets topics.

    If the connection fails it reconnects with a growing pause (1 s up to 30 s) and goes on from
    the offsets it had reached, so nothing is learned twice or skipped.
    """

    def __init__(self, settings: Settings, engine: OfferEngine, worker: str = "") -> None:
        self.settings = settings
        self.engine = engine
        self.worker = worker                # this worker's id, as its checkpoints carry it
        self.ready = asyncio.Event()
        self.applied = {"catalog": 0, "baskets": 0, "skipped": 0, "replayed": 0, "reconnects": 0,
                        "models": 0, "activity": 0}
        self.limits = settings.limits()
        self.positions: dict[TopicPartition, int] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        # The latest checkpoint of each other worker, and the partitions this worker owns.
        self.peers: OrderedDict[str, dict] = OrderedDict()
        self.owned: set = set()

    async def run(self) -> None:
        pause = 1.0
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                self.applied["reconnects"] += 1
                log.error("shared learning interrupted (%s: %s); reconnecting in %.0f s",
                          type(exc).__name__, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    async def _consume(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(**aiokafka_client(s), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    client_id=f"{s.topic(s.app_id)}-shared", max_poll_records=5000)
        await consumer.start()
        try:
            parts = [TopicPartition(s.topic(t), p) for t in LEARNED_FROM for p in range(s.partitions)]
            consumer.assign(parts)
            for tp in parts:
                if tp in self.positions:
                    consumer.seek(tp, self.positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            ends = await consumer.end_offsets(parts)
            if not self.ready.is_set():
                log.info("learning from the catalog and all orders so far (%d messages)",
                         sum(ends.values()))
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        self.dispatch(tp.topic, record.key, record.value)
                        self.positions[tp] = record.offset + 1
                if not self.ready.is_set() and await _caught_up(consumer, ends):
                    log.info("shared learners ready: %(catalog)d products, %(baskets)d orders",
                             self.applied)
                    if self.applied["models"]:
                        log.info("restored the acceptance model from its checkpoint: %d updates, "
                                 "P(accept) of the probe %.6f", self.engine.acceptance.updates,
                                 self.engine.acceptance.probe())
                    self.ready.set()
        finally:
            await consumer.stop()

    def dispatch(self, topic: str, key: Optional[bytes], value: Optional[bytes]) -> None:
        """One record of any of the topics in :data:`LEARNED_FROM` (full names)."""
        s = self.settings
        if topic == s.topic(MODELS):
            self.resume(key, value)
        elif topic == s.topic(ACTIVITY):
            self.observe_activity(value)
        else:
            self.apply(topic == s.topic(CATALOG), value)

    def observe_activity(self, value: Optional[bytes]) -> None:
        """A worker's view counts over a few seconds: every worker's showcases count them."""
        try:
            record = orjson.loads(value)
            views = {str(pid): int(n) for pid, n in record["views"].items()}
            self.engine.showcases.observe_views(views, float(record["ts"]))
            self.applied["activity"] += 1
        except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
            self.applied["skipped"] += 1

    def apply(self, is_catalog: bool, value: bytes) -> None:
        """Learn from one catalog or baskets record (an order replayed after a crash once)."""
        try:
            if is_catalog:
                self.engine.update_product(decode_product(value, self.limits))
                self.applied["catalog"] += 1
            else:
                basket = decode_basket(value)
                if self._seen(f"{basket.user_id}\x00{basket.event_id}" if basket.event_id else ""):
                    self.applied["replayed"] += 1
                    return
                self.engine.learn_basket(basket)
                self.applied["baskets"] += 1
        except (InvalidMessage, ValueError, KeyError, TypeError):
            # Invalid catalog messages are dead-lettered by the catalog agent, once.
            self.applied["skipped"] += 1

    def resume(self, key: Optional[bytes], value: Optional[bytes]) -> None:
        """A checkpoint of the acceptance model (and the learned cross-sell order). A starting worker resumes from the latest one;
        a running worker keeps its own model and remembers each other worker's latest checkpoint,
        to take it in when that worker's partitions come to it (:meth:`on_assigned`)."""
        if key != ACCEPTANCE_KEY or not value:
            return
        try:
            snapshot = orjson.loads(value)
            if not self.ready.is_set():
                self.engine.acceptance.restore(snapshot)
                if self.engine.ranker is not None and "ranker" in snapshot:
                    self.engine.ranker.restore(snapshot["ranker"])
                self.applied["models"] += 1
            elif snapshot.get("worker") != self.worker:
                self.peers.pop(snapshot.get("worker", ""), None)
                self.peers[snapshot.get("worker", "")] = snapshot
                if len(self.peers) > MAX_PEERS:
                    self.peers.popitem(last=False)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            log.warning("could not restore the acceptance model from its checkpoint: %s", exc)

    def on_assigned(self, partitions: set) -> int:
        """The consumer group gave this worker ``partitions``. If some are new to it, the outcomes
        of their shoppers were learned by other workers: their latest checkpoints are merged into
        this worker's model (:meth:`~nextoffer.models.acceptance.AcceptanceModel.merge`). Returns
        how many were merged."""
        gained, self.owned = set(partitions) - self.owned, set(partitions)
        if not gained or not self.ready.is_set() or not self.peers:
            return 0
        merged = 0
        for worker, snapshot in list(self.peers.items()):
            try:
                self.engine.acceptance.merge(snapshot)
                if self.engine.ranker is not None and "ranker" in snapshot:
                    self.engine.ranker.merge(snapshot["ranker"])
                merged += 1
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("could not merge the acceptance model of %s: %s", worker, exc)
        self.peers.clear()        # taken in; a later checkpoint of theirs is newer learning
        log.info("took over %d partitions: merged %d other workers' acceptance models (%d updates, "
                 "P(accept) of the probe %.6f)", len(gained), merged, self.engine.acceptance.updates,
                 self.engine.acceptance.probe())
        return merged

    def _seen(self, order_id: str) -> bool:
        if not order_id:
            return False
        if order_id in self._recent:
            return True
        self._recent[order_id] = None
        if len(self._recent) > RECENT_ORDERS:
            self._recent.popitem(last=False)
        return False


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
