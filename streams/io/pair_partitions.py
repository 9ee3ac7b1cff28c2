"""Partitioned "bought together" learning: each worker counts the pairs of its own anchors.

Counting pairs costs O(lines²) an order and is most of the learners' memory, so it is split
the way Kafka Streams splits an aggregation: by key. An anchor product's *learning partition*
(:func:`~nextoffer.models.bought_together.anchor_partition`) has the number of a shopper
partition, and the worker the consumer group gave that shopper partition counts the anchor's
pairs. Every worker still reads every order (the baskets topic), for the learners that cost
O(lines): product counts, repeats, price proportions, categories.

Sharing. Every ``complements_interval`` seconds a worker publishes the rows it changed (an
anchor's pair counts, at most ``2 × max_neighbours`` of them) to the compacted
``nextoffer-complements`` topic, in the topic partition of the anchor's learning partition,
then a *marker* per partition it owns: the baskets offsets its rows include. Every worker reads
that topic in full and adopts the rows it does not count, so a decision sees every anchor.

Memory. An adopted row keeps only the pairs a decision can still use (those with the support
decisions ask for, as of the owner's latest order): on a long-tail catalog most pairs are seen
once, and only their owner needs them, to count on.

Recovery. The topic is also the counts' changelog. A worker given a partition (a rebalance, a
crashed or stopped worker) reads that partition's rows from the topic again, whole, then counts again only the orders
past the partition's marker (past a row's own offsets for a row published after the marker, by
a worker stopped mid-publication), instead of every order ever placed.
"""
from __future__ import annotations

from typing import Optional

import orjson

from nextoffer.models.bought_together import anchor_partition
from nextoffer.models.engine import OfferEngine

#: The key of a partition's marker on the complements topic.
MARKER = b"\x00covered"


