"""Online "bought together" counts with lift, attachment rate and time decay.

Decay is exponential with a half-life. Instead of shrinking every count as time
passes, new observations are weighted up by ``2 ** ((ts - t0) / half_life)``:
ratios (attachment rate, lift) are unchanged by a common scale, and absolute
counts are scaled back down when read, so an update costs O(basket²) and
nothing has to sweep the tables.
"""
from __future__ import annotations

import heapq
import sys
import zlib
from array import array
from operator import itemgetter
from typing import Callable, Iterable, NamedTuple, Optional, Sequence

try:        # built by the install (pyproject.toml); a build without a C compiler runs the Python
    from nextoffer.models._kernels import PairRow, complements_rows, complements_scan, count_pairs
except ImportError:
    PairRow = complements_rows = complements_scan = count_pairs = None



def kernels_label(enabled: bool = True) -> str:
    """Which versions of the kernels run, as benchmarks and evaluations report it (``enabled``:
    NEXTOFFER_COMPILED_KERNELS)."""
    if complements_scan is None:
        return "pure Python (no compiled kernels)"
    return "compiled kernels" if enabled else "compiled kernels off"


DAY = 86_400.0
_RESCALE_AT = 1e150

#: How far a decision's clock may lag behind the latest order of the worker that shared a row
#: (workers read the same orders, a few seconds apart): an adopted row keeps every pair that can
#: still reach the support a decision asks for at that time.
ADOPT_LAG = DAY

#: The support :meth:`BoughtTogether.complements` asks of a pair unless told otherwise.
DEFAULT_MIN_SUPPORT = 2.0


def anchor_partition(product_id: str, partitions: int) -> int:
    """The learning partition of an anchor product: the worker that owns it counts its pairs.
    Fixed by the product id (CRC-32), so every worker and every run agree.

    >>> [anchor_partition(pid, 4) for pid in ("mug", "tea", "case")]
    [1, 2, 0]
    """
    return zlib.crc32(product_id.encode()) % partitions


class SharedRow:
    """An anchor's pair counts adopted from the worker that counts them: read-only, about 16
    bytes a pair (product ids shared with every other row, counts as raw doubles) instead of a
    dictionary's 60-odd; replaced whole by the owner's next publication.

    >>> row = SharedRow({"mug": 2.0, "case": 1.0})
    >>> len(row), dict(row.items()), row.get("mug"), row.get("tea", 0.0)
    (2, {'mug': 2.0, 'case': 1.0}, 2.0, 0.0)
    """

    __slots__ = ("ids", "counts")

    def __init__(self, row: dict[str, float], scale: float = 1.0) -> None:
        self.ids = tuple(sys.intern(pid) for pid in row)
        self.counts = array("d", row.values() if scale == 1.0 else (v * scale for v in row.values()))

    def items(self):
        return zip(self.ids, self.counts)

    def get(self, pid: str, default: Optional[float] = None) -> Optional[float]:
        try:
            return self.counts[self.ids.index(pid)]
        except ValueError:
            return default

    def __len__(self) -> int:
        return len(self.ids)


class Complement(NamedTuple):
    """A product bought with an anchor, with the evidence for it (a named tuple: a decision
    reads dozens)."""

    product_id: str
    score: float
    anchor_id: str
    attachment_rate: float
    lift: float
    support: float


