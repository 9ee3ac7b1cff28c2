"""OffsetGuard: records Faust drops around a rebalance are read again, in order, once."""
from __future__ import annotations

import asyncio

from nextoffer.streams.worker.watchdog import OffsetGuard


class Consumer:
    def __init__(self, highwaters: dict, committed: dict | None = None) -> None:
        self.highwaters = highwaters
        self.committed_offsets = committed or {}
        self.seeks: list[tuple[str, int]] = []
        self.commits: list[dict] = []
        self.flow = True

    async def end_offsets(self, tps):
        return {tp: self.highwaters[tp] for tp in tps if tp in self.highwaters}

    def flowing(self):
        return self.flow

    def inputs(self):
        return list(self.highwaters)

    async def broker_committed(self, tps):
        return {tp: self.committed_offsets.get(tp) for tp in tps}

    async def group_committed(self):
        return dict(self.committed_offsets)

    async def commit(self, offsets):
        self.commits.append(dict(offsets))
        self.committed_offsets.update(offsets)

    async def seek(self, tp, offset, at_commit=False):
        self.seeks.append((tp, offset))


def see_all(guard, tp, offsets):
    for offset in offsets:
        asyncio.run(guard.seen(tp, offset))


def test_a_hole_is_read_again_once_and_nothing_is_skipped():
    consumer = Consumer({"cart-0": 20})
    guard = OffsetGuard(consumer, clock=lambda: 0.0)
    see_all(guard, "cart-0", [0, 1, 2, 6, 7, 8])
    assert consumer.seeks == [("cart-0", 3)]
    see_all(guard, "cart-0", [3, 4, 5, 6, 7, 8, 9])   # the re-read, then on
    assert consumer.seeks == [("cart-0", 3)] and guard.expected["cart-0"] == 10


def test_redelivered_records_are_left_to_the_event_id_check():
    consumer = Consumer({"cart-0": 20})
    guard = OffsetGuard(consumer, clock=lambda: 0.0)
    see_all(guard, "cart-0", [0, 1, 2, 0, 1, 2, 3])
    assert consumer.seeks == [] and guard.expected["cart-0"] == 4


def test_an_idle_agent_with_a_lost_tail_reads_it_again_and_unseen_partitions_from_the_commit():
    now = [0.0]
    consumer = Consumer({"cart-0": 10, "cart-1": 7, "cart-2": 4}, committed={"cart-1": 2, "cart-2": 4})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0])
    see_all(guard, "cart-0", [0, 1, 2])
    now[0] = 4.0
    assert asyncio.run(guard.check_idle()) == 0          # not idle long enough
    now[0] = 9.0
    assert asyncio.run(guard.check_idle()) == 2
    assert sorted(consumer.seeks) == [("cart-0", 3), ("cart-1", 2)]  # cart-2 has nothing new


def test_nothing_is_re_read_while_the_consumer_rebalances():
    now = [0.0]
    consumer = Consumer({"cart-0": 10})
    guard = OffsetGuard(consumer, stall_after=1.0, clock=lambda: now[0])
    see_all(guard, "cart-0", [0])
    consumer.flow, now[0] = False, 5.0
    assert asyncio.run(guard.check_idle()) == 0 and consumer.seeks == []


def test_partitions_given_away_are_forgotten():
    guard = OffsetGuard(Consumer({"cart-0": 10, "cart-1": 10}), clock=lambda: 0.0)
    consumer = guard.consumer
    see_all(guard, "cart-0", [0])
    see_all(guard, "cart-1", [0])
    guard.keep_only({"cart-1"})
    assert set(guard.expected) == {"cart-1"}
    # Back later, from wherever the group is: no hole is claimed against an old position.
    see_all(guard, "cart-0", [7])
    assert consumer.seeks == []


def test_a_hole_not_filled_is_read_again_when_idle_and_given_up_after_three_tries():
    now = [0.0]
    consumer = Consumer({"cart-0": 9})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0])
    see_all(guard, "cart-0", [0, 1, 5, 6, 7, 8])        # 2..4 missing; the re-read is undone
    for attempt in (10.0, 20.0):
        now[0] = attempt
        assert asyncio.run(guard.check_idle()) == 1
    see_all(guard, "cart-0", [3])                        # partly filled: 2 and 4 still missing
    assert guard.holes == {"cart-0": [[2, 3], [4, 5]]}
    assert consumer.seeks == [("cart-0", 2)] * 3         # found, then two idle re-reads
    now[0] = 30.0
    asyncio.run(guard.check_idle())                      # 2 given up; first try of offset 4
    assert consumer.seeks[-1] == ("cart-0", 4) and guard.holes == {"cart-0": [[4, 5]]}


