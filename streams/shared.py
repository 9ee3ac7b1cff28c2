"""The learners every worker shares: the catalog and "bought together" from all shoppers.

Shopper events are split between workers by user, but complements must be learned
from everyone's orders and every worker needs the whole catalog. So each worker
also reads *all* partitions of the compacted ``catalog`` topic and of the internal
``nextoffer-baskets`` topic (like a Kafka Streams global table), from the start, with
a consumer outside the consumer group. Shopper events wait until it has caught up.
"""
from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from models.engine import OfferEngine
from streams.codecs import InvalidMessage, decode_basket, decode_product
from streams.settings import Settings
from streams.topics import BASKETS, CATALOG

log = logging.getLogger("nextoffer")


class SharedLearning:
    """Feeds one worker's engine from the catalog and baskets topics."""

    def __init__(self, settings: Settings, engine: OfferEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.ready = asyncio.Event()
        self.applied = {"catalog": 0, "baskets": 0, "skipped": 0}

    async def run(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    client_id=f"{s.topic(s.app_id)}-shared", max_poll_records=5000)
        await consumer.start()
        try:
            catalog, baskets = s.topic(CATALOG), s.topic(BASKETS)
            parts = [TopicPartition(t, p) for t in (catalog, baskets) for p in range(s.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            log.info("learning from the catalog and all orders so far (%d messages)",
                     sum(ends.values()))
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(tp.topic == catalog, record.value)
                if not self.ready.is_set() and await _caught_up(consumer, ends):
                    log.info("shared learners ready: %(catalog)d products, %(baskets)d orders",
                             self.applied)
                    self.ready.set()
        except asyncio.CancelledError:
            raise
        except KafkaError as exc:
            log.error("shared learning stopped: %s", exc)
            raise
        finally:
            await consumer.stop()

    def _apply(self, is_catalog: bool, value: bytes) -> None:
        try:
            if is_catalog:
                self.engine.update_product(decode_product(value))
                self.applied["catalog"] += 1
            else:
                self.engine.learn_basket(decode_basket(value))
                self.applied["baskets"] += 1
        except (InvalidMessage, ValueError, KeyError, TypeError):
            # Invalid catalog messages are dead-lettered by the catalog agent, once.
            self.applied["skipped"] += 1


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
