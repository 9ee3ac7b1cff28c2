"""Faust's own fetch loop (``Consumer._drain_messages`` of the installed faust-streaming) over
the read offsets the offset guard re-reads with: a seek back made while a fetched batch is
still being passed on must bring the records from the seek's offset again."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer

from nextoffer.streams.worker.faust_internals import ReadOffsets

TP = ("cart", 0)


class _Stopped:
    def __init__(self) -> None:
        self.stop = False

    def is_set(self) -> bool:
        return self.stop


class FetchLoop:
    """What ``Consumer._drain_messages`` reads of its consumer: batches of offsets to fetch, a
    callback that may seek back in the middle of a batch (as the offset guard does)."""

    def __init__(self, reads, batches, seek_at: int, seek_to: int) -> None:
        self._read_offset = reads
        self.batches = list(batches)
        self.seek_at, self.seek_to = seek_at, seek_to
        self.passed: list[int] = []
        self.gaps: list[tuple[int, int]] = []
        self._stopped = _Stopped()
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self._commit_every = None
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
        self.should_stop = False
        self.suspend_flow = asyncio.Event()
        self.consumer_stopped_errors = ()
        self._n_acked = 0
        self.log = SimpleNamespace(dev=lambda *args: None, info=lambda *args: None,
                                   exception=lambda *args: None)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_first(self, *coros):
        for other in coros[1:]:
            other.close()           # the flow is never suspended here
        return await coros[0]

    async def _add_gap(self, tp, start: int, end: int) -> None:
        self.gaps.append((start, end))

    async def callback(self, message) -> None:
        self.passed.append(message.offset)
        if message.offset == self.seek_at and self.seek_to is not None:
            seek_to, self.seek_to = self.seek_to, None
            if isinstance(self._read_offset, ReadOffsets):
                self._read_offset.reread(TP, seek_to)
            else:
                self._read_offset[TP] = seek_to        # what Faust's own seek_wait sets

    async def getmany(self, timeout: float):
        if not self.batches:
            self._stopped.stop = True
            return
        for offset in self.batches.pop(0):
            yield TP, SimpleNamespace(offset=offset, topic=TP[0], key=None, value=None)


def drain(reads) -> FetchLoop:
    """Offsets 20 to 29 fetched; on 21 the agent finds 10 to 19 missing and seeks back to 10;
    the next fetch starts at 10."""
    loop = FetchLoop(reads, [range(20, 30), range(10, 30)], seek_at=21, seek_to=10)
    fetcher = SimpleNamespace(_stopped=loop._stopped)
    asyncio.run(Consumer._drain_messages(loop, fetcher))
    return loop


def test_a_seek_back_in_the_middle_of_a_batch_brings_the_records_again():
    loop = drain(ReadOffsets())
    assert loop.passed[:10] == list(range(20, 30))     # the rest of the batch fetched before the seek
    assert loop.passed[10:] == list(range(10, 30))     # then everything from the seek's offset
    assert loop.gaps == []                             # nothing Faust would commit over
    assert loop._read_offset[TP] == 29 and not loop._read_offset.pins


def test_with_faust_own_read_offsets_the_records_fetched_again_are_dropped():
    """Why ReadOffsets exists: the batch's later records move the read offset past the seek."""
    loop = drain(defaultdict(lambda: None))
    assert loop.passed[10:] == [29]                    # 10 to 19 never come


def test_a_rebalance_seek_ends_a_re_read():
    reads = ReadOffsets({TP: 40})
    reads.reread(TP, 30)
    reads.update({TP: 50})                             # Faust's seek to the committed offsets
    reads[TP] = 51
    assert reads[TP] == 51 and not reads.pins


class _Thread:
    def __init__(self) -> None:
        self.seeks: list = []

    async def seek_wait(self, offsets: dict) -> None:
        self.seeks.append(offsets)


class _ConsumerTwin:
    """The partition sets of Faust's consumer, with its own methods over them."""
    resume_partitions = Consumer.resume_partitions
    _get_active_partitions = Consumer._get_active_partitions
    _set_active_tps = Consumer._set_active_tps
    on_buffer_drop = Consumer.on_buffer_drop

    def __init__(self, buffered) -> None:
        self._active_partitions = set()
        self._paused_partitions = set()
        self._buffered_partitions = {buffered}
        self._committed_offset: dict = {}
        self._read_offset = defaultdict(lambda: None)
        self._thread = _Thread()


def test_a_re_read_of_a_partition_left_out_of_the_fetches_keeps_faust_partition_sets_valid():
    """A message's tp is aiokafka's TopicPartition; Faust asserts its active partitions are its
    own TPs, so the one put back into the fetches must be converted (else the next buffer drop
    crashed the agent and the fetcher)."""
    from aiokafka.structs import TopicPartition
    from faust.types import TP as FaustTP

    from nextoffer.streams.worker.faust_internals import FaustPartitions
    left_out = TopicPartition("cart", 0)
    consumer = _ConsumerTwin(FaustTP("cart", 0))
    app = SimpleNamespace(consumer=consumer, in_recovery=False)
    asyncio.run(FaustPartitions(app, ["cart"]).seek(left_out, 5))
    assert consumer._get_active_partitions() == {FaustTP("cart", 0)}
    assert all(type(tp) is FaustTP for tp in consumer._active_partitions)
    assert consumer._buffered_partitions == set() and consumer._thread.seeks == [{left_out: 5}]
    consumer.on_buffer_drop(FaustTP("cart", 1))          # what crashed: no assertion error now