class Stuck:
    """Collects the guard's last-resort calls."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def __call__(self, why: str) -> None:
        self.reasons.append(why)


def test_a_stream_paused_past_the_limit_is_stuck_unless_recovery_makes_progress():
    now, stuck = [0.0], Stuck()
    consumer = Consumer({"cart-0": 10})
    consumer.flow = False
    consumer.remaining = 500
    consumer.recovery_remaining = lambda: consumer.remaining
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0], restart_after=60.0, on_stuck=stuck)
    for t in range(10, 200, 10):       # a big table recovering: the remaining count goes down
        now[0] = float(t)
        consumer.remaining -= 1
        asyncio.run(guard.check_idle())
    assert stuck.reasons == []
    for t in range(200, 280, 10):      # no progress any more
        now[0] = float(t)
        asyncio.run(guard.check_idle())
    assert stuck.reasons and "paused" in stuck.reasons[0]


def test_a_consumer_that_stops_answering_is_stuck_after_three_timeouts():
    stuck = Stuck()
    consumer = Consumer({"cart-0": 10})

    async def hang(tps):
        await asyncio.sleep(3600)
    consumer.end_offsets = hang
    now = [0.0]
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0], restart_after=60.0, on_stuck=stuck,
                        answer_within=0.01)
    for t in (10, 20, 30):
        now[0] = float(t)
        assert asyncio.run(guard.check_idle()) == 0
    assert guard.unanswered == 3 and stuck.reasons == ["the consumer did not answer 3 times in a row"]


def test_records_never_delivered_after_re_reads_are_stuck_but_a_commit_marker_is_not():
    stuck = Stuck()
    now = [0.0]
    consumer = Consumer({"cart-0": 50, "cart-1": 11})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0], restart_after=60.0, on_stuck=stuck)
    see_all(guard, "cart-0", [0, 1, 2])
    see_all(guard, "cart-1", [8, 9])      # offset 10 is a transaction marker
    for t in range(10, 100, 10):
        now[0] = float(t)
        asyncio.run(guard.check_idle())
    assert guard.expected["cart-1"] == 11, "the marker is passed over after the re-reads"
    assert stuck.reasons and "unprocessed" in stuck.reasons[0]
    assert guard.safe_positions() == {"cart-0": 3, "cart-1": 11}


def test_safe_positions_start_at_the_first_hole():
    consumer = Consumer({"cart-0": 20})
    guard = OffsetGuard(consumer, clock=lambda: 0.0)
    see_all(guard, "cart-0", [0, 1, 2, 6, 7])
    assert guard.safe_positions() == {"cart-0": 3}


def test_records_dropped_before_the_first_one_after_an_assignment_are_read_again():
    # The group had committed 5 when the partition was assigned; the first record the agent
    # gets is 8: 5, 6 and 7 were dropped (and acknowledged, so the commit would move past them).
    now = [0.0]
    consumer = Consumer({"cart-0": 10}, committed={"cart-0": 5})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0])
    asyncio.run(guard.on_assigned(["cart-0"]))
    consumer.committed_offsets["cart-0"] = 10          # Faust committed past them meanwhile
    see_all(guard, "cart-0", [8, 9])
    assert consumer.seeks == [("cart-0", 5)]
    see_all(guard, "cart-0", [5, 6, 7, 8, 9])
    now[0] = 20.0
    assert asyncio.run(guard.check_idle()) == 0 and guard.holes == {}


def test_a_first_record_at_the_committed_offset_needs_nothing():
    now = [0.0]
    consumer = Consumer({"cart-0": 10}, committed={"cart-0": 5})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0])
    asyncio.run(guard.on_assigned(["cart-0"]))
    see_all(guard, "cart-0", [5, 6, 7, 8, 9])
    now[0] = 10.0
    assert asyncio.run(guard.check_idle()) == 0 and consumer.seeks == []


def test_an_applied_partition_whose_commit_lags_is_committed_by_the_guard():
    # Everything up to 10 applied, nothing missing, but the group's commit is stuck at 5
    # (a record Faust dropped without acknowledging it holds its commits back).
    now = [0.0]
    consumer = Consumer({"cart-0": 10, "cart-1": 10}, committed={"cart-0": 5, "cart-1": 2})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0])
    asyncio.run(guard.on_assigned(["cart-0", "cart-1"]))
    see_all(guard, "cart-0", range(5, 10))
    see_all(guard, "cart-1", [2, 3, 5])                  # 4 is missing: not committed
    now[0] = 10.0
    asyncio.run(guard.check_idle())
    assert consumer.commits == [{"cart-0": 10}]


def test_no_commit_goes_past_an_event_whose_outputs_kafka_has_not_confirmed():
    # Applied up to 10 on both partitions, but cart-1's events from 7 on wait for their outputs
    # (a delivery being retried): the guard commits cart-0 only, and the stuck exit's positions
    # stop at 7 on cart-1.
    now, held = [0.0], {"cart-1": 7}
    consumer = Consumer({"cart-0": 10, "cart-1": 10}, committed={"cart-0": 5, "cart-1": 5})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0], unconfirmed=lambda: dict(held))
    asyncio.run(guard.on_assigned(["cart-0", "cart-1"]))
    see_all(guard, "cart-0", range(5, 10))
    see_all(guard, "cart-1", range(5, 10))
    now[0] = 10.0
    asyncio.run(guard.check_idle())
    assert consumer.commits == [{"cart-0": 10}]
    assert guard.safe_positions() == {"cart-0": 10, "cart-1": 7}
    held.clear()                                       # confirmed: now it may be committed
    now[0] = 20.0
    asyncio.run(guard.check_idle())
    assert consumer.commits[-1] == {"cart-1": 10}


def test_an_agent_held_back_while_kafka_refuses_its_outputs_is_neither_re_read_nor_stuck():
    stuck, now, refused = Stuck(), [0.0], ["12 records refused: MessageSizeTooLargeError"]
    consumer = Consumer({"cart-0": 50})
    guard = OffsetGuard(consumer, stall_after=5.0, clock=lambda: now[0], restart_after=60.0, on_stuck=stuck,
                        delivering=lambda: refused[0])
    see_all(guard, "cart-0", [0, 1, 2])       # records 3 to 49 wait behind the refused batch
    for t in range(10, 300, 10):
        now[0] = float(t)
        assert asyncio.run(guard.check_idle()) == 0
    assert consumer.seeks == [] and stuck.reasons == []
    refused[0] = None                          # Kafka takes them: the guard is back on watch
    now[0] = 310.0
    assert asyncio.run(guard.check_idle()) == 1 and consumer.seeks == [("cart-0", 3)]