class BoughtTogether:
    """Co-occurrence of products in orders, learned one order at a time.

    >>> bt = BoughtTogether(half_life=None)
    >>> for basket in (["phone", "case"], ["phone", "case"], ["phone", "charger"], ["mug"]):
    ...     bt.observe_basket(basket, ts=0.0)
    >>> round(bt.attachment_rate("phone", "case"), 3)
    0.667
    >>> round(bt.lift("phone", "case"), 3)
    1.333
    >>> [c.product_id for c in bt.complements([("phone", 1.0)], now=0.0, min_support=2)]
    ['case']
    """

    def __init__(self, half_life: Optional[float] = 90 * DAY, max_neighbours: int = 100,
                 max_basket: int = 60, lift_exponent: float = 0.2) -> None:
        self.half_life = half_life
        self.max_neighbours = max_neighbours
        self.max_basket = max_basket
        self.lift_exponent = lift_exponent
        self._items: dict[str, float] = {}
        #: anchor -> its row: a PairRow (the compiled kernels' counted rows, a dict's reads in a
        #: third of its memory), a dict (the Python version's) or a SharedRow (adopted)
        self._pairs: dict[str, object] = {}
        self._orders = 0.0
        self._t0: Optional[float] = None
        #: Which anchors' rows this instance counts (all when None): with partitioned learning each
        #: worker counts the pairs of its own partitions' anchors and adopts the other rows.
        self.owns: Optional[Callable[[str], bool]] = None
        #: The counted anchors whose rows changed since :meth:`take_touched` (only with ``owns``).
        self.touched: set[str] = set()
        #: Pair counts updated so far: what learning costs (each worker's share of it).
        self.updates = 0
        #: The least support any reader asks of a pair (decisions, showcases): an adopted row keeps
        #: only the pairs that can still reach it, the few a decision reads (about one in eight
        #: on a long-tail catalog), while the owner counts every pair.
        self.read_support = 0.0
        #: The time of the latest order learned: what a shared row's pairs are judged against.
        self.latest: Optional[float] = None
        #: Whether :meth:`complements` and the pair counting run the compiled kernels (when they
        #: were built): the same results as the Python versions, which ``False`` runs.
        self.compiled = complements_scan is not None

    # -- learning -------------------------------------------------------------
    def observe_basket(self, product_ids: Iterable[str], ts: float, weight: float = 1.0) -> None:
        """Count one order (or one cart) of distinct products at time ``ts``.

        >>> bt = BoughtTogether()
        >>> bt.observe_basket(["tea", "mug", "tea"], ts=0.0)
        >>> bt.products, round(bt.attachment_rate("tea", "mug"), 2)
        (2, 1.0)
        """
        basket = list(dict.fromkeys(product_ids))
        if not basket:
            return
        w = weight * self._inflation(ts)
        if self.latest is None or ts > self.latest:
            self.latest = ts
        self._orders += w
        for pid in basket:
            self._items[pid] = self._items.get(pid, 0.0) + w
        # Very large orders (wholesale) say little about complements and cost O(n²).
        paired = basket[: self.max_basket]
        anchors = paired if self.owns is None else [a for a in paired if self.owns(a)]
        self._count_pairs(anchors, paired, w)

    def observe_pairs(self, product_ids: Iterable[str], ts: float, anchors: Callable[[str], bool],
                      weight: float = 1.0) -> None:
        """Count one order's pairs again for the ``anchors`` it holds, and nothing else: an order
        learned before a partition came to this worker, replayed for that partition's anchors.

        >>> whole, half = BoughtTogether(half_life=None), BoughtTogether(half_life=None)
        >>> half.owns = lambda pid: pid == "tea"
        >>> for bt in (whole, half):
        ...     bt.observe_basket(["tea", "mug"], ts=0.0)
        >>> half.observe_pairs(["tea", "mug"], ts=0.0, anchors=lambda pid: pid == "mug")
        >>> half.row("mug") == whole.row("mug"), half.orders() == whole.orders()
        (True, True)
        """
        basket = list(dict.fromkeys(product_ids))[: self.max_basket]
        self._count_pairs([a for a in basket if anchors(a)], basket, weight * self._inflation(ts))

    def _count_pairs(self, anchors: list[str], paired: list[str], w: float) -> None:
        self.updates += len(anchors) * (len(paired) - 1)
        if self.owns is not None:
            self.touched.update(anchors)
        if self.compiled:
            # a row past twice max_neighbours is cut to its max_neighbours strongest in the kernel
            return count_pairs(self._pairs, anchors, paired, float(w), 2 * self.max_neighbours, self._own_row)
        for a in anchors:
            row = self._pairs.get(a)
            if row is None:
                row = self._pairs[a] = {}
            elif type(row) is not dict:            # adopted, or a kernel's: counted here from now on
                row = self._pairs[a] = dict(row.items())
            get = row.get
            for b in paired:
                if a != b:
                    # A new pair holds the order's own weight object: most pairs of a long-tail
                    # catalog are seen once, and a float of their own would be a third of a pair.
                    both = get(b)
                    row[b] = w if both is None else both + w
            if len(row) > 2 * self.max_neighbours:
                self._prune(a)

    # -- sharing rows between workers ----------------------------------------
    def row(self, anchor: str) -> dict[str, float]:
        """The anchor's pair counts as held (scaled as of :attr:`t0`): what its owner shares."""
        return dict(self._pairs.get(anchor, {}).items())

    @property
    def t0(self) -> Optional[float]:
        """The time the counts' scale starts from (the first order's)."""
        return self._t0

    def adopt(self, anchor: str, row: dict[str, float], t0: Optional[float],
              latest: Optional[float] = None) -> None:
        """Take the row of an anchor counted by another worker (scaled as of its ``t0``) in place
        of this one's, rescaled to this instance's start. With the owner's ``latest`` order time,
        only the pairs that a reader can still use are kept (see :attr:`read_support`); without
        it, all of them (a partition taken over is counted on from its full rows).

        >>> owner, reader = BoughtTogether(half_life=None), BoughtTogether(half_life=None)
        >>> for basket in (["tea", "mug"], ["tea", "mug"], ["tea", "spoon"]):
        ...     owner.observe_basket(basket, ts=0.0)
        >>> reader.adopt("tea", owner.row("tea"), owner.t0)
        >>> reader.row("tea") == owner.row("tea")
        True
        >>> reader.read_support = 1.5
        >>> reader.adopt("tea", owner.row("tea"), owner.t0, owner.latest)
        >>> reader.row("tea")
        {'mug': 2.0}
        """
        if self._t0 is None:
            self._t0 = t0
        scale = (2.0 ** ((t0 - self._t0) / self.half_life)
                 if self.half_life and t0 is not None and self._t0 is not None and t0 != self._t0 else 1.0)
        if row and latest is not None and self.read_support:
            # Counts only fall behind the support asked as time goes on: a pair below it as of the
            # owner's latest order (less the lag allowed) stays below it for every later decision.
            least = self.read_support * self._inflation_at(latest - ADOPT_LAG) / scale
            row = {pid: both for pid, both in row.items() if both >= least}
        if row:
            self._pairs[anchor] = SharedRow(row, scale)
        else:
            self._pairs.pop(anchor, None)

    def take_touched(self) -> set[str]:
        """The counted anchors whose rows changed since the last call."""
        touched, self.touched = self.touched, set()
        return touched

    def _own_row(self, anchor: str):
        """An adopted row (or a Python one) made a kernel's counted one: this worker took its
        anchor over."""
        row = self._pairs[anchor] = PairRow(self._pairs[anchor].items())
        return row

    def _prune(self, pid: str) -> None:
        """The Python version's cut of a row to its strongest pairs (the kernels cut a PairRow
        in place, to the same pairs in the same order)."""
        keep = sorted(self._pairs[pid].items(), key=itemgetter(1), reverse=True)[: self.max_neighbours]
        self._pairs[pid] = dict(keep)

    def _inflation(self, ts: float) -> float:
        if not self.half_life:
            return 1.0
        if self._t0 is None:
            self._t0 = ts
        factor = 2.0 ** ((ts - self._t0) / self.half_life)
        if factor > _RESCALE_AT:
            self._rescale(ts)
            factor = 1.0
        return factor

    def _rescale(self, ts: float) -> None:
        scale = 1.0 / self._inflation_at(ts)
        self._orders *= scale
        self._items = {k: v * scale for k, v in self._items.items()}
        self._pairs = {a: self._scaled(row, scale) for a, row in self._pairs.items()}
        self._t0 = ts

    @staticmethod
    def _scaled(row, scale: float):
        """A row of any of the three kinds with every count times ``scale``, in its order."""
        if type(row) is dict:
            return {b: v * scale for b, v in row.items()}
        if type(row) is PairRow:
            return PairRow([(b, v * scale) for b, v in row.items()])
        return SharedRow(dict(row.items()), scale)

    def _inflation_at(self, now: float) -> float:
        if not self.half_life or self._t0 is None:
            return 1.0
        return 2.0 ** ((now - self._t0) / self.half_life)

    # -- reading --------------------------------------------------------------
    @property
    def products(self) -> int:
        return len(self._items)

    def orders(self, now: Optional[float] = None) -> float:
        """Decayed number of orders seen (as of ``now``; raw scale without it)."""
        return self._orders / (self._inflation_at(now) if now is not None else 1.0)

    def item_count(self, pid: str, now: float) -> float:
        return self._items.get(pid, 0.0) / self._inflation_at(now)

    def scale(self, now: float) -> float:
        """What the held counts are divided by to read them as of ``now``: ``item_count(pid, now)``
        is ``item_counts.get(pid, 0.0) / scale(now)``, for readers of many products."""
        return self._inflation_at(now)

    @property
    def item_counts(self) -> dict[str, float]:
        """Product -> orders that held it, as held (read only; see :meth:`scale`)."""
        return self._items

    def attachment_rate(self, anchor: str, pid: str) -> float:
        """Share of orders with ``anchor`` that also hold ``pid``."""
        n = self._items.get(anchor, 0.0)
        return self._pairs.get(anchor, {}).get(pid, 0.0) / n if n else 0.0

    def lift(self, anchor: str, pid: str) -> float:
        """How much likelier ``pid`` is in an order with ``anchor`` than in any order."""
        na, nb = self._items.get(anchor, 0.0), self._items.get(pid, 0.0)
        both = self._pairs.get(anchor, {}).get(pid, 0.0)
        return both * self._orders / (na * nb) if na and nb else 0.0

    def strongest_pairs(self, limit: int = 10, min_support: float = 3.0,
                        now: Optional[float] = None, anchors: int = 200) -> list[Complement]:
        """The learned complements with the most evidence: pairs seen in at least ``min_support``
        (decayed) orders, ranked by attachment rate × lift ** lift_exponent, one row per pair.
        Only the ``anchors`` most bought products are looked at, so the cost stays small.

        >>> bt = BoughtTogether(half_life=None)
        >>> for basket in (["phone", "case"],) * 3 + (["mug"],) * 3:
        ...     bt.observe_basket(basket, ts=0.0)
        >>> [(c.anchor_id, c.product_id, c.attachment_rate, c.lift) for c in bt.strongest_pairs(1)]
        [('phone', 'case', 1.0, 2.0)]
        """
        rows = []
        scale = self._inflation_at(now) if now is not None else 1.0
        for anchor in heapq.nlargest(anchors, self._pairs, key=lambda pid: self._items.get(pid, 0.0)):
            na = self._items.get(anchor, 0.0)
            for pid, both in self._pairs[anchor].items():
                if both < min_support * scale or not na or anchor == pid:
                    continue
                attach, lift = both / na, both * self._orders / (na * self._items[pid])
                score = attach * (lift ** self.lift_exponent if self.lift_exponent else 1.0)
                rows.append((score, anchor, pid, attach, lift, both))
        rows = heapq.nlargest(2 * limit, rows)
        seen, out = set(), []
        for score, anchor, pid, attach, lift, both in rows:
            if frozenset((anchor, pid)) in seen:
                continue
            seen.add(frozenset((anchor, pid)))
            out.append(Complement(pid, round(score, 4), anchor, round(attach, 4), round(lift, 3), both))
        return out[:limit]

    def complements(self, anchors: Sequence[tuple[str, float]], now: float,
                    min_support: float = DEFAULT_MIN_SUPPORT, min_lift: float = 1.0,
                    limit: Optional[int] = None) -> list[Complement]:
        """Products bought with the weighted ``anchors``, best first.

        A candidate's score is the anchors' weighted mean of attachment rate ×
        lift ** lift_exponent: attachment rate says how often it completes the
        anchor, the lift term keeps best-sellers from winning everywhere. With
        ``limit`` only the best ``limit`` are returned (cheaper than sorting all).

        >>> bt = BoughtTogether()
        >>> for n in range(6):
        ...     bt.observe_basket(["tea", "mug"] if n % 2 else ["tea", "mug", "biscuits"], ts=float(n))
        ...     bt.observe_basket(["bread"], ts=float(n))
        >>> [(c.product_id, c.anchor_id) for c in bt.complements([("tea", 1.0)], now=7.0)]
        [('mug', 'tea'), ('biscuits', 'tea')]
        """
        if self.compiled:
            return self.evidence_rows(complements_rows, anchors, now, min_support, min_lift, limit, Complement)
        scale = self._inflation_at(now)
        items, orders = self._items, self._orders
        total_weight = sum(w for _, w in anchors) or 1.0
        out = []
        for pid, score, anchor, both in scan_complements(anchors, items, self._pairs, orders, self.lift_exponent,
                                                         min_support * scale, min_lift, limit or 0):
            # the evidence of the strongest anchor, for the few returned
            na = items[anchor]
            out.append(Complement(pid, score / total_weight, anchor, both / na,
                                  both * orders / (na * items[pid]), both / scale))
        return out

    def evidence_rows(self, kernel, anchors: Sequence[tuple[str, float]], now: float, min_support: float,
                      min_lift: float, limit: Optional[int], *extra):
        """A compiled kernel's rows over :meth:`complements`' scan (``kernel``: one that takes
        the scan's arguments, the anchors' total weight, the scale and ``extra``, as
        ``_kernels.complements_rows`` and ``_kernels.cross_sell_rows`` do)."""
        scale = self._inflation_at(now)
        total_weight = sum(w for _, w in anchors) or 1.0
        return kernel(anchors, self._items, self._pairs, self._orders, self.lift_exponent, min_support * scale,
                      min_lift, limit or 0, total_weight, scale, *extra)


