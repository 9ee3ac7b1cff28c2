"""Partitioned "bought together" learning: workers that each count their own anchors' pairs and
share the rows know what one worker counting everything knows; a take-over counts again only
what the shared rows miss."""
from __future__ import annotations

import random

import pytest

from nextoffer.models.bought_together import ADOPT_LAG, DAY, anchor_partition
from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.pair_partitions import PairPartitions

PARTITIONS, BASKET_PARTITIONS = 4, 2
PRODUCTS = [f"p{n}" for n in range(60)]


def orders(n: int, seed: int = 3) -> list[tuple[int, int, Basket]]:
    """(baskets partition, offset, order): ``n`` orders of 2 to 8 lines, over two partitions."""
    rng, offsets, out = random.Random(seed), [0] * BASKET_PARTITIONS, []
    for i in range(n):
        lines = rng.sample(PRODUCTS[:20] if rng.random() < 0.7 else PRODUCTS, rng.randint(2, 8))
        partition = i % BASKET_PARTITIONS
        out.append((partition, offsets[partition],
                    Basket(f"u{i % 37}", 1_700_000_000.0 + 3600 * i, tuple(LineItem(p, 1, 5.0) for p in lines))))
        offsets[partition] += 1
    return out


def engine() -> OfferEngine:
    return OfferEngine(OfferRules())


def worker(owned: set[int]) -> PairPartitions:
    pairs = PairPartitions(engine(), PARTITIONS)
    pairs.owned = set(owned)
    return pairs


def positions(upto: list) -> list[int]:
    reached = [0] * BASKET_PARTITIONS
    for partition, offset, _ in upto:
        reached[partition] = offset + 1
    return reached


def exchange(*workers: PairPartitions, covered: list[int]) -> None:
    """Each worker's publication read by every worker (as the compacted topic delivers it)."""
    published = [w.publication(covered) for w in workers]
    for records in published:
        for w in workers:
            for _, key, value in records:
                w.receive(key, value)


def assert_same_rows(pairs: PairPartitions, whole: OfferEngine, products=PRODUCTS) -> None:
    for pid in products:
        assert pairs.engine.bought.row(pid) == pytest.approx(whole.bought.row(pid), rel=1e-12), pid


def readable(whole: OfferEngine, pid: str) -> dict:
    """The pairs of ``pid``'s row that a decision can use as of the latest order learned."""
    bought = whole.bought
    least = bought.read_support * bought._inflation_at(bought.latest - ADOPT_LAG)
    return {b: n for b, n in bought.row(pid).items() if n >= least}


def complements(pairs_engine: OfferEngine, anchor: str, now: float, support: float) -> list:
    return [(c.product_id, c.anchor_id, round(c.score, 12), round(c.support, 9))
            for c in pairs_engine.bought.complements([(anchor, 1.0)], now, support)]


def test_two_workers_each_counting_half_the_anchors_know_all_pairs():
    whole, a, b = engine(), worker({0, 1}), worker({2, 3})
    log = orders(400)
    for _, _, order in log:
        for e in (whole, a.engine, b.engine):
            e.learn_basket(order)
    exchange(a, b, covered=[200, 200])
    latest = log[-1][2].ts
    for w in (a, b):
        mine = [p for p in PRODUCTS if w.owns(p)]
        assert_same_rows(w, whole, mine)                    # counted here: every pair
        for pid in PRODUCTS:                                # adopted: the pairs decisions read
            if not w.owns(pid):
                assert w.engine.bought.row(pid) == pytest.approx(readable(whole, pid), rel=1e-12), pid
        # The same complements as one worker counting everything, for every anchor, from a lag
        # behind the owner's latest order on, with any support a reader asks for.
        for anchor in PRODUCTS:
            for now in (latest - ADOPT_LAG, latest, latest + 30 * DAY):
                for support in (w.engine.bought.read_support, 2.0, 3.0):
                    assert complements(w.engine, anchor, now, support) == complements(whole, anchor, now, support)
    stored = sum(len(w.engine.bought.row(p)) for w in (a, b) for p in PRODUCTS if not w.owns(p))
    assert stored < sum(len(whole.bought.row(p)) for p in PRODUCTS)  # fewer pairs adopted than counted
    # Each counted its own anchors' pairs only: together as many updates as one worker alone.
    updates = [w.engine.tally["updates.pairs"] for w in (a, b)]
    assert sum(updates) == whole.tally["updates.pairs"]
    assert all(0.3 < n / whole.tally["updates.pairs"] < 0.7 for n in updates)


