"""Showcases: the recommendation windows of a store's pages, for the store, a product or a shopper.

The windows (domain.md's "recommendation windows"):

- ``best_sellers``: the most bought products (decayed counts of the orders they were in);
- ``most_viewed``: the most viewed products;
- ``trending``: views with a short half-life, so what is rising now comes first;
- ``similar``: the same category at a similar price (within ``similar_price_band`` of it), the
  best sold and most viewed first;
- ``frequently_bought_together``: the "bought together" complements of the product.

For a product, the popularity windows keep to its category (the store's where the category has
too few); for a shopper, :func:`personalise` moves what matches their category and brand
affinities up and takes out what they have in their cart, just bought or declined.

Counts live in numpy arrays indexed by product (one float per product and window), and decay
the way :mod:`~nextoffer.models.bought_together` does: new observations are weighted up instead
of old ones down, so an update costs O(1) and ranking needs no sweep.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Sequence

import numpy as np

from nextoffer.models.bought_together import DAY, BoughtTogether
from nextoffer.models.catalog import Catalog, position_in
from nextoffer.models.product_index import ProductIndex

if TYPE_CHECKING:
    from nextoffer.models.profile import ProfileView
    from nextoffer.models.shopper import ShopperState

#: The windows, in the order a storefront usually shows them.
KINDS = ("best_sellers", "most_viewed", "trending", "similar", "frequently_bought_together")
#: The windows that rank by popularity (and keep to a product's category).
POPULARITY = ("best_sellers", "most_viewed", "trending")

#: Products of the price band a similar-products window looks at, the nearest in price first.
SIMILAR_SCAN = 400
#: A round reads the similar windows' counts of a category of at most this many products at once.
ROUND_CATEGORY_LIMIT = 8 * SIMILAR_SCAN
#: Half-lives from the origin after which the counts are rescaled (2 ** 400 is about 1e120).
_RESCALE_EXPONENT = 400.0


@dataclass(frozen=True, slots=True)
class ShowcaseSettings:
    """Settings of the showcases."""

    showcase_size: int = field(default=10, metadata={"doc": "Products in each showcase window."})
    showcase_sales_half_life: float = field(default=30 * DAY, metadata={
        "doc": "Seconds after which a sale counts half in best sellers and similar products."})
    showcase_views_half_life: float = field(default=7 * DAY, metadata={
        "doc": "Seconds after which a view counts half in most viewed."})
    showcase_trending_half_life: float = field(default=6 * 3600.0, metadata={
        "doc": "Seconds after which a view counts half in trending: short, so rising products lead."})
    showcase_similar_price_band: float = field(default=1.5, metadata={
        "doc": "Similar products cost between the product's price divided and multiplied by this."})
    showcase_min_category_products: int = field(default=3, metadata={
        "doc": "Products with counts a category needs before a product's popularity windows keep to it "
               "(else the store's lists)."})
    showcase_affinity_weight: float = field(default=1.0, metadata={
        "doc": "How far a shopper's category and brand affinities move products up a showcase "
               "(score x (1 + weight x affinity)); 0 leaves the generic order."})
    showcase_exclude_bought_for: float = field(default=30 * DAY, metadata={
        "doc": "Seconds a bought product stays out of the shopper's showcases."})
    showcase_exclude_declined_for: float = field(default=14 * DAY, metadata={
        "doc": "Seconds a declined or dismissed product stays out of the shopper's showcases."})


@dataclass(frozen=True, slots=True)
class ShowcaseItem:
    """One product of a showcase window, with what a storefront needs to lay it out."""

    product_id: str
    score: float
    category: Optional[str] = None
    brand: Optional[str] = None
    price: Optional[float] = None

    def to_dict(self) -> dict:
        out = {"product_id": self.product_id, "score": self.score}
        for name in ("category", "brand", "price"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ShowcaseItem":
        return cls(data["product_id"], float(data.get("score", 0.0)), data.get("category"),
                   data.get("brand"), data.get("price"))


class Counts:
    """Per-product counts, decayed with ``half_life`` (None: plain), in one numpy array indexed
    by ``products`` (a :class:`ProductIndex`, shared with other counts; its own without one).
    Each count also keeps the order in which it first counted its products: its ties go to the
    product it counted first, whatever the other counts sharing the index did.

    >>> c = Counts(half_life=10.0)
    >>> c.add("a", 1.0, ts=0.0); c.add("b", 1.0, ts=10.0); c.add("b", 1.0, ts=10.0)
    >>> round(c.get("a", now=10.0), 3), round(c.get("b", now=10.0), 3)
    (0.5, 2.0)
    >>> [(pid, round(v, 2)) for pid, v in c.top(2, now=10.0)]
    [('b', 2.0), ('a', 0.5)]
    >>> c.top(1, among=["a", "zzz"], now=10.0)[0][0]
    'a'
    >>> shared = Counts(products=c.products); shared.add("z", 1.0, ts=0.0)
    >>> len(c), len(shared), shared.ids, c.get("z", now=0.0)
    (2, 1, ['z'], 0.0)
    """

    def __init__(self, half_life: Optional[float] = None, products: Optional[ProductIndex] = None) -> None:
        self.half_life = half_life
        self.products = ProductIndex() if products is None else products
        #: product -> position in :attr:`values` (the shared index's dict, read by the kernels)
        self.index = self.products.index
        self.values = np.zeros(1024)
        self._rank = np.full(1024, -1, dtype=np.int32)    # position -> order first counted, -1: never
        self._counted = np.zeros(1024, dtype=np.int32)    # order first counted -> position
        self._n = 0
        self._t0: Optional[float] = None

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> list[str]:
        """The products counted, in the order first counted."""
        ids = self.products.ids
        return [ids[i] for i in self._counted[:self._n].tolist()]

    def add(self, pid: str, n: float, ts: float) -> None:
        i = self._position(pid)
        weight = self._weight(ts)         # after the position: a rescale leaves a new zero as it is
        self.values[i] += n * weight

    def add_each(self, pids: Iterable[str], n: float, ts: float) -> None:
        """:meth:`add` of ``n`` for each of the distinct ``pids`` at one time, in one array
        operation (the same sums: each count gets one addition of the same weight).

        >>> one, each = Counts(half_life=10.0), Counts(half_life=10.0)
        >>> for pid in ("a", "b"):
        ...     one.add(pid, 1.0, ts=5.0)
        >>> each.add_each(["a", "b"], 1.0, ts=5.0)
        >>> each.ids == one.ids and each.values.tolist() == one.values.tolist()
        True
        """
        idx = [self._position(pid) for pid in pids]
        weight = self._weight(ts)         # after the new ids: a rescale leaves their zeros as they are
        self.values[idx] += n * weight

    def _position(self, pid: str) -> int:
        """The index of ``pid``'s count; a product this count has not counted yet gets its place
        in the first-counted order (and the arrays grow to hold the shared index)."""
        i = self.products.position(pid)
        if i >= len(self.values):
            self.covered()
        if self._rank[i] < 0:
            n = self._n
            if n >= len(self._counted):
                self._counted = np.concatenate([self._counted, np.zeros(len(self._counted), dtype=np.int32)])
            self._rank[i], self._counted[n] = n, i
            self._n = n + 1
        return i

    def covered(self) -> np.ndarray:
        """:attr:`values`, grown (with zeros) to every position of the shared index: what a
        reader of ``index`` and ``values`` together (the ranking kernel) is given."""
        if len(self.values) < len(self.products):
            self.values = self.products.covering(self.values)
            self._rank = self.products.covering(self._rank, fill=-1)
        return self.values

    def get(self, pid: str, now: float) -> float:
        i = self.index.get(pid)
        return float(self.values[i]) / self.scale(now) if i is not None and i < len(self.values) else 0.0

    def values_of(self, ids: Sequence[str], now: float) -> np.ndarray:
        """The counts of ``ids`` (0 for one never counted), as of ``now``.

        >>> c = Counts(); c.add("a", 2.0, ts=0.0)
        >>> c.values_of(["a", "b"], now=0.0).tolist()
        [2.0, 0.0]
        """
        return self.values_at(self.positions(ids), now)

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """The positions of ``ids`` in the product index (-1 for one not indexed): what
        :meth:`values_at` and :meth:`top` read, the same for every count sharing the index.

        >>> c = Counts(); c.add("a", 2.0, ts=0.0)
        >>> c.positions(["b", "a"]).tolist()
        [-1, 0]
        """
        return np.fromiter(map(self.index.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))

    def values_at(self, idx: np.ndarray, now: float) -> np.ndarray:
        """:meth:`values_of` the products at positions ``idx`` (:meth:`positions`)."""
        values = self.covered()
        out = np.where(idx >= 0, values[np.maximum(idx, 0)], 0.0)
        return out / self.scale(now)

    def top(self, k: int, now: float, among: Optional[Iterable[str]] = None,
            exclude: Iterable[str] = (), positions: Optional[np.ndarray] = None) -> list[tuple[str, float]]:
        """The ``k`` largest counts (of ``among`` only, if given, or of the products at
        ``positions``, :meth:`positions` of them), largest first, zeros left out; ties: the
        product counted first."""
        values, index, rank = self.covered(), self.index, self._rank
        # Each product by its place in the first-counted order ("rank"): what ties are broken by.
        if positions is not None:
            ranks = rank[positions[positions >= 0]]
            ranks = ranks[ranks >= 0]
        elif among is None:
            ranks = np.arange(self._n)
        else:
            ranks = rank[np.fromiter((i for i in map(index.get, among) if i is not None), dtype=np.int64)]
            ranks = ranks[ranks >= 0]
        skip = {int(rank[index[p]]) for p in exclude if p in index and rank[index[p]] >= 0}
        if skip:
            ranks = ranks[~np.isin(ranks, list(skip))]
        values = values[self._counted[ranks]]
        keep = values > 0
        ranks, values = ranks[keep], values[keep]
        if len(ranks) > k:
            part = np.argpartition(-values, k - 1)[:k]
            ranks, values = ranks[part], values[part]
        order = np.lexsort((ranks, -values))          # ties: the product counted first
        scale, ids = self.scale(now), self.products.ids
        return [(ids[i], float(v) / scale) for i, v in zip(self._counted[ranks[order]].tolist(), values[order])]

    def _weight(self, ts: float) -> float:
        if not self.half_life:
            return 1.0
        if self._t0 is None:
            self._t0 = ts
        exponent = (ts - self._t0) / self.half_life
        if exponent > _RESCALE_EXPONENT:     # rescale everything to a new origin at ``ts``
            self.values *= 2.0 ** -min(exponent, 2000.0)   # long decayed: 0 (never counted: 0 already)
            self._t0, exponent = ts, 0.0
        return 2.0 ** exponent

    def scale(self, now: float) -> float:
        """What the held values are divided by to read them as of ``now`` (:meth:`values_of`
        reads ``values[index[pid]] / scale(now)``)."""
        if not self.half_life or self._t0 is None:
            return 1.0
        return 2.0 ** min((now - self._t0) / self.half_life, 1000.0)


class Showcases:
    """The windows of one store, learned from its orders and views.

    >>> from nextoffer.models.events import Product
    >>> catalog, bought = Catalog(), BoughtTogether()
    >>> for pid, price in (("mug-a", 10.0), ("mug-b", 12.0), ("mug-c", 40.0), ("tea", 5.0)):
    ...     catalog.upsert(Product(pid, price, category="tea.mugs" if pid != "tea" else "tea.leaves"))
    >>> shows = Showcases(catalog, bought)
    >>> for n, order in enumerate([["mug-a", "tea"]] * 3 + [["mug-b"]]):
    ...     bought.observe_basket(order, ts=float(n))        # the engine feeds both
    ...     shows.observe_order([(pid, 1) for pid in order], ts=float(n))
    >>> shows.observe_views({"mug-c": 5, "mug-b": 2}, ts=4.0)
    >>> [i.product_id for i in shows.window("best_sellers", now=5.0)]
    ['mug-a', 'tea', 'mug-b']
    >>> [i.product_id for i in shows.window("most_viewed", now=5.0)]
    ['mug-c', 'mug-b']
    >>> [i.product_id for i in shows.window("similar", "mug-a", now=5.0)]     # 40.0 is out of the band
    ['mug-b']
    >>> [i.product_id for i in shows.window("frequently_bought_together", "mug-a", now=5.0)]
    ['tea']
    """

    def __init__(self, catalog: Catalog, bought: BoughtTogether,
                 settings: ShowcaseSettings = ShowcaseSettings(), products: Optional[ProductIndex] = None) -> None:
        self.catalog = catalog
        self.bought = bought
        self.settings = settings
        products = ProductIndex() if products is None else products    # one index for the three
        self.sold = Counts(settings.showcase_sales_half_life, products)
        self.viewed = Counts(settings.showcase_views_half_life, products)
        self.trending = Counts(settings.showcase_trending_half_life, products)
        self.updates = 0

    # -- learning -------------------------------------------------------------
    def observe_order(self, lines: Iterable[tuple[str, int]], ts: float) -> None:
        """An order's (product, quantity) lines: each product counts once per order."""
        self.sold.add_each(dict.fromkeys(pid for pid, _ in lines), 1.0, ts)
        self.updates += 1

    def observe_views(self, counts: Mapping[str, int], ts: float) -> None:
        """Views per product over a short span ending at ``ts`` (each worker's share of them)."""
        for pid, n in counts.items():
            self.viewed.add(pid, float(n), ts)
            self.trending.add(pid, float(n), ts)
        self.updates += 1

    # -- reading --------------------------------------------------------------
    def window(self, kind: str, product_id: Optional[str] = None, now: float = 0.0,
               limit: Optional[int] = None, cache: Optional[dict] = None) -> list[ShowcaseItem]:
        """The ``kind`` window for ``product_id``'s page (the store's without a product), best
        first. ``similar`` and ``frequently_bought_together`` need a product. ``cache`` keeps the
        popularity lists of a round of many products (each category's is ranked once)."""
        if kind not in KINDS:
            raise ValueError(f"unknown showcase {kind!r}; one of {', '.join(KINDS)}")
        k = limit or self.settings.showcase_size
        if kind == "similar":
            return self._similar(product_id, now, k, cache)
        if kind == "frequently_bought_together":
            return self._bought_with(product_id, now, k)
        product = self.catalog.get(product_id) if product_id else None
        exclude = [product_id] if product_id else []
        if product is not None and product.category:
            ranked = self.popular(kind, product.category, now, k, exclude, cache)
            if ranked:
                return ranked
        return self.popular(kind, None, now, k, exclude, cache)

    def popular(self, kind: str, category: Optional[str], now: float, limit: int,
                exclude: Sequence[str] = (), cache: Optional[dict] = None) -> list[ShowcaseItem]:
        """A popularity window of one category (the store's for None), without ``exclude``;
        empty when the category has fewer than ``showcase_min_category_products`` products with
        counts."""
        key = (kind, category, limit + len(exclude))
        ranked = cache.get(key) if cache is not None else None
        if ranked is None:
            counts = {"best_sellers": self.sold, "most_viewed": self.viewed, "trending": self.trending}[kind]
            among = self.catalog.in_category(category) if category is not None else None
            snapshot = self._category_in_round(category, cache) if among is not None and cache is not None else None
            positions = snapshot[2] if snapshot is not None else None
            ranked = self._items(counts.top(key[2], now, among=among, positions=positions))
            if cache is not None:
                cache[key] = ranked
        ranked = [i for i in ranked if i.product_id not in exclude][:limit]
        if category is not None and len(ranked) < min(limit, self.settings.showcase_min_category_products):
            return []
        return ranked

    def _similar(self, product_id: Optional[str], now: float, k: int,
                 cache: Optional[dict] = None) -> list[ShowcaseItem]:
        product = self.catalog.get(product_id) if product_id else None
        if product is None or not product.category or not product.price:
            return []
        band = self.settings.showcase_similar_price_band
        read = self._band_in_round(product, band, now, cache) if cache is not None else None
        if read is None:
            inside = self.catalog.in_category_between(product.category, product.price / band, product.price * band)
            if len(inside) > SIMILAR_SCAN:         # a large category: the nearest in price
                inside = sorted(inside, key=lambda o: abs(math.log(o.price / product.price)))[:SIMILAR_SCAN]
            others = [o for o in inside if o.product_id != product.product_id and o.stock != 0]
            ids = [o.product_id for o in others]
            read = (ids, np.array([o.price for o in others]), self.sold.values_of(ids, now),
                    self.viewed.values_of(ids, now))
        ids, prices, sold, viewed = read
        if not len(ids):
            return []
        closeness = 1.0 / (1.0 + np.abs(np.log(prices / product.price)))
        values = np.round(sold + 0.1 * viewed + 0.01 * closeness, 6)
        # The k best of up to SIMILAR_SCAN: only those scoring at least the k-th largest score
        # can be among them (ties at it included), and only they are sorted.
        among = (np.flatnonzero(values >= np.partition(values, len(ids) - k)[len(ids) - k]).tolist()
                 if 0 < k < len(ids) else range(len(ids)))
        score = values.tolist()
        order = sorted(among, key=lambda i: (-score[i], ids[i]))[:k]
        return self._items([(ids[i], score[i]) for i in order])

    def _category_in_round(self, category: str, cache: dict) -> Optional[tuple]:
        """A category's products as a round reads them, once: (their ids and prices, cheapest
        first, copied, and their positions in the product index), for its three popularity
        windows and its products' similar windows; None for an unknown category. A round's
        windows are as of its first read of a category, whatever the catalog does meanwhile."""
        read = cache.get(("category", category))
        if read is None:
            index = self.catalog.price_index(category)
            if index is None:
                return None
            ids = list(index.ids)
            read = cache[("category", category)] = (ids, list(index.prices), self.sold.positions(ids))
        return read

    def _band_in_round(self, product, band: float, now: float, cache: dict):
        """What the similar window reads of ``product``'s price band (the ids of the other
        products in stock, their prices, sales and views, in the band's order), sliced from its
        category's, which a round of many products reads once (``cache``); None for a band
        larger than :data:`SIMILAR_SCAN`, which keeps the products nearest in price instead.
        The sales and views are the same floats a read of the band alone gives."""
        category = product.category
        read = cache.get(("similar", category))
        if read is None:
            snapshot = self._category_in_round(category, cache)
            if snapshot is None or len(snapshot[0]) > ROUND_CATEGORY_LIMIT:    # reading it all would cost more
                return None
            ids, prices, at = snapshot
            out = self.catalog.out_of_stock
            in_stock = (~np.fromiter(map(out.__contains__, ids), dtype=bool, count=len(ids)) if out
                        else np.ones(len(ids), dtype=bool))
            read = cache[("similar", category)] = (ids, prices, np.array(prices), in_stock,
                                                   self.sold.values_at(at, now), self.viewed.values_at(at, now))
        ids, price_list, prices, in_stock, sold, viewed = read
        start = bisect.bisect_left(price_list, product.price / band)
        end = bisect.bisect_right(price_list, product.price * band, start)
        if end - start > SIMILAR_SCAN:
            return None
        keep = in_stock[start:end].copy()
        me = position_in(price_list, ids, product.price, product.product_id, start, end)    # the product itself
        if me < end and ids[me] == product.product_id:
            keep[me - start] = False
        at = np.flatnonzero(keep) + start
        return _Picked(ids, at), prices[at], sold[at], viewed[at]

    def _bought_with(self, product_id: Optional[str], now: float, k: int) -> list[ShowcaseItem]:
        if not product_id:
            return []
        found = self.bought.complements([(product_id, 1.0)], now, limit=2 * k)
        in_stock = [c for c in found if (p := self.catalog.get(c.product_id)) is None or p.stock != 0]
        return self._items([(c.product_id, c.score) for c in in_stock[:k]])

    def _items(self, ranked: list[tuple[str, float]]) -> list[ShowcaseItem]:
        out = []
        for pid, score in ranked:
            p = self.catalog.get(pid)
            out.append(ShowcaseItem(pid, round(float(score), 6), p.category if p else None, p.brand if p else None,
                                    p.price if p else None))
        return out


