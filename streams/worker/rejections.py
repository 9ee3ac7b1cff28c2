"""Which input records were dead-lettered, so that a record read again is not dead-lettered twice.

A shopper event read again is skipped by its ``event_id`` (kept in the shopper's state), but an
unusable message has no usable id: what identifies it is where it sits, (topic, partition,
offset). The consumer reads records again after an offset-guard re-read, a rebalance, or a
restart. So each dead-lettered record is remembered twice:

- in memory, the latest :data:`REMEMBERED` records of any topic (a re-read in this process);
- per input partition, as intervals of offsets in a table backed by a changelog, saved after
  Kafka confirmed the dead letters and before their events are acknowledged, like a shopper's
  state. The worker that takes the partition over, or this one after a restart, recovers them
  with the partition.

Only a crash between the dead letter's confirmation and the save can still repeat it (the same
window in which an offer is published twice: docs/reliability.md).
"""
from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import Any, Awaitable, Callable, MutableMapping, Optional

import orjson

#: Records remembered in memory.
REMEMBERED = 100_000
#: Intervals of offsets kept per topic and partition in the table (the oldest go first).
INTERVALS = 2_000

SaveMarks = Callable[[int, int, bytes], Awaitable[None]]


class Offsets:
    """A set of offsets as sorted, disjoint, inclusive intervals, at most ``limit`` of them.

    >>> s = Offsets()
    >>> for offset in (5, 6, 7, 9, 8, 20):
    ...     s.add(offset)
    >>> s.intervals, 7 in s, 10 in s
    ([[5, 9], [20, 20]], True, False)
    >>> s = Offsets(limit=2)
    >>> for offset in (1, 3, 5):
    ...     s.add(offset)
    >>> s.intervals                      # the oldest interval went
    [[3, 3], [5, 5]]
    """

    def __init__(self, intervals: Optional[list] = None, limit: int = INTERVALS) -> None:
        self.intervals: list[list[int]] = [list(i) for i in intervals or ()]
        self.limit = limit

    def __contains__(self, offset: int) -> bool:
        i = bisect.bisect_right(self.intervals, [offset, float("inf")]) - 1
        return i >= 0 and self.intervals[i][0] <= offset <= self.intervals[i][1]

    def add(self, offset: int) -> None:
        if offset in self:
            return
        runs = self.intervals
        i = bisect.bisect_right(runs, [offset, float("inf")])     # first interval starting after it
        joins_left = i > 0 and runs[i - 1][1] == offset - 1
        joins_right = i < len(runs) and runs[i][0] == offset + 1
        if joins_left and joins_right:
            runs[i - 1][1] = runs[i][1]
            del runs[i]
        elif joins_left:
            runs[i - 1][1] = offset
        elif joins_right:
            runs[i][0] = offset
        else:
            runs.insert(i, [offset, offset])
        if len(runs) > self.limit:
            del runs[: len(runs) - self.limit]


class DeadLettered:
    """The dead-lettered records of this worker's partitions (see the module's docstring).

    ``table`` maps an input partition to its saved marks (bytes); ``save(partition, key, value)``
    writes one to the table and its changelog.

    >>> import asyncio
    >>> table = {}
    >>> async def save(partition, key, value):
    ...     table[key] = value
    >>> marks = DeadLettered(table, save)
    >>> marks.first("clicks", 0, 41), marks.first("clicks", 0, 41)
    (True, False)
    >>> asyncio.run(marks.keep([("clicks", 0, 41)]))
    >>> DeadLettered(table, save).first("clicks", 0, 41)     # another worker, or after a restart
    False
    """

    def __init__(self, table: MutableMapping[int, Any], save: Optional[SaveMarks] = None,
                 remember: int = REMEMBERED) -> None:
        self.table = table
        self.save = save or self._set
        self.remember = remember
        self._recent: OrderedDict[tuple, None] = OrderedDict()
        self._loaded: dict[int, tuple[Any, dict[str, Offsets]]] = {}   # partition -> (raw, marks)

    def first(self, topic: str, partition: int, offset: int) -> bool:
        """True, and remembered in memory, unless the record was dead-lettered already."""
        record = (topic, partition, offset)
        if record in self._recent or offset in self._marks(partition).get(topic, ()):
            return False
        self._recent[record] = None
        if len(self._recent) > self.remember:
            self._recent.popitem(last=False)
        return True

    async def keep(self, records: list[tuple[str, int, int]]) -> None:
        """Save ``records`` (topic, partition, offset), whose dead letters Kafka confirmed, with
        their partitions' marks."""
        touched: dict[int, dict[str, Offsets]] = {}
        for topic, partition, offset in records:
            marks = touched.setdefault(partition, self._marks(partition))
            marks.setdefault(topic, Offsets()).add(offset)
        for partition, marks in touched.items():
            raw = orjson.dumps({topic: s.intervals for topic, s in marks.items()})
            await self.save(partition, partition, raw)
            self._loaded[partition] = (self.table.get(partition), marks)

    def _marks(self, partition: int) -> dict[str, Offsets]:
        """The partition's saved marks, decoded again when the table's value changed (recovered
        from the changelog after the partition came to this worker)."""
        raw = self.table.get(partition)
        loaded = self._loaded.get(partition)
        if loaded is not None and loaded[0] is raw:
            return loaded[1]
        marks = {topic: Offsets(runs) for topic, runs in orjson.loads(raw).items()} if raw else {}
        self._loaded[partition] = (raw, marks)
        return marks

    async def _set(self, partition: int, key: int, value: bytes) -> None:
        self.table[key] = value