def learned(log: list, upto: int) -> tuple[OfferEngine, PairPartitions]:
    """One engine that learned every order of ``log``, and an owner of every partition that
    learned the first ``upto``."""
    whole, owner = engine(), worker({0, 1, 2, 3})
    for _, _, order in log:
        whole.learn_basket(order)
    for _, _, order in log[:upto]:
        owner.engine.learn_basket(order)
    return whole, owner


def taken_over(records: list, log: list) -> tuple[PairPartitions, list[int], int]:
    """A worker that read ``records`` of the complements topic and every order of ``log``, then
    took every partition over; its replay's starts and how many orders it counted again."""
    newcomer = worker(set())
    for _, key, value in records:
        newcomer.receive(key, value)
    for _, key, value in records:                 # read again, whole, for the partitions taken
        newcomer.restore(key, value, {0, 1, 2, 3})
    for _, _, order in log:
        newcomer.engine.learn_basket(order)       # every worker reads every order (not its pairs yet)
    starts, replay = newcomer.take_over({0, 1, 2, 3}, positions(log))
    again = 0
    for partition, offset, order in log:
        if offset >= starts[partition] and (anchors := replay.anchors(partition, offset)) is not None:
            newcomer.engine.replay_pairs(order, anchors)
            again += 1
    replay.done()
    return newcomer, starts, again


def test_a_worker_taking_over_counts_again_only_the_orders_after_the_marker():
    log = orders(300)
    whole, owner = learned(log, 200)
    published = owner.publication(positions(log[:200]))
    for _, _, order in log[200:]:
        owner.engine.learn_basket(order)          # counted, never published: the owner crashes
    newcomer, starts, again = taken_over(published, log)
    assert starts == positions(log[:200])
    assert again == 100 and not newcomer.restoring
    assert_same_rows(newcomer, whole)


def test_rows_published_after_the_last_marker_are_not_counted_twice():
    log = orders(300, seed=5)
    whole, owner = learned(log, 150)
    first = owner.publication(positions(log[:150]))
    for _, _, order in log[150:250]:
        owner.engine.learn_basket(order)
    cut_short = [r for r in owner.publication(positions(log[:250])) if not r[1].startswith(b"\x00")][:5]
    probe = worker(set())
    for _, key, value in first + cut_short:       # the owner died before its markers went out
        probe.receive(key, value)
    assert len(probe.ahead) == 5                  # rows newer than their partition's marker
    newcomer, _, _ = taken_over(first + cut_short, log)
    assert_same_rows(newcomer, whole)


def test_rows_of_partitions_being_counted_again_wait_and_markers_follow_rows():
    owner = worker({0, 1})
    owner.restoring = {1}
    mine = [p for p in PRODUCTS if anchor_partition(p, PARTITIONS) in (0, 1)]
    owner.engine.learn_basket(Basket("u", 0.0, tuple(LineItem(p, 1, 1.0) for p in mine[:6])))
    records = owner.publication([1, 0])
    keys = [key for _, key, _ in records]
    assert keys[-1] == b"\x00covered:0" and b"\x00covered:1" not in keys
    assert all(anchor_partition(k.decode(), PARTITIONS) == 0 for k in keys[:-1])
    assert {p for p in mine[:6] if anchor_partition(p, PARTITIONS) == 1} == owner.engine.bought.touched
    owner.not_published(records)                  # Kafka refused them: sent with the next round
    assert owner.publication([1, 0])[-1][1] == b"\x00covered:0"


def test_a_single_worker_counts_what_the_unpartitioned_engine_does():
    whole, alone = engine(), worker({0, 1, 2, 3})
    for _, _, order in orders(200, seed=9):
        whole.learn_basket(order)
        alone.engine.learn_basket(order)
    assert_same_rows(alone, whole)
    assert alone.engine.tally["updates.pairs"] == whole.tally["updates.pairs"]


def test_rows_of_partitions_given_up_are_left_to_their_new_owner():
    owner = worker({0, 1, 2, 3})
    owner.engine.learn_basket(Basket("u", 0.0, tuple(LineItem(p, 1, 1.0) for p in PRODUCTS[:10])))
    owner.give_up({2, 3})                         # moved away without a revocation of its own
    records = owner.publication([1, 0])
    assert {anchor_partition(k.decode(), PARTITIONS) for _, k, _ in records if not k.startswith(b"\x00")} <= {0, 1}
    assert {k for _, k, _ in records if k.startswith(b"\x00")} == {b"\x00covered:0", b"\x00covered:1"}