class _Picked:
    """Some of a list's items, by position, read as a list (the similar window reads its length,
    and the ids of the few it ranks)."""

    __slots__ = ("items", "at")

    def __init__(self, items: list, at: np.ndarray) -> None:
        self.items, self.at = items, at.tolist()

    def __len__(self) -> int:
        return len(self.at)

    def __getitem__(self, i: int):
        return self.items[self.at[i]]


def excluded(shopper: "ShopperState", now: float, settings: ShowcaseSettings = ShowcaseSettings()) -> set[str]:
    """What a shopper's showcases leave out: their cart, what they just bought, what they declined.

    >>> from nextoffer.models.shopper import ShopperState
    >>> s = ShopperState("u1", cart={"mug": [1, 9.0]}, purchases={"tea": [1, 100.0], "old": [1, 0.0]},
    ...                  declined={"case": 90.0})
    >>> sorted(excluded(s, now=100.0, settings=ShowcaseSettings(showcase_exclude_bought_for=50.0)))
    ['case', 'mug', 'tea']
    """
    out = set(shopper.cart)
    out.update(pid for pid, (_, at) in shopper.purchases.items() if now - at <= settings.showcase_exclude_bought_for)
    out.update(pid for pid, at in shopper.declined.items() if now - at <= settings.showcase_exclude_declined_for)
    return out


