"""What a proportionate offer costs in this store, learned from its own orders (domain rule 6).

A fixed share of the anchor's price removes every good complement in a shop whose items cost
about the same as one another, and lets a 500,000 blazer through with a 50,000 tie nowhere:
what is proportionate depends on the store. So the store's orders say it. For every order,
each line against the lines entered before it (its anchors: the first four) gives the ratio
of their prices;
the ratios are counted in log-spaced bins per pair of categories and for the store as a whole.
The cross-sell bound is a high quantile of those ratios: the category pair's where it has the
evidence, else the store's, else the configured share. First orders (first-time buyers) are
counted apart, and so are the price steps of learned upgrades (a cheaper product viewed, a
pricier one of its category bought), which give the upsell band.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

#: Bins of log2(price / anchor price), an eighth of an octave (~9%) wide, from 1/256x to 256x.
BIN_WIDTH = 0.125
LOW_EXP = -8.0
BINS = int(2 * -LOW_EXP / BIN_WIDTH)
#: Lines of one order paired (larger orders are wholesale), and the earliest lines taken as
#: anchors: each later line is paired with each of them (what was added to what came first).
MAX_LINES = 30
ANCHORS = 4


@dataclass(frozen=True, slots=True)
class Bound:
    """A learned price bound and the evidence behind it.

    ``value`` is a ratio to the anchor's price (cross-sell: at most ``value`` x the anchor) or a
    step above it (upsell band); ``scope`` is ``category``, ``store`` or ``configured``.
    """

    value: float
    scope: str
    evidence: int = 0

    def describe(self) -> str:
        """The bound as ``explain`` prints it.

        >>> Bound(0.8, "store", 1200).describe()
        '0.8 (learned from 1,200 store-wide pairs)'
        """
        if self.scope == "configured":
            return f"{self.value:g} (configured: not enough evidence yet)"
        return f"{self.value:g} (learned from {self.evidence:,} {'store-wide' if self.scope == 'store' else 'category-pair'} pairs)"


class RatioHistogram:
    """Counts of log2 price ratios in :data:`BINS` bins, with quantiles. Only the bins that hold
    something are kept (a dict of bin -> count): a store has a histogram per pair of categories
    bought together, tens of thousands on a large catalog, and most of them fill a few bins.

    >>> h = RatioHistogram()
    >>> for r in (0.5, 1.0, 1.0, 2.0):
    ...     h.add(r)
    >>> h.count, round(h.quantile(0.5), 2), round(h.quantile(1.0), 2)
    (4, 1.09, 2.18)
    >>> h.bins
    {56: 1, 64: 2, 72: 1}
    """

    __slots__ = ("bins", "count", "_memo")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.count = 0
        self._memo: Optional[dict[float, tuple[int, float]]] = None   # quantile -> (count when read, value)

    def add(self, ratio: float) -> None:
        self.add_log(math.log2(ratio))

    def add_log(self, log_ratio: float) -> None:
        """Count a ratio given as its log2 (an order's lines are logged once, not per pair)."""
        index = min(max(int((log_ratio - LOW_EXP) / BIN_WIDTH), 0), BINS - 1)
        bins = self.bins
        bins[index] = bins.get(index, 0) + 1
        self.count += 1

    def quantile(self, q: float, lower_edge: bool = False) -> float:
        """The ratio below which a share ``q`` of the counted ratios lie: its bin's upper edge
        (``lower_edge``: its lower edge, for the low end of a band).

        Read on every offer, so it is computed again only once the counts grew by 2% (or 10).
        """
        key = q if not lower_edge else -q
        memo = self._memo
        if memo is None:
            memo = self._memo = {}
        memo_count, value = memo.get(key, (-10**9, 0.0))
        if self.count - memo_count < max(10, memo_count // 50):
            return value
        wanted, seen, value = q * self.count, 0, 2.0 ** (LOW_EXP + BINS * BIN_WIDTH)
        for index, n in sorted(self.bins.items()):
            seen += n
            if seen >= wanted:
                value = 2.0 ** (LOW_EXP + (index + (0 if lower_edge else 1)) * BIN_WIDTH)
                break
        memo[key] = (self.count, value)
        return value


class PriceProportions:
    """Price ratios of what this store's shoppers buy together, and the bounds they give.

    >>> learned = PriceProportions(min_evidence=3, min_category_evidence=3)
    >>> for _ in range(4):   # suits with ties and shirts, in the order entered
    ...     learned.observe_order([("suit", 500.0, "menswear.suits"), ("tie", 50.0, "menswear.ties"),
    ...                            ("shirt", 60.0, "menswear.shirts")], first_order=False)
    >>> learned.cross_sell_bound("menswear.suits", "menswear.ties", 0.25).scope
    'category'
    >>> tie_to_suit = learned.cross_sell_bound("menswear.ties", "menswear.suits", 0.25)
    >>> 500.0 <= tie_to_suit.value * 50.0     # no blazer offered with a tie: never seen that way
    False
    >>> PriceProportions().cross_sell_bound("a", "b", 0.25)
    Bound(value=0.25, scope='configured', evidence=0)
    """

    def __init__(self, quantile: float = 0.98, min_evidence: int = 50,
                 min_category_evidence: int = 30, band_quantiles: tuple[float, float] = (0.1, 0.9)) -> None:
        self.quantile = quantile
        self.min_evidence = min_evidence
        self.min_category_evidence = min_category_evidence
        self.band_quantiles = band_quantiles
        self._store = RatioHistogram()
        self._first_orders = RatioHistogram()
        self._pairs: dict[tuple[str, str], RatioHistogram] = {}
        self._steps = RatioHistogram()
        self.orders = 0

    # -- learning -------------------------------------------------------------
    def observe_order(self, lines: Sequence[tuple[str, Optional[float], Optional[str]]],
                      first_order: bool) -> None:
        """One order's lines as (product, unit price, category), in the order they were entered."""
        priced = [(math.log2(price), category) for _, price, category in dict(
            (line[0], line) for line in lines[:MAX_LINES]).values() if price and price > 0]
        self.orders += 1
        store, first, pairs = self._store, self._first_orders if first_order else None, self._pairs
        for later in range(1, len(priced)):
            log_price, category = priced[later]
            for log_anchor, anchor_category in priced[:min(later, ANCHORS)]:
                log_ratio = log_price - log_anchor
                store.add_log(log_ratio)
                if first is not None:
                    first.add_log(log_ratio)
                if category and anchor_category:
                    histogram = pairs.get((anchor_category, category))
                    if histogram is None:
                        histogram = pairs[(anchor_category, category)] = RatioHistogram()
                    histogram.add_log(log_ratio)

    def observe_upgrades(self, steps: Iterable[tuple[float, float]]) -> None:
        """Learned upgrades as (price viewed, price bought), the bought one the pricier."""
        for viewed, bought in steps:
            if viewed and bought and bought > viewed:
                self._steps.add(bought / viewed)

    # -- bounds ---------------------------------------------------------------
    def cross_sell_bound(self, anchor_category: Optional[str], category: Optional[str],
                         configured: float) -> Bound:
        """Most a cross-sell may cost, as a ratio to its anchor's price."""
        pair = self._pairs.get((anchor_category, category)) if anchor_category and category else None
        if pair is not None and pair.count >= self.min_category_evidence:
            return Bound(round(pair.quantile(self.quantile), 4), "category", pair.count)
        if self._store.count >= self.min_evidence:
            return Bound(round(self._store.quantile(self.quantile), 4), "store", self._store.count)
        return Bound(configured, "configured")

    def first_time_bound(self, configured: float) -> Bound:
        """Most a first-time buyer's cross-sell may cost: what first orders held together."""
        if self._first_orders.count >= self.min_evidence:
            return Bound(round(self._first_orders.quantile(self.quantile), 4), "store",
                         self._first_orders.count)
        return Bound(configured, "configured")

    def upsell_band(self, configured: tuple[float, float]) -> tuple[Bound, Bound]:
        """The least and most an upgrade's price is above the anchor's (0.2 = +20%)."""
        if self._steps.count < self.min_evidence:
            return Bound(configured[0], "configured"), Bound(configured[1], "configured")
        low = round(self._steps.quantile(self.band_quantiles[0], lower_edge=True) - 1.0, 4)
        high = round(self._steps.quantile(self.band_quantiles[1]) - 1.0, 4)
        return Bound(max(low, 0.0), "store", self._steps.count), Bound(high, "store", self._steps.count)