class PairPartitions:
    """Which anchors this worker counts, what it shares, and how it takes a partition over.

    >>> from nextoffer.models.rules import OfferRules
    >>> from nextoffer.models.events import LineItem
    >>> from nextoffer.models.engine import Basket
    >>> owner, reader = PairPartitions(OfferEngine(OfferRules()), 2), PairPartitions(OfferEngine(OfferRules()), 2)
    >>> owner.owned = {0, 1}
    >>> order = Basket("u1", 0.0, (LineItem("tea", 1, 4.0), LineItem("mug", 1, 6.0)))
    >>> for pairs in (owner, reader):
    ...     pairs.engine.learn_basket(order)
    ...     pairs.engine.learn_basket(order)         # seen twice: a pair decisions can use
    >>> for partition, key, value in owner.publication([1, 0]):
    ...     reader.receive(key, value)
    >>> reader.engine.bought.row("tea") == owner.engine.bought.row("tea"), reader.markers
    (True, {0: (1, 0), 1: (1, 0)})
    """

    def __init__(self, engine: OfferEngine, partitions: int) -> None:
        self.engine = engine
        self.partitions = partitions
        self.owned: set[int] = set()                   # learning partitions counted here
        self.restoring: set[int] = set()               # taken over, their orders being counted again
        self.markers: dict[int, tuple[int, ...]] = {}  # partition -> baskets offsets its rows include
        self.ahead: dict[str, tuple[int, ...]] = {}    # rows published after their partition's marker
        self.duplicates: set[tuple[int, int]] = set()  # baskets records skipped as replayed orders
        self._marked: dict[int, tuple[int, ...]] = {}  # the markers this worker wrote last
        engine.bought.owns = self.owns

    def owns(self, product_id: str) -> bool:
        return anchor_partition(product_id, self.partitions) in self.owned

    # -- sharing ------------------------------------------------------------------
    def publication(self, covered: list[int]) -> list[tuple[int, bytes, bytes]]:
        """The records to publish, as (partition, key, value): the rows changed since the last
        publication, then the markers of the partitions this worker has fully counted, which
        include the baskets offsets ``covered`` (one a baskets partition). Call
        :meth:`not_published` with them if they could not be sent."""
        bought, v = self.engine.bought, list(covered)
        records, kept = [], set()
        for anchor in bought.take_touched():
            partition = anchor_partition(anchor, self.partitions)
            if partition not in self.owned:
                continue                # given up: its new owner shares it (and counts what this missed)
            if partition in self.restoring:
                kept.add(anchor)        # counted again right now: shared once complete
                continue
            row = bought.row(anchor)
            records.append((partition, anchor.encode(), orjson.dumps(
                {"t0": bought.t0, "ts": bought.latest, "v": v, "r": list(row.items())})))
        bought.touched |= kept
        for partition in sorted(self.owned - self.restoring):
            if records or self._marked.get(partition) != tuple(v):
                records.append((partition, marker_key(partition), orjson.dumps({"v": v})))
                self._marked[partition] = tuple(v)
        return records

    def not_published(self, records: list[tuple[int, bytes, bytes]]) -> None:
        """Rows and markers that Kafka did not take: published again next time."""
        for partition, key, _ in records:
            if key.startswith(MARKER):
                self._marked.pop(partition, None)
            else:
                self.engine.bought.touched.add(key.decode())

    def receive(self, key: Optional[bytes], value: Optional[bytes]) -> None:
        """One record of the complements topic: a row to adopt, or a partition's marker."""
        if not key or not value:
            return
        data = orjson.loads(value)
        if key.startswith(MARKER):
            return self._marker(key, data)
        anchor = key.decode()
        partition = anchor_partition(anchor, self.partitions)
        if partition in self.owned:
            return                  # counted here: this worker's own row, or one it has replaced
        # Kept for decisions only (the pairs they can use): a take-over restores the full rows.
        self.engine.bought.adopt(anchor, dict(data["r"]), data["t0"], data.get("ts"))
        covered, marker = tuple(data["v"]), self.markers.get(partition)
        if marker is None or any(a > b for a, b in zip(covered, marker)):
            self.ahead[anchor] = covered
        else:
            self.ahead.pop(anchor, None)

    def restore(self, key: Optional[bytes], value: Optional[bytes], partitions: set[int]) -> bool:
        """One record of the complements topic read again for ``partitions`` about to be taken
        over: their rows adopted whole, every pair, since counting goes on from them (an adopted
        row keeps only what decisions read). Returns whether it was a row of theirs."""
        if not key or not value or key.startswith(MARKER):
            return False
        anchor = key.decode()
        if anchor_partition(anchor, self.partitions) not in partitions:
            return False
        data = orjson.loads(value)
        self.engine.bought.adopt(anchor, dict(data["r"]), data["t0"])
        return True

    def _marker(self, key: bytes, data: dict) -> None:
        partition = int(key[len(MARKER) + 1:]) if len(key) > len(MARKER) else None
        if partition is None:
            return
        marker = self.markers[partition] = tuple(data["v"])
        for anchor in [a for a, v in self.ahead.items()
                       if anchor_partition(a, self.partitions) == partition
                       and all(x <= y for x, y in zip(v, marker))]:
            del self.ahead[anchor]

    # -- taking partitions over ----------------------------------------------------
    def take_over(self, partitions: set[int], positions: list[int]) -> tuple[list[int], "Replay"]:
        """Count ``partitions`` from now on (``positions``: the baskets offsets reached) and say
        what to count again: from which offset of each baskets partition, and which anchors of
        each order there."""
        gained = set(partitions) - self.owned
        self.owned |= gained
        self.restoring |= gained
        starts = list(positions)
        for partition in gained:
            marker = self.markers.get(partition, (0,) * len(positions))
            starts = [min(s, m) for s, m in zip(starts, _padded(marker, len(positions)))]
        return starts, Replay(self, gained, list(positions))

    def give_up(self, partitions: set[int]) -> None:
        """``partitions`` are no longer counted here (after a last publication)."""
        self.owned -= set(partitions)
        self.restoring -= set(partitions)


class Replay:
    """The orders a take-over counts again: baskets offsets below where counting went on, past
    what the partition's rows already include."""

    def __init__(self, pairs: PairPartitions, gained: set[int], stop: list[int]) -> None:
        self.pairs, self.gained, self.stop = pairs, gained, stop
        self.zero = (0,) * len(stop)

    def anchors(self, basket_partition: int, offset: int):
        """Which anchors the order at ``offset`` of baskets partition ``basket_partition`` is counted
        again for (None: for none)."""
        if offset >= self.stop[basket_partition] or (basket_partition, offset) in self.pairs.duplicates:
            return None
        pairs, gained = self.pairs, self.gained

        def counted(anchor: str) -> bool:
            partition = anchor_partition(anchor, pairs.partitions)
            if partition not in gained or partition not in pairs.owned:
                return False
            covered = pairs.ahead.get(anchor) or pairs.markers.get(partition, self.zero)
            return offset >= _padded(covered, len(self.stop))[basket_partition]
        return counted

    def done(self) -> None:
        pairs = self.pairs
        pairs.restoring -= self.gained
        for anchor in [a for a in pairs.ahead if anchor_partition(a, pairs.partitions) in self.gained]:
            del pairs.ahead[anchor]


def _padded(offsets: tuple[int, ...], n: int) -> tuple[int, ...]:
    """Offsets of ``n`` baskets partitions (a marker written with fewer partitions counts from 0)."""
    return tuple(offsets[:n]) + (0,) * (n - len(offsets))


def marker_key(partition: int) -> bytes:
    return MARKER + b":" + str(partition).encode()
