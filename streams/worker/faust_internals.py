"""Every use of faust-streaming's internals, in one place, and the version range they were tested on.

The offset guard needs what Faust's consumer believes (committed offsets, paused and buffered
partitions, its consumer thread) and gives it read offsets that let a re-read through; the
shopper table writes its changelog records without a per-record future; the worker reads lag
from the consumer's highwaters. These touch private attributes of faust-streaming 0.15, so the
worker refuses to start on a version outside :data:`SUPPORTED` (pyproject.toml pins the same
range).
"""
from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from importlib import metadata
from typing import Callable, Iterable, Optional

import faust
from faust.types import TP

from nextoffer.streams.io.codecs import compact_state

log = logging.getLogger("nextoffer")

#: The faust-streaming versions these internals are tested with: [lowest, first not supported).
SUPPORTED = ((0, 15, 3), (0, 16, 0))


class UnsupportedFaust(ValueError):
    """The installed faust-streaming is outside :data:`SUPPORTED`."""


def check_version(installed: Optional[str] = None) -> str:
    """The installed faust-streaming version, or :class:`UnsupportedFaust` saying what to install.

    >>> check_version("0.15.3")
    '0.15.3'
    >>> check_version("0.11.0")
    Traceback (most recent call last):
    ...
    nextoffer.streams.worker.faust_internals.UnsupportedFaust: the worker needs faust-streaming >=0.15.3,<0.16.0 (its offset guard and table use Faust internals tested there), found 0.11.0: pip install 'faust-streaming>=0.15.3,<0.16.0'
    """
    installed = installed or metadata.version("faust-streaming")
    parts = tuple(int(p) for p in installed.split(".")[:3] if p.isdigit())
    low, high = SUPPORTED
    if not low <= parts < high:
        wanted = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
        raise UnsupportedFaust(f"the worker needs faust-streaming {wanted} (its offset guard and table use "
                               f"Faust internals tested there), found {installed}: "
                               f"pip install 'faust-streaming{wanted}'")
    return installed


def consumer_lag(app, inputs: Iterable, expected: dict, holes: Optional[dict] = None) -> dict:
    """Input records not processed yet per partition: the consumer's last fetched highwater less
    the next offset the agent expects (else the offset Faust believes committed), and the records
    of ``holes`` (the offset guard's ranges dropped and not read again yet, behind that offset).

    >>> from types import SimpleNamespace
    >>> tp = TP("cart", 0)
    >>> app = SimpleNamespace(consumer=SimpleNamespace(highwater=lambda tp: 900, _committed_offset={}))
    >>> consumer_lag(app, [tp], {tp: 866}, {tp: [[537, 547]]})
    {('cart', 0): 44}
    """
    consumer, lag, holes = app.consumer, {}, holes or {}
    for tp in inputs:
        highwater = consumer.highwater(tp)
        position = expected.get(tp, consumer._committed_offset.get(tp))
        if highwater is not None and position is not None:
            missing = sum(end - start for start, end in holes.get(tp, ()))
            lag[(tp.topic, tp.partition)] = max(highwater - position, 0) + missing
    return lag


class CompactTable(faust.Table):
    """A table of raw JSON values (the shoppers, the dead-lettered offsets) that keeps recovered
    values compact too (Faust's recovery hands them over decoded)."""

    def _to_value(self, v):
        return compact_state(v)

    async def save(self, partition: int, key, value: bytes) -> None:
        """``table[key] = value`` from outside the event's context: the value is kept and its
        changelog record goes to ``partition`` (the input partition of the event that made it)
        through the app's producer, the same record ``__setitem__`` writes, without Faust's
        per-write future and callbacks. The producer is flushed before every offset commit, so
        the record is in Kafka before the events that made it are committed."""
        self.data[key] = value
        raw_key = self.app.serializers.dumps_key(self.key_type, key, serializer=self.key_serializer)
        await self.app.producer.send(self._changelog_name, raw_key, value, partition, None, None)

    @functools.cached_property
    def _changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()


def _no_offset() -> None:
    return None


class ReadOffsets(defaultdict):
    """Faust's read offsets (per partition, the last record its fetcher passed to the streams),
    with re-reads that hold.

    Faust passes a fetched record on only at or past its partition's read offset, and moves the
    read offset to every record it passes. A seek back sets it to the seek's offset, but the rest
    of the batch fetched before the seek is still being passed on, and each of those records moves
    it forward again: the records fetched again from the seek's offset then fall below it and are
    dropped, and the hole stays until the agent is idle long enough for another re-read (on a
    worker that is never idle, never). A partition re-read with :meth:`reread` has no read offset (every record
    passes, and none opens a gap that Faust would commit over) until a record at or before the
    last one passed comes through: the first record fetched again.

    >>> offsets = ReadOffsets({"cart-0": 560})
    >>> offsets.reread("cart-0", 537)          # a hole from 537, read again
    >>> offsets["cart-0"] = 561                 # the rest of the batch fetched before the seek
    >>> offsets["cart-0"] is None
    True
    >>> offsets["cart-0"] = 537                 # the first record fetched again
    >>> offsets["cart-0"], offsets.pins
    (537, {})
    """

    def __init__(self, offsets=()) -> None:
        super().__init__(_no_offset, offsets)
        self.pins: dict = {}        # partition -> the last offset passed before its re-read
        self.used = False           # whether Faust's fetcher reads and moves these offsets

    def reread(self, tp, offset: int) -> None:
        """``tp`` is read again from ``offset``: no read offset until the records fetched again come."""
        passed = dict.get(self, tp)
        self.pins[tp] = offset if passed is None else max(passed, offset)
        dict.__setitem__(self, tp, None)

    def __setitem__(self, tp, offset) -> None:
        self.used = True
        last = self.pins.get(tp)
        if last is not None and offset is not None:
            if offset > last:
                return          # fetched before the seek: the partition stays open
            del self.pins[tp]
        super().__setitem__(tp, offset)

    def update(self, *args, **kwargs) -> None:
        """Faust's seek to the committed offsets after a rebalance: the re-reads are over."""
        self.pins.clear()
        super().update(*args, **kwargs)

    def pop(self, tp, *default):
        self.pins.pop(tp, None)
        return super().pop(tp, *default)