def scan_complements(anchors: Sequence[tuple[str, float]], items: dict[str, float], pairs: dict,
                     orders: float, exponent: float, min_both: float, min_lift: float,
                     limit: int) -> list[tuple[str, float, str, float]]:
    """The candidates of :meth:`BoughtTogether.complements`, best first: (product id, the
    anchors' summed score, the strongest anchor, its pair count), at most ``limit`` (0: all).
    The compiled kernel (``_kernels.complements_scan``) does the same arithmetic in the same
    order; this is the version a build without a C compiler runs.

    >>> items, pairs = {"tea": 4.0, "mug": 2.0, "jam": 1.0}, {"tea": {"mug": 2.0, "jam": 1.0}}
    >>> scan_complements([("tea", 1.0)], items, pairs, 4.0, 0.0, 1.0, 0.5, 0)
    [('mug', 0.5, 'tea', 2.0), ('jam', 0.25, 'tea', 1.0)]
    """
    # pid -> [score, largest part, its anchor, their count]: one lookup per pair read
    acc: dict[str, list] = {}
    get = acc.get
    for anchor, weight in anchors:
        na = items.get(anchor)
        row = pairs.get(anchor) if na else None
        if not row:
            continue
        for pid, both in row.items():
            if both < min_both:
                continue
            lift = both * orders / (na * items[pid])
            if lift <= min_lift:
                continue
            part = weight * (both / na) * lift ** exponent     # ** 0 is 1.0, as it should be
            seen = get(pid)
            if seen is None:
                acc[pid] = [part, part, anchor, both]
            else:
                seen[0] += part
                if part > seen[1]:
                    seen[1], seen[2], seen[3] = part, anchor, both
    scores = ((pid, seen[0]) for pid, seen in acc.items())
    top = heapq.nlargest(limit, scores, key=itemgetter(1)) if limit else \
        sorted(scores, key=itemgetter(1), reverse=True)
    return [(pid, score, acc[pid][2], acc[pid][3]) for pid, score in top]
