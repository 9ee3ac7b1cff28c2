"""What the agents do with one message, with every dependency passed in (so tests can too).

Events are applied a batch at a time. Order of effects for a batch: baskets topic -> Redis
(one round trip) -> offers topic -> dead-letter topic -> Kafka acknowledges them -> shopper
states written to the table (its changelog). Redis is written before the offer is published,
so a storefront that sees an offer on the topic can always read it from the lookup; a state
is saved only after everything the event produced is safe in Kafka.
"""
from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, MutableMapping, Optional

from redis.exceptions import RedisError

from nextoffer.models.engine import OfferEngine
from nextoffer.models.offer import Kind, Offer
from nextoffer.models.shopper import ShopperState
from nextoffer.streams.io.codecs import (InvalidMessage, Limits, dead_letter, decode_event, decode_product,
                            decode_state, encode_basket, encode_offer, encode_state)
from nextoffer.streams.io.figures import reason_label
from nextoffer.streams.io.store import OfferStore, OfferWrite

log = logging.getLogger("nextoffer")

Send = Callable[[Optional[bytes], bytes], Awaitable[Any]]
#: ``save(partition, user_id, state)``: writes a shopper's state to the table and its changelog.
SaveState = Callable[[int, str, bytes], Awaitable[None]]


@dataclass
class Outputs:
    """Where results go: each a coroutine ``send(key, value)`` that queues the record and returns
    its delivery (an awaitable, or None when there is nothing to wait for)."""

    offers: Send
    dead_letters: Send
    baskets: Send


@dataclass
class _Batch:
    """What the events applied since the last flush produced."""

    states: dict = field(default_factory=dict)          # user_id -> (partition, encoded state), latest
    offers: list = field(default_factory=list)          # (offer, payload, context)
    baskets: list = field(default_factory=list)         # (key, record)
    dead_letters: list = field(default_factory=list)    # (key, record)