def personalise(items: list[ShowcaseItem], profile: Optional["ProfileView"], exclude: set[str],
                weight: float = 1.0, limit: Optional[int] = None) -> list[ShowcaseItem]:
    """A generic window for one shopper: ``exclude`` taken out, and each item's score multiplied
    by 1 + ``weight`` x its category and brand affinity for the shopper (each 0 to 1).

    >>> from nextoffer.models.profile import ProfileView
    >>> fan = ProfileView("repeat", "engaged", "browsing", None, 0.5, {"c:tea.green": 3.0, "b:Acme": 1.0})
    >>> window = [ShowcaseItem("black", 1.0, "tea.black"), ShowcaseItem("green", 0.8, "tea.green"),
    ...           ShowcaseItem("mug", 0.9, "tea.mugs", "Acme")]
    >>> [i.product_id for i in personalise(window, fan, exclude={"mug"})]
    ['green', 'black']
    """
    kept = [i for i in items if i.product_id not in exclude]
    if profile is not None and weight:
        def boost(item: ShowcaseItem) -> float:
            return item.score * (1.0 + weight * (profile.category_affinity(item.category)
                                                 + profile.brand_affinity(item.brand)))
        kept = sorted(kept, key=boost, reverse=True)
        kept = [ShowcaseItem(i.product_id, round(boost(i), 6), i.category, i.brand, i.price) for i in kept]
    return kept[:limit] if limit else kept
