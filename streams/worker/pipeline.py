"""What the agents do with one message, with every dependency passed in (so tests can too).

Events are applied a batch at a time. Order of effects for a batch: baskets topic -> Redis
(one round trip) -> offers topic -> dead-letter topic -> Kafka acknowledges them -> the
dead-lettered offsets and the shopper states written to their tables (changelogs). Redis is
written before the offer is published, so a storefront that sees an offer on the topic can always read it from the lookup; a state
is saved only after everything the event produced is safe in Kafka. A record Kafka refuses is
sent again with a growing pause; if it is still refused after ``delivery_timeout`` seconds the
flush raises :class:`DeliveryFailed`, no state is saved, and the worker stops without
acknowledging the batch's events, so they are applied and published again when it restarts.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, MutableMapping, Optional

import orjson

from redis.exceptions import RedisError

from nextoffer.models.engine import OfferEngine
from nextoffer.models.offer import Kind, Offer
from nextoffer.models.shopper import ShopperState
from nextoffer.streams.io.codecs import (InvalidMessage, Limits, dead_letter, decode_event, decode_product,
                                         decode_state, encode_basket, encode_decision, encode_offer, encode_state)
from nextoffer.streams.io.figures import reason_label
from nextoffer.streams.io.store import OfferStore, OfferWrite, event_ts
from nextoffer.streams.worker.rejections import DeadLettered

log = logging.getLogger("nextoffer")

Send = Callable[[Optional[bytes], bytes], Awaitable[Any]]
#: ``save(partition, user_id, state)``: writes a shopper's state to the table and its changelog.
SaveState = Callable[[int, str, bytes], Awaitable[None]]


class DeliveryFailed(Exception):
    """Kafka kept refusing some of a batch's records for the whole delivery timeout."""


@dataclass
class Outputs:
    """Where results go: each a coroutine ``send(key, value)`` that queues the record and returns
    its delivery (an awaitable, or None when there is nothing to wait for)."""

    offers: Send
    dead_letters: Send
    baskets: Send
    activity: Optional[Send] = None     # view counts for every worker's showcases
    decisions: Optional[Send] = None    # the decision log, for off-policy evaluation


