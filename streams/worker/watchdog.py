"""Guards the shopper agent against records Faust drops around a rebalance.

Around a rebalance Faust can discard records it has already fetched: its fetcher stops
mid-batch when the flow is suspended, and its streams skip (and acknowledge) records of
the previous consumer generation. Its consumer has moved past them, so they would not be
read again, and those shoppers' events would be lost. The guard follows, for every input
partition this worker keeps, the next offset the agent should see:

* a record beyond it reveals a hole: the partition is read again from the hole;
* an idle agent while a partition has records past it reveals a lost tail: the partition
  is read again from there.

Nothing is ever skipped: records that had in fact been applied come round again and are
skipped by their ``event_id``; records that had been dropped are applied, possibly after
later events of the same shopper. A hole is remembered until every offset in it has been
seen (a rebalance may undo a re-read), and given up after three re-reads (offsets used by
transaction markers are holes that stay).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Hashable, Iterable, Optional, Protocol

log = logging.getLogger("nextoffer")

#: Exit code of a worker that stopped itself to be started again (EX_TEMPFAIL).
EXIT_RESTART = 75


class PartitionView(Protocol):
    """What the guard reads of the consumer (Faust's consumer, or a twin in tests)."""

    async def end_offsets(self, tps: list) -> dict: ...
    def flowing(self) -> bool: ...
    def inputs(self) -> Iterable: ...
    async def broker_committed(self, tps: list) -> dict: ...
    async def group_committed(self) -> dict: ...
    async def seek(self, tp, offset: int, at_commit: bool = False) -> None: ...
    async def commit(self, offsets: dict) -> None: ...


class OffsetGuard:
    """Watches the offsets the agent processes; re-reads what the consumer dropped.

    >>> import asyncio
    >>> class Twin:
    ...     seeks = []
    ...     async def end_offsets(self, tps): return {tp: 9 for tp in tps}
    ...     def flowing(self): return True
    ...     def inputs(self): return ["cart-0"]
    ...     async def broker_committed(self, tps): return {tp: 0 for tp in tps}
    ...     async def seek(self, tp, offset, at_commit=False): self.seeks.append((tp, offset))
    ...     async def commit(self, offsets): pass
    >>> twin, now = Twin(), [0.0]
    >>> guard = OffsetGuard(twin, stall_after=5.0, clock=lambda: now[0])
    >>> for offset in (3, 4, 7, 8, 5, 6, 7, 8):
    ...     asyncio.run(guard.seen("cart-0", offset))
    >>> twin.seeks, guard.holes                      # the hole at 5 and 6, read again, filled
    ([('cart-0', 5)], {})
    >>> now[0] = 10.0
    >>> asyncio.run(guard.check_idle())              # 9 is the highwater: nothing lost
    0
    """

    def __init__(self, consumer: PartitionView, stall_after: float = 15.0,
                 clock: Callable[[], float] = time.monotonic, attempts: int = 3,
                 restart_after: float = 0.0, on_stuck: Optional[Callable[[str], Awaitable[None]]] = None,
                 answer_within: Optional[float] = None,
                 unconfirmed: Callable[[], dict] = dict,
                 delivering: Callable[[], Optional[str]] = lambda: None) -> None:
        self.consumer = consumer
        # Why the outputs are waiting for Kafka (refused records sent again), else None: the
        # agent is held back on purpose then, which is neither a stall nor a reason to re-read.
        self.delivering = delivering
        # Per partition, the first offset whose outputs Kafka has not confirmed: the guard's
        # commits never go past it (those events are not safe yet).
        self.unconfirmed = unconfirmed
        self.stall_after = stall_after
        self.clock = clock
        self.attempts = attempts
        # The last resort: a consumer that stays paused, stops answering, or keeps records from
        # the agent for ``restart_after`` seconds despite re-reads is handed to ``on_stuck``
        # (the worker exits, and its supervisor starts it again; nothing is lost: see reliability.md).
        self.restart_after = restart_after
        self.on_stuck = on_stuck
        self.answer_within = answer_within or max(10.0, 2 * stall_after)
        self.unanswered = 0
        self.lagging_since: Optional[float] = None
        self._recovery_seen: Optional[int] = None
        self.start: dict[Hashable, int] = {}           # the group's committed offset at assignment
        self.to_verify: set = set()                    # partitions whose first record is awaited
        self._progress_at = clock()
        self.expected: dict[Hashable, int] = {}
        self.holes: dict[Hashable, list[list[int]]] = {}   # tp -> [[start, end), ...] not seen yet
        self.tries: dict[tuple[Hashable, int], int] = {}
        self.last_handled = clock()
        self.last_record = self._warned = clock()
        self.rereads = 0

    def keep_only(self, assigned: Iterable[Hashable]) -> None:
        """After a rebalance: forget partitions this worker no longer has. Partitions new to it
        start wherever the consumer group had committed. The consumer reads every partition again
        from the group's committed offset: the first record the agent then sees is checked
        against it (a record dropped right there would hold the group's commits back forever)."""
        keep = set(assigned)
        for tp in [tp for tp in self.expected if tp not in keep]:
            del self.expected[tp]
            self.holes.pop(tp, None)
        self.to_verify = keep

    async def on_assigned(self, assigned: Iterable[Hashable]) -> None:
        """After a rebalance: :meth:`keep_only`, and where each partition starts, the group's
        committed offset on the broker now, before this consumer acknowledges anything. The first
        record the agent then sees of a partition must be that one; if it is later, the records
        between were dropped (and acknowledged, so the group's commit moves past them)."""
        assigned = set(assigned)
        self.keep_only(assigned)
        try:
            committed = await asyncio.wait_for(self.consumer.group_committed(), timeout=self.answer_within)
        except Exception as exc:  # noqa: BLE001 - without it, the idle check asks the broker later
            log.warning("could not read the group's committed offsets (%s: %s)", type(exc).__name__, exc)
            committed = {}
        self.start = {tp: committed[tp] for tp in assigned if committed.get(tp) is not None}

    async def seen(self, tp: Hashable, offset: int) -> None:
        """The agent is about to process record ``offset`` of ``tp``."""
        self.last_handled = self.last_record = self.clock()
        self.lagging_since = None
        expected = self.expected.get(tp)
        if tp in self.to_verify:
            self.to_verify.discard(tp)
            start = self.start.get(tp)
            if start is not None and offset > start:
                self.holes.setdefault(tp, []).append([start, offset])
                await self._reread(tp, start, "records before the first one since the rebalance")
                self.expected[tp] = max(expected or 0, offset + 1)
                return
        if expected is not None and offset > expected:
            self.holes.setdefault(tp, []).append([expected, offset])
            await self._reread(tp, expected, "a hole before offset %d" % offset)
        elif expected is not None and offset < expected:
            self._fill(tp, offset)
        self.expected[tp] = offset + 1 if expected is None else max(expected, offset + 1)

    def _fill(self, tp: Hashable, offset: int) -> None:
        ranges = self.holes.get(tp)
        if not ranges:
            return
        kept = []
        for start, end in ranges:
            if start <= offset < end:
                kept += [r for r in ([start, offset], [offset + 1, end]) if r[0] < r[1]]
            else:
                kept.append([start, end])
        if kept:
            self.holes[tp] = kept
        else:
            del self.holes[tp]

    async def check_idle(self) -> int:
        """If the agent has been idle for ``stall_after`` seconds, re-read every partition with
        holes not filled yet or records past the next expected offset; returns how many."""
        now = self.clock()
        if now - self.last_handled < self.stall_after:
            return 0
        waiting = self.delivering()
        if waiting:
            if now - self._warned > 4 * self.stall_after:
                self._warned = now
                log.warning("the agent waits for Kafka to accept its outputs (%s); no re-read meanwhile",
                            waiting)
            self.last_handled, self.lagging_since = now, None
            return 0
        quiet = now - self.last_record
        busy = getattr(self.consumer, "busy", lambda: False)()
        if busy and quiet > 4 * self.stall_after and now - self._warned > 4 * self.stall_after:
            self._warned = now
            log.warning("the shopper agent has been on one record for %.0f s (%s)", quiet,
                        self.consumer.describe() if hasattr(self.consumer, "describe") else "")
        if not self.consumer.flowing():
            if quiet > 4 * self.stall_after and now - self._warned > 4 * self.stall_after:
                self._warned = now
                log.warning("the consumer has kept the stream paused for %.0f s, a rebalance or "
                            "recovery that does not finish (%s); restarting the worker resumes it",
                            quiet, self.consumer.describe() if hasattr(self.consumer, "describe") else "")
            # A long recovery of a big table is paused too, but it makes progress.
            progress = getattr(self.consumer, "recovery_remaining", lambda: None)()
            if progress is None or progress != self._recovery_seen:
                self._recovery_seen, self._progress_at = progress, now
            paused = min(quiet, now - self._progress_at)
            await self._maybe_stuck(paused, f"the consumer has kept the stream paused for {paused:.0f} s")
            return 0
        count = 0
        # Partitions the agent has not seen a record of since they were assigned start at the
        # group's committed offset on the broker (none committed: at the beginning). Faust's own
        # record of it can be ahead: it counts commits that failed, of records it dropped.
        inputs = list(self.consumer.inputs())
        unseen = [tp for tp in inputs if tp not in self.expected]
        asked = [tp for tp in unseen if tp not in self.start]
        try:
            on_broker = await self._answer(self.consumer.broker_committed(inputs)) if inputs else {}
            positions = {**self.expected,
                         **{tp: self.start.get(tp, on_broker.get(tp)) or 0 for tp in unseen}}
            # Ask the broker: a partition the consumer stopped fetching has a stale highwater.
            ends = await self._answer(self.consumer.end_offsets(list(positions))) if positions else {}
        except asyncio.TimeoutError:
            return 0
        self.unanswered = 0
        for tp, expected in positions.items():
            start = self._first_hole(tp)
            if start is not None:
                await self._reread(tp, start, "a hole still not filled")
                count += 1
                continue
            highwater = ends.get(tp)
            if highwater is not None and highwater > expected and tp in asked:
                # Read from the group's committed offset just read: Faust's own mark may be past it.
                await self._reread(tp, expected, "an idle agent", at_commit=True)
                count += 1
                continue
            if highwater is not None and highwater > expected:
                if self.tries.get((tp, expected), 0) >= self.attempts and highwater - expected <= 2:
                    # Re-read enough times and still nothing: the offsets hold no records
                    # (a transactional producer's commit marker ends the partition).
                    log.info("%s: offsets %d to %d hold no records; going on", tp, expected, highwater - 1)
                    self.expected[tp] = highwater
                    continue
                await self._reread(tp, expected, "an idle agent")
                count += 1
        await self._commit_applied(ends, on_broker)
        if count:
            self.lagging_since = self.lagging_since or now
            await self._maybe_stuck(now - self.lagging_since,
                              f"records stay unprocessed {now - self.lagging_since:.0f} s after re-reads")
        else:
            self.lagging_since = None
        self.last_handled = self.clock()
        return count

    async def _commit_applied(self, ends: dict, on_broker: dict) -> None:
        """Commit what the agent has applied where the group's commit lags behind it: a record
        Faust dropped and never acknowledged holds its commits back even once read again and
        applied. Only partitions with no hole, caught up to the broker's end, are committed."""
        held = self.unconfirmed()
        done = {tp: expected for tp, expected in self.expected.items()
                if not self.holes.get(tp) and ends.get(tp) == expected and tp not in held
                and on_broker.get(tp) is not None and on_broker[tp] < expected}
        if not done:
            return
        try:
            await self._answer(self.consumer.commit(done))
        except asyncio.TimeoutError:
            return
        log.info("committed offsets the consumer had left behind: %s", done)

    async def _answer(self, call):
        """The consumer's answer, or a timeout (its thread may hang); repeated silence is stuck."""
        try:
            answer = await asyncio.wait_for(call, timeout=self.answer_within)
        except asyncio.TimeoutError:
            self.unanswered += 1
            log.warning("the consumer did not answer within %.0f s (%d times in a row)",
                        self.answer_within, self.unanswered)
            if self.unanswered >= 3:
                await self._maybe_stuck(float("inf"), f"the consumer did not answer {self.unanswered} times in a row")
            raise
        return answer

    async def _maybe_stuck(self, for_seconds: float, why: str) -> None:
        if self.on_stuck is not None and self.restart_after and for_seconds >= self.restart_after:
            await self.on_stuck(why)

    def safe_positions(self) -> dict:
        """Per partition, the first offset not known to be applied (a hole's start, or the next
        expected offset) or whose outputs are not confirmed: where a fresh consumer must start so
        that nothing is skipped."""
        held = self.unconfirmed()
        return {tp: min([expected] + [start for start, _ in self.holes.get(tp, [])]
                        + ([held[tp]] if tp in held else []))
                for tp, expected in self.expected.items()}

    def _first_hole(self, tp: Hashable):
        """The start of the partition's first hole still worth re-reading."""
        while self.holes.get(tp):
            start, end = min(self.holes[tp])
            if self.tries.get((tp, start), 0) < self.attempts:
                return start
            log.error("%s: offsets %d to %d never came back after %d re-reads (transaction "
                      "markers or deleted records); going on", tp, start, end - 1, self.attempts)
            self.holes[tp].remove([start, end])
        self.holes.pop(tp, None)
        return None

    async def _reread(self, tp: Hashable, offset: int, why: str, at_commit: bool = False) -> None:
        state = self.consumer.state_of(tp) if hasattr(self.consumer, "state_of") else ""
        log.warning("%s: records from offset %d were dropped by the consumer (%s%s); reading them "
                    "again", tp, offset, why, f"; partition {state}" if state else "")
        self.tries[(tp, offset)] = self.tries.get((tp, offset), 0) + 1
        if len(self.tries) > 10_000:
            self.tries.clear()
        self.rereads += 1
        try:
            await self._answer(self.consumer.seek(tp, offset, at_commit))
        except asyncio.TimeoutError:
            pass    # the hole or tail stays known and is read again at the next idle check
