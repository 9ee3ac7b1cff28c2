"""The learners every worker shares: the catalog, "bought together" and showcases from all shoppers.

Shopper events are split between workers by user, but complements must be learned
from everyone's orders and every worker needs the whole catalog. So each worker
also reads *all* partitions of the compacted ``catalog`` topic and of the internal
``nextoffer-baskets`` topic (like a Kafka Streams global table), from the start, with
a consumer outside the consumer group; likewise ``nextoffer-activity`` (each worker's view
counts, for the showcases) and ``nextoffer-models`` (checkpoints). Shopper events wait until it
has caught up.

With partitioned learning (the default) a worker counts the "bought together" pairs of its own
partitions' anchors only, and adopts the others' rows from ``nextoffer-complements``
(:mod:`nextoffer.streams.io.pair_partitions`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Awaitable, Callable, Optional

import orjson

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from nextoffer.models.engine import OfferEngine
from nextoffer.streams.io.codecs import InvalidMessage, decode_basket, decode_product
from nextoffer.streams.io.pair_partitions import MARKER, PairPartitions, Replay
from nextoffer.streams.io.security import aiokafka_client
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.topics import ACTIVITY, BASKETS, CATALOG, COMPLEMENTS, MODELS

log = logging.getLogger("nextoffer")


#: The key of the acceptance model's checkpoint on the models topic.
ACCEPTANCE_KEY = b"acceptance"

#: Order ids remembered to learn a replayed order once (a worker that crashed after publishing an
#: order but before saving the shopper's state publishes it again when the event is redelivered).
RECENT_ORDERS = 200_000

#: The topics every worker learns from, in full.
LEARNED_FROM = (CATALOG, BASKETS, MODELS, ACTIVITY, COMPLEMENTS)

#: Sends one record (key, value, partition); returns the delivery to await.
SendTo = Callable[[bytes, bytes, int], Awaitable[Awaitable]]

#: Other workers whose latest acceptance checkpoint is remembered.
MAX_PEERS = 64


class SharedLearning:
    """Feeds one worker's engine from the catalog and baskets topics.

    If the connection fails it reconnects with a growing pause (1 s up to 30 s) and goes on from
    the offsets it had reached, so nothing is learned twice or skipped.
    """

    def __init__(self, settings: Settings, engine: OfferEngine, worker: str = "",
                 partitioned: Optional[bool] = None) -> None:
        self.settings = settings
        self.engine = engine
        self.worker = worker                # this worker's id, as its checkpoints carry it
        self.ready = asyncio.Event()
        self.applied = {"catalog": 0, "baskets": 0, "skipped": 0, "replayed": 0, "reconnects": 0,
                        "models": 0, "activity": 0, "complements": 0, "counted_again": 0}
        partitioned = settings.partitioned_learning if partitioned is None else partitioned
        #: Which anchors' pairs this worker counts (None: all of them, on every worker).
        self.pairs = PairPartitions(engine, settings.partitions) if partitioned else None
        self._assigned: Optional[set[int]] = None     # learning partitions given, not yet taken over
        self._assigned_ends: Optional[dict] = None    # the complements topic's ends when they were given
        self._given = False                           # partitions were given once (maybe none)
        #: Called with each anchor whose row another worker shared (the showcase writer's hook).
        self.on_row: Optional[Callable[[str], None]] = None
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
                        self.dispatch(tp.topic, record.key, record.value, tp.partition, record.offset)
                        self.positions[tp] = record.offset + 1
                await self._take_over(consumer)
                if not self.ready.is_set() and await _caught_up(consumer, ends) and self._settled():
                    log.info("shared learners ready: %(catalog)d products, %(baskets)d orders",
                             self.applied)
                    if self.applied["models"]:
                        log.info("restored the acceptance model from its checkpoint: %d updates, "
                                 "P(accept) of the probe %.6f", self.engine.acceptance.updates,
                                 self.engine.acceptance.probe())
                    self.ready.set()
        finally:
            await consumer.stop()

    def dispatch(self, topic: str, key: Optional[bytes], value: Optional[bytes],
                 partition: int = 0, offset: int = -1) -> None:
        """One record of any of the topics in :data:`LEARNED_FROM` (full names)."""
        s = self.settings
        if topic == s.topic(MODELS):
            self.resume(key, value)
        elif topic == s.topic(ACTIVITY):
            self.observe_activity(value)
        elif topic == s.topic(COMPLEMENTS):
            self.adopt(key, value)
        else:
            self.apply(topic == s.topic(CATALOG), value, partition, offset)

    def adopt(self, key: Optional[bytes], value: Optional[bytes]) -> None:
        """A row of "bought together" counts another worker counts, or a partition's marker."""
        if self.pairs is None:
            return
        try:
            self.pairs.receive(key, value)
            self.applied["complements"] += 1
            if self.on_row is not None and key and not key.startswith(MARKER):
                self.on_row(key.decode())
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError):
            self.applied["skipped"] += 1

    def observe_activity(self, value: Optional[bytes]) -> None:
        """A worker's view counts over a few seconds: every worker's showcases count them."""
        try:
            record = orjson.loads(value)
            views = {str(pid): int(n) for pid, n in record["views"].items()}
            self.engine.showcases.observe_views(views, float(record["ts"]))
            self.applied["activity"] += 1
        except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
            self.applied["skipped"] += 1

    def apply(self, is_catalog: bool, value: bytes, partition: int = 0, offset: int = -1) -> None:
        """Learn from one catalog or baskets record (an order replayed after a crash once)."""
        try:
            if is_catalog:
                self.engine.update_product(decode_product(value, self.limits))
                self.applied["catalog"] += 1
            else:
                basket = decode_basket(value)
                if self._seen(f"{basket.user_id}\x00{basket.event_id}" if basket.event_id else ""):
                    self.applied["replayed"] += 1
                    if self.pairs is not None:
                        self.pairs.duplicates.add((partition, offset))   # not counted again either
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
        if self.pairs is not None:       # taken over once the complements topic is read to here
            self._assigned, self._assigned_ends = {tp.partition for tp in partitions}, None
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

    # -- partitioned "bought together" ------------------------------------------
    def _settled(self) -> bool:
        """Whether this worker counts the pairs of the partitions it was given (always, without
        partitioned learning)."""
        return self.pairs is None or (self._given and self._assigned is None and not self.pairs.restoring)

    def _basket_positions(self) -> list[int]:
        s = self.settings
        return [self.positions.get(TopicPartition(s.topic(BASKETS), p), 0) for p in range(s.partitions)]

    async def _take_over(self, consumer: AIOKafkaConsumer) -> None:
        """Once the complements topic is read to where it ended when partitions were given: count
        the new ones from here on, and count again the orders their rows do not include yet."""
        if self.pairs is None or self._assigned is None:
            return
        s = self.settings
        parts = [TopicPartition(s.topic(COMPLEMENTS), p) for p in range(s.partitions)]
        if self._assigned_ends is None:
            self._assigned_ends = await consumer.end_offsets(parts)
        if not await _caught_up(consumer, self._assigned_ends):
            return
        given, self._assigned, self._given = self._assigned, None, True
        self.pairs.give_up(self.pairs.owned - given)    # no revocation came for them
        await self._restore_rows(given - self.pairs.owned)
        starts, replay = self.pairs.take_over(given, self._basket_positions())
        await self._count_again(starts, replay)

    async def _restore_rows(self, gained: set[int]) -> None:
        """Read the rows of the learning partitions ``gained`` again, whole, from the start of
        their complements partitions to where this worker's reading of them has reached (the
        rows it adopted hold only what decisions use, and counting goes on from these)."""
        s, began, restored = self.settings, time.monotonic(), 0
        spans = {tp: (0, self.positions.get(tp, 0))
                 for tp in (TopicPartition(s.topic(COMPLEMENTS), p) for p in gained)}

        def restore(_tp: TopicPartition, record) -> None:
            nonlocal restored
            restored += self._restore_row(record.key, record.value, gained)

        await self._read_spans(spans, restore, "restore", "reading the rows of taken-over partitions")
        if gained:
            log.info("restored the full rows of learning partitions %s: %d rows (%.1f s)",
                     sorted(gained), restored, time.monotonic() - began)

    def _restore_row(self, key: Optional[bytes], value: Optional[bytes], gained: set[int]) -> bool:
        try:
            return self.pairs.restore(key, value, gained)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError):
            return False

    async def _count_again(self, starts: list[int], replay: Replay) -> None:
        """Count again, for the partitions taken over, the orders from ``starts`` to where this
        worker's counting of them began."""
        s, began, counted = self.settings, time.monotonic(), 0
        spans = {TopicPartition(s.topic(BASKETS), p): (start, stop)
                 for p, (start, stop) in enumerate(zip(starts, replay.stop))}

        def count(tp: TopicPartition, record) -> None:
            nonlocal counted
            anchors = replay.anchors(tp.partition, record.offset)
            if anchors is not None:
                counted += self._count_order_again(record.value, anchors)

        await self._read_spans(spans, count, "recount", "counting orders again")
        replay.done()
        self.applied["counted_again"] += counted
        log.info("counting the pairs of learning partitions %s: %d orders counted again (%.1f s)",
                 sorted(replay.gained), counted, time.monotonic() - began)

    async def _read_spans(self, spans: dict[TopicPartition, tuple[int, int]],
                          handle: Callable[[TopicPartition, object], None], role: str, what: str) -> None:
        """Hand ``handle`` each record of ``spans`` (partition: [start, stop) offsets) with a side
        consumer of its own. After a connection failure it goes on, with a growing pause, from
        the offsets it had reached, so no record is handled twice; a start below the log's
        first offset reads from that first offset."""
        s, pause = self.settings, 1.0
        todo = {tp: [start, stop] for tp, (start, stop) in spans.items() if start < stop}
        while todo:
            consumer = AIOKafkaConsumer(**aiokafka_client(s), group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest", max_poll_records=5000,
                                        client_id=f"{s.topic(s.app_id)}-{role}")
            try:
                await consumer.start()
                consumer.assign(list(todo))
                for tp, (start, _stop) in todo.items():
                    consumer.seek(tp, start)
                await self._read_todo(consumer, todo, handle)
            except (KafkaError, OSError) as exc:
                log.error("%s interrupted (%s: %s); going on in %.0f s", what, type(exc).__name__, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
            finally:
                await consumer.stop()

    @staticmethod
    async def _read_todo(consumer: AIOKafkaConsumer, todo: dict[TopicPartition, list[int]],
                         handle: Callable[[TopicPartition, object], None]) -> None:
        while todo:
            for tp, records in (await consumer.getmany(*todo, timeout_ms=200)).items():
                if not records:
                    continue
                span = todo[tp]     # only partitions still to read were asked for
                for record in records:
                    if record.offset < span[1]:
                        handle(tp, record)
                span[0] = records[-1].offset + 1
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp][1]:
                    del todo[tp]
                    consumer.pause(tp)

    def _count_order_again(self, value: Optional[bytes], anchors) -> int:
        try:
            self.engine.replay_pairs(decode_basket(value), anchors)
            return 1
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return 0

    async def publish_pairs(self, send: SendTo) -> int:
        """Publish the rows this worker changed, then its partitions' markers (once the rows are
        confirmed). Returns how many records were published."""
        if self.pairs is None:
            return 0
        return await self._publish(self.pairs.publication(self._basket_positions()), send)

    async def on_revoked(self, partitions: set, send: SendTo) -> None:
        """The group takes partitions away: their last rows and markers are published, and this
        worker stops counting them at once (its rows stay what it published)."""
        if self.pairs is None:
            return
        given_up = {tp.partition for tp in partitions} & self.pairs.owned
        records = self.pairs.publication(self._basket_positions())
        self.pairs.give_up(given_up)
        await self._publish(records, send)

    async def _publish(self, records: list, send: SendTo) -> int:
        rows = [r for r in records if not r[1].startswith(MARKER)]
        markers = [r for r in records if r[1].startswith(MARKER)]
        try:
            for part in (rows, markers):        # a marker only after the rows it covers
                deliveries = [await send(key, value, p) for p, key, value in part]
                await asyncio.gather(*deliveries)
        except Exception as exc:  # noqa: BLE001 - published again with the next round
            self.pairs.not_published(records)
            log.warning("could not publish the complements counted here: %s: %s", type(exc).__name__, exc)
            return 0
        return len(records)

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