class OfferWriter:
    """Writes offers to the store; while it is unreachable keeps the latest per user and placement.

    Nothing is dropped during an outage: pending writes are retried by :meth:`flush`
    (called on a timer), newest value winning. While the store is failing, a write
    only queues (at most one attempt per ``retry_every`` seconds), so an unreachable
    or hanging Redis does not slow the stream down.
    """

    def __init__(self, store: OfferStore, retry_every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.pending: dict[tuple[str, str], OfferWrite] = {}
        self.failing = False
        self.retry_every = retry_every
        self.clock = clock
        self._last_attempt = float("-inf")

    async def write(self, writes: list[OfferWrite]) -> bool:
        for w in writes:
            self.pending[(w[0], w[1])] = w
        if self.failing and self.clock() - self._last_attempt < self.retry_every:
            return False
        return await self.flush()

    async def flush(self) -> bool:
        if not self.pending:
            return True
        batch = list(self.pending.values())
        self._last_attempt = self.clock()
        try:
            await self.store.put_many(batch)
        except (RedisError, OSError) as exc:
            if not self.failing:
                log.warning("offer lookup unreachable, keeping the latest offers to retry: %s",
                            type(exc).__name__)
            self.failing = True
            return False
        for w in batch:
            if self.pending.get((w[0], w[1])) is w:
                del self.pending[(w[0], w[1])]
        if self.failing:
            log.warning("offer lookup reachable again; %d pending offers written", len(batch))
        self.failing = False
        return True


class ShopperPipeline:
    """Processes clickstream, cart and offer-feedback messages for the shoppers of this worker."""

    def __init__(self, engine: OfferEngine, shoppers: MutableMapping[str, Any], writer: OfferWriter,
                 outputs: Outputs, limits: Limits, prefix: str = "",
                 redis_key: Callable[[str], str] = lambda user: f"nbo:{user}",
                 clock: Callable[[], float] = time.time, save: Optional[SaveState] = None) -> None:
        self.engine = engine
        self.shoppers = shoppers
        self.save = save or self._set
        self.writer = writer
        self.outputs = outputs
        self.limits = limits
        self.prefix = prefix
        self.redis_key = redis_key
        self.clock = clock
        self.stats: Counter = Counter()
        self.dead_letters: Counter = Counter()      # by reason label
        self.upgrades: Counter = Counter()          # (anchor, product) of upsell offers, for the dashboard
        # What the pipeline is doing and on which record, for the logs when it seems stuck.
        self.stage = "idle"
        self.record: tuple = ()
        self._batch = _Batch()
        self._publishing = _Batch()

    def apply(self, topic: str, partition: int, offset: int, key: Optional[bytes],
              value: Optional[bytes], context: Any = None) -> None:
        """Apply one shopper event to its shopper's state and decide its offer, without waiting
        for anything; what it produced waits in the batch until :meth:`flush`. ``context`` comes
        back with the event's offer. The state is saved to the event's ``partition`` (the table's
        changelog partition is the input's)."""
        self.stage, self.record = "handling", (topic, partition, offset)
        source = topic[len(self.prefix):] if topic.startswith(self.prefix) else topic
        try:
            event = decode_event(source, value, self.limits)
            _check_key(key, event.user_id, "user_id")
        except InvalidMessage as exc:
            self.reject_later(topic, partition, offset, key, value, str(exc))
            return
        self.stats[f"events.{source}.{event.type}"] += 1
        # The newest state: this batch's, the one being published, or the table's.
        pending = self._batch.states.get(event.user_id) or self._publishing.states.get(event.user_id)
        raw = pending[1] if pending is not None else self.shoppers.get(event.user_id)
        shopper = decode_state(raw) if raw else ShopperState(event.user_id)
        outcome = self.engine.process(shopper, event, generated_at=self.clock())
        if not outcome.applied:
            self.stats["events.duplicate"] += 1
            return
        self._batch.states[event.user_id] = (partition, encode_state(shopper))
        if outcome.basket is not None:
            self._batch.baskets.append((key, encode_basket(outcome.basket)))
        if outcome.offer is None:
            self.stats[f"no_offer.{outcome.reason}"] += 1
            return
        self._batch.offers.append((outcome.offer, encode_offer(outcome.offer), context))

    async def flush(self) -> list[tuple[Any, Offer]]:
        """Publish the batch, then save its shoppers' states. Orders go to the baskets topic,
        every offer to Redis in one pipelined round trip and then to the offers topic (an offer
        on the topic is readable in Redis), dead letters to theirs. Only once Kafka has them all
        are the states written: a crash before that leaves the events unapplied, to be applied
        (and published) again; after it, nothing of theirs is missing. Returns (context, offer)
        of the offers published."""
        batch, self._batch = self._batch, _Batch()
        self._publishing = batch          # still read by apply() until its states are saved
        sent: list = []
        try:
            self.stage = "publishing orders"
            for key, record in batch.baskets:
                sent.append(await self.outputs.baskets(key, record))
            if batch.offers:
                self.stage = "writing offers to Redis"
                await self.writer.write([(self.redis_key(o.user_id), o.placement.value, payload)
                                         for o, payload, _ in batch.offers])
                self.stage = "publishing offers"
                for offer, payload, _ in batch.offers:
                    sent.append(await self.outputs.offers(offer.user_id.encode(), payload))
                    self.stats[f"offers.{offer.kind.value}.{offer.placement.value}"] += 1
                    if offer.kind is Kind.UPSELL:
                        self._count_upgrade(offer.anchor_product_id, offer.items[0].product_id)
            for key, record in batch.dead_letters:
                sent.append(await self.outputs.dead_letters(key, record))
            self.stage = "waiting for Kafka to acknowledge"
            for delivery in sent:
                if delivery is not None and inspect.isawaitable(delivery):
                    await delivery
        finally:
            # Written even if a send failed: the events are acknowledged with the batch, and a
            # shopper's state must not lose them (their offers are in Redis).
            self.stage = "saving shopper states"
            for user_id, (partition, value) in batch.states.items():
                await self.save(partition, user_id, value)
            self._publishing = _Batch()
            self.stage = "idle"
        return [(context, offer) for offer, _, context in batch.offers]

    async def _set(self, partition: int, user_id: str, value: bytes) -> None:
        self.shoppers[user_id] = value

    def _count_upgrade(self, anchor: str, product: str) -> None:
        if len(self.upgrades) >= 20_000:     # bounded: keep the most offered half
            self.upgrades = Counter(dict(self.upgrades.most_common(10_000)))
        self.upgrades[(anchor, product)] += 1

    async def check_product(self, topic: str, partition: int, offset: int, key: Optional[bytes],
                            value: Optional[bytes]) -> None:
        """Dead-letter unusable catalog messages (every worker applies the valid ones)."""
        try:
            product = decode_product(value, self.limits)
            _check_key(key, product.product_id, "product_id")
        except InvalidMessage as exc:
            await self.reject(topic, partition, offset, key, value, str(exc))
            return
        self.stats["catalog.accepted"] += 1

    async def reject(self, topic: str, partition: int, offset: int, key: Optional[bytes],
                     value: Optional[bytes], reason: str) -> None:
        """Send an unusable message to the dead-letter topic now."""
        await self.outputs.dead_letters(key, self._dead_letter(topic, partition, offset, value, reason))

    def reject_later(self, topic: str, partition: int, offset: int, key: Optional[bytes],
                     value: Optional[bytes], reason: str) -> None:
        """Queue an unusable message for the dead-letter topic with the batch."""
        self._batch.dead_letters.append((key, self._dead_letter(topic, partition, offset, value, reason)))

    def _dead_letter(self, topic: str, partition: int, offset: int, value: Optional[bytes], reason: str) -> bytes:
        self.stats["dead_letter"] += 1
        self.dead_letters[reason_label(reason)] += 1
        log.debug("dead-letter %s[%d]@%d: %s", topic, partition, offset, reason)
        return dead_letter(topic, partition, offset, reason, value, self.limits.dead_letter_raw_bytes)


def _check_key(key: Optional[bytes], expected: str, field: str) -> None:
    if key is None:
        raise InvalidMessage(f"message has no key; key it by its {field} ({expected!r})")
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage(f"message key is not UTF-8; key it by its {field}") from None
    if text != expected:
        raise InvalidMessage(f"message key {text[:60]!r} differs from {field} {expected!r}; "
                             f"key messages by {field} so one worker sees all of them")