class FaustPartitions:
    """:class:`PartitionView` over a Faust app's consumer, for the input ``topics``."""

    def __init__(self, app, topics: Iterable[str], stage: Callable[[], str] = lambda: "",
                 read_group: Optional[Callable[[], dict]] = None) -> None:
        self.app = app
        self.topics = set(topics)
        self.stage = stage
        self.read_group = read_group

    def inputs(self):
        return [tp for tp in self.app.consumer.assignment() if tp.topic in self.topics]

    async def group_committed(self) -> dict:
        """The group's committed offsets, from a separate admin client (this runs during a
        rebalance, while the consumer's own thread waits for it)."""
        if self.read_group is None:
            return {}
        loop = asyncio.get_running_loop()
        offsets = await loop.run_in_executor(None, self.read_group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()
                if meta is not None and meta.offset is not None and meta.offset >= 0}

    async def broker_committed(self, tps: list) -> dict:
        """The group's committed offsets on the broker (asked from the consumer's own thread)."""
        thread = self.app.consumer._thread
        consumer = thread._ensure_consumer()

        async def ask() -> dict:
            return {tp: await consumer.committed(tp) for tp in tps}
        return await thread.call_thread(ask)

    async def end_offsets(self, tps: list) -> dict:
        return dict(await self.app.consumer.highwaters(*tps))

    def flowing(self) -> bool:
        return bool(self.app.consumer.flow_active) and not self.app.rebalancing

    def recovery_remaining(self) -> Optional[int]:
        """Changelog records still to recover (None when not recovering)."""
        recovery = self.app.tables.recovery
        return recovery.active_remaining_total() if recovery.in_recovery else None

    def busy(self) -> bool:
        return not self.stage().startswith("idle") and self.stage() != ""

    def describe(self) -> str:
        return (f"flow_active={self.app.consumer.flow_active}, rebalancing={self.app.rebalancing}, "
                f"unacked={len(self.app.consumer.unacked)}, agent: {self.stage()}")

    async def commit(self, offsets: dict) -> None:
        """Commit ``offsets`` for the group, and make Faust's own mark agree (it never commits
        below it afterwards)."""
        consumer = self.app.consumer
        await consumer._thread.commit(offsets)
        for tp, offset in offsets.items():
            believed = consumer._committed_offset.get(tp)
            if believed is None or believed < offset:
                consumer._committed_offset[tp] = offset

    def state_of(self, tp) -> str:
        """How Faust's consumer treats ``tp``: fetched, or left out and why."""
        consumer = self.app.consumer
        active = consumer._active_partitions
        return ", ".join(name for name, held in (
            ("not fetched", active is not None and tp not in active),
            ("paused", tp in consumer._paused_partitions),
            ("buffer full", tp in consumer._buffered_partitions)) if held) or "fetched"

    async def seek(self, tp, offset: int, at_commit: bool = False) -> None:
        consumer = self.app.consumer
        # A partition left out of the fetch (paused, or its buffer marked full) would not bring
        # the records back; it may also have lost its resume to a rebalance in between.
        state = self.state_of(tp)
        if not self.app.in_recovery and state != "fetched":
            log.warning("%s was left out of the consumer's fetches (%s); fetching it again", tp, state)
            # as Faust's own TP: a message's tp is aiokafka's, and Faust's resume_partitions adds
            # what it is given to the partitions it asserts are all TPs (the agent and the
            # fetcher crashed on the next buffer drop)
            own = TP(tp.topic, tp.partition)
            consumer._buffered_partitions.discard(own)
            consumer.resume_partitions({own})
        # ``offset`` is the group's committed offset on the broker: Faust acknowledges (and so
        # commits) only records at or past the offset it believes committed, and its belief counts
        # commits that failed. (Below a commit that did succeed, it must stay: Faust would wait
        # for those offsets forever.)
        believed = consumer._committed_offset.get(tp)
        if at_commit and believed is not None and believed > offset:
            consumer._committed_offset[tp] = offset
        # In the consumer's own thread, between two fetches: a seek from another thread races
        # with aiokafka's fetcher (and can crash it). The read offset is reset too, so the
        # records come through again: held open until they do (ReadOffsets), else as Faust's
        # own seek_wait leaves it.
        reads, thread = consumer._read_offset, consumer._thread
        if not (isinstance(reads, ReadOffsets) and reads.used):
            await thread.seek_wait({tp: offset})
            if isinstance(reads, ReadOffsets):
                reads.used = False      # moved by that seek, not (yet) by the fetcher
            return
        kafka = thread._ensure_consumer()

        async def seek_and_hold() -> None:
            kafka.seek(tp, offset)
            reads.reread(tp, offset)
            await asyncio.wait_for(kafka.position(tp), timeout=self.app.conf.broker_request_timeout)
        await thread.call_thread(seek_and_hold)

    def hold_rereads(self) -> None:
        """Give Faust's consumer :class:`ReadOffsets`; at the start of a rebalance, before its
        fetcher starts again (a running fetcher keeps the offsets it started with)."""
        consumer = self.app.consumer
        if not isinstance(consumer._read_offset, ReadOffsets):
            consumer._read_offset = ReadOffsets(consumer._read_offset)