@dataclass
class _Batch:
    """What the events applied since the last flush produced."""

    states: dict = field(default_factory=dict)          # user_id -> (partition, encoded state, its object
    #                                                      or None), latest
    offers: list = field(default_factory=list)          # (offer, payload, context)
    baskets: list = field(default_factory=list)         # (key, record)
    dead_letters: list = field(default_factory=list)    # (key, record)
    rejected: list = field(default_factory=list)        # (topic, partition, offset) of the dead letters
    decisions: list = field(default_factory=list)       # (key, record)


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
            waiting = self.pending.get((w[0], w[1]))
            if waiting is None or not _older(w, waiting):
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
                 clock: Callable[[], float] = time.time, save: Optional[SaveState] = None,
                 delivery_timeout: float = 300.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 dead_lettered: Optional[DeadLettered] = None, activity_every: float = 5.0,
                 max_touched: int = 20_000) -> None:
        self.engine = engine
        self.delivery_timeout = delivery_timeout
        self.sleep = sleep
        self.monotonic = monotonic
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
        self.refused: Optional[str] = None    # why Kafka refuses records being sent again, if it does
        # Showcases: views counted since the last activity record (sent with a batch at most every
        # ``activity_every`` seconds), and the products and shoppers of the events since the last
        # showcase round (:class:`~nextoffer.streams.io.showcases.ShowcaseWriter` takes them).
        self.activity_every = activity_every
        self.views: Counter = Counter()
        self.views_ts: Optional[float] = None
        self._activity_at = float("-inf")
        self.max_touched = max_touched
        self.touched_products: dict[str, None] = {}
        self.touched_shoppers: dict[str, bytes] = {}
        self.latest_ts: Optional[float] = None    # the newest event time applied: the showcases' "now"
        self.dead_lettered = dead_lettered or DeadLettered({})

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
        # The newest state: this batch's, the one being published, or the table's. A state of
        # this batch or the one being published is taken as the object its bytes were encoded
        # from (a shopper's events come in runs): what is saved is always the bytes, taken when
        # the event was applied, so the object may go on changing.
        user = event.user_id
        pending = self._batch.states.get(user) or self._publishing.states.get(user)
        if pending is not None and pending[2] is not None:
            shopper = pending[2]
        else:
            raw = pending[1] if pending is not None else self.shoppers.get(user)
            shopper = decode_state(raw) if raw else ShopperState(user)
        try:
            outcome = self.engine.process(shopper, event, generated_at=self.clock())
        except BaseException:
            self._forget_object(user)      # half applied: the next event starts from the bytes
            raise
        if not outcome.applied:
            self.stats["events.duplicate"] += 1
            return
        state = encode_state(shopper)
        self._batch.states[user] = (partition, state, shopper)
        self._touch(event, state)
        if outcome.basket is not None:
            self._batch.baskets.append((key, encode_basket(outcome.basket)))
        if outcome.offer is None:
            self.stats[f"no_offer.{outcome.reason}"] += 1
            return
        self._batch.offers.append((outcome.offer, encode_offer(outcome.offer), context))
        if outcome.shortlist and self.outputs.decisions is not None:
            self._batch.decisions.append((key, encode_decision(outcome.offer, outcome.shortlist)))

    def _forget_object(self, user: str) -> None:
        """Keep only the bytes of ``user``'s pending states (their object is no longer theirs)."""
        for batch in (self._batch, self._publishing):
            pending = batch.states.get(user)
            if pending is not None:
                batch.states[user] = (pending[0], pending[1], None)

    async def flush(self) -> list[tuple[Any, Offer]]:
        """Publish the batch, then save its shoppers' states. Orders go to the baskets topic,
        every offer to Redis in one pipelined round trip and then to the offers topic (an offer
        on the topic is readable in Redis), dead letters to theirs. Only once Kafka has them all
        are the states written: a crash before that leaves the events unapplied, to be applied
        (and published) again; after it, nothing of theirs is missing. A refused record is sent
        again (:meth:`_deliver`); :class:`DeliveryFailed` leaves the states unsaved. Returns
        (context, offer) of the offers published."""
        batch, self._batch = self._batch, _Batch()
        self._publishing = batch          # still read by apply() until its states are saved
        records = [(self.outputs.baskets, key, record) for key, record in batch.baskets]
        if batch.offers:
            self.stage = "writing offers to Redis"
            await self.writer.write([(self.redis_key(o.user_id), o.placement.value, payload, o.event_ts)
                                     for o, payload, _ in batch.offers])
            records += [(self.outputs.offers, offer.user_id.encode(), payload) for offer, payload, _ in batch.offers]
            records += [(self.outputs.decisions, key, record) for key, record in batch.decisions]
        records += [(self.outputs.dead_letters, key, record) for key, record in batch.dead_letters]
        records += self._activity()
        await self._deliver(records)
        if batch.rejected:
            self.stage = "saving the dead-lettered offsets"
            await self.dead_lettered.keep(batch.rejected)
        for offer, _, _ in batch.offers:
            self.stats[f"offers.{offer.kind.value}.{offer.placement.value}"] += 1
            if offer.kind is Kind.UPSELL:
                self._count_upgrade(offer.anchor_product_id, offer.items[0].product_id)
        self.stage = "saving shopper states"
        for user_id, (partition, value, _) in batch.states.items():
            await self.save(partition, user_id, value)
        self._publishing = _Batch()
        self.stage = "idle"
        return [(context, offer) for offer, _, context in batch.offers]

    async def _deliver(self, records: list) -> None:
        """Send ``(send, key, value)`` records in order and wait until Kafka confirms each one;
        those refused are sent again after a pause growing from 0.1 s to 5 s, until
        ``delivery_timeout`` seconds have passed (then :class:`DeliveryFailed`)."""
        deadline, pause = self.monotonic() + self.delivery_timeout, 0.1
        while True:
            self.stage = "publishing" if pause == 0.1 else f"publishing {len(records)} refused records again"
            failed, error = await self._send_all(records)
            if not failed:
                if pause > 0.1:
                    log.warning("Kafka accepted the refused records; the worker goes on")
                self.refused = None
                return
            self.refused = f"{len(failed)} records refused: {error}"
            self.stats["delivery.refused"] += len(failed)
            if self.monotonic() >= deadline:
                self.stage = "stopping: records refused"
                raise DeliveryFailed(f"Kafka refused {len(failed)} records for {self.delivery_timeout:.0f} s "
                                     f"(last: {error}); their events stay unacknowledged")
            log.warning("Kafka refused %d of the batch's %d records (%s); sending them again in %.1f s, "
                        "for up to %.0f s more (NEXTOFFER_DELIVERY_TIMEOUT)", len(failed), len(records),
                        error, pause, deadline - self.monotonic())
            self.stage = f"waiting to send {len(failed)} refused records again ({error})"
            await self.sleep(pause)
            self.stats["delivery.retries"] += 1
            records, pause = failed, min(pause * 2, 5.0)

    async def _send_all(self, records: list) -> tuple[list, Optional[str]]:
        """Queue every record, then wait for each delivery; the records that failed, and why."""
        queued, failed, error = [], [], None
        for record in records:
            send, key, value = record
            try:
                queued.append((record, await send(key, value)))
            except Exception as exc:  # noqa: BLE001 - any refusal is retried, then stops the worker
                failed.append(record)
                error = f"{type(exc).__name__}: {exc}"
        self.stage = "waiting for Kafka to acknowledge"
        for record, delivery in queued:
            if delivery is not None and inspect.isawaitable(delivery):
                try:
                    await delivery
                except Exception as exc:  # noqa: BLE001
                    failed.append(record)
                    error = f"{type(exc).__name__}: {exc}"
        return failed, error

    def _touch(self, event, state: bytes) -> None:
        """Count a view for the showcases; remember the event's products and shopper."""
        self.latest_ts = max(self.latest_ts or event.ts, event.ts)
        if event.type == "view" and event.product_id and self.outputs.activity is not None:
            self.views[event.product_id] += 1
            self.views_ts = max(self.views_ts or event.ts, event.ts)
        if len(self.touched_shoppers) < self.max_touched or event.user_id in self.touched_shoppers:
            self.touched_shoppers[event.user_id] = state
        if len(self.touched_products) < self.max_touched:
            for pid in (event.product_id, *(line.product_id for line in event.items)):
                if pid:
                    self.touched_products[pid] = None

    def take_touched(self) -> tuple[list[str], dict[str, bytes]]:
        """The products and shoppers of the events since the last call (for the showcases)."""
        products, shoppers = list(self.touched_products), self.touched_shoppers
        self.touched_products, self.touched_shoppers = {}, {}
        return products, shoppers

    def _activity(self) -> list:
        """The views counted since the last activity record, as one record for this batch, at most
        every ``activity_every`` seconds: published with the batch, so they count once Kafka has
        them (views of the last seconds before a crash may count twice or not at all)."""
        if self.monotonic() - self._activity_at < self.activity_every:
            return []
        record = self.take_activity()
        return [(self.outputs.activity, None, record)] if record is not None else []

    def take_activity(self) -> Optional[bytes]:
        """The activity record of the views counted since the last one (None if none were): the
        showcase task sends what no batch took when the stream goes quiet."""
        if not self.views:
            return None
        record = orjson.dumps({"ts": self.views_ts, "views": dict(self.views)})
        self.views, self.views_ts, self._activity_at = Counter(), None, self.monotonic()
        return record

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
        """Send an unusable message to the dead-letter topic now (once per record)."""
        if self._first_rejection(topic, partition, offset):
            await self.outputs.dead_letters(key, self._dead_letter(topic, partition, offset, value, reason))

    def reject_later(self, topic: str, partition: int, offset: int, key: Optional[bytes],
                     value: Optional[bytes], reason: str) -> None:
        """Queue an unusable message for the dead-letter topic with the batch (once per record)."""
        if self._first_rejection(topic, partition, offset):
            self._batch.dead_letters.append((key, self._dead_letter(topic, partition, offset, value, reason)))
            self._batch.rejected.append((topic, partition, offset))

    def _first_rejection(self, topic: str, partition: int, offset: int) -> bool:
        """False for a record already dead-lettered: one the offset guard, a rebalance or a
        restart made the consumer read again (a shopper event is skipped by its event_id; a bad
        message has none). :mod:`~nextoffer.streams.worker.rejections` remembers them."""
        if self.dead_lettered.first(topic, partition, offset):
            return True
        self.stats["dead_letter.repeat"] += 1
        return False

    def _dead_letter(self, topic: str, partition: int, offset: int, value: Optional[bytes], reason: str) -> bytes:
        self.stats["dead_letter"] += 1
        self.dead_letters[reason_label(reason)] += 1
        log.debug("dead-letter %s[%d]@%d: %s", topic, partition, offset, reason)
        return dead_letter(topic, partition, offset, reason, value, self.limits.dead_letter_raw_bytes)


def _older(write: OfferWrite, than: OfferWrite) -> bool:
    """Whether ``write`` is of an older event than ``than`` (both with event times)."""
    a, b = event_ts(write), event_ts(than)
    return a is not None and b is not None and a < b


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
