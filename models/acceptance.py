"""Will the shopper take it? An online model of offer acceptance (river), and how it ranks.

Each offered item is remembered with its features (kind, placement, signal source,
relevance, price ratio to the anchor, position); beside them the model sees the shopper
(segment, lifecycle, session intent, price sensitivity) and how the item fits them (category
and brand affinity, its price against the shopper's usual price level). Outcomes teach the model:
an accept or click, or the item added or bought while the offer stands, is a 1;
a decline or dismiss, or an offer that lapses unconverted, is a 0.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

from river import linear_model, optim

from nextoffer.models.events import Product
from nextoffer.models.profile import ProfileView

try:        # Python's round without its decimal conversion: the same floats (models/_kernels.c)
    from nextoffer.models._kernels import round_to
except ImportError:
    round_to = round


class OfferedItem(NamedTuple):
    """An offered item as the shopper's state remembers it until its outcome is known (stored
    in the changelog as the list of its fields, in this order)."""

    product_id: str
    kind: str                      # upsell or cross_sell
    placement: str
    source: str                    # the signal that found it: bought_together, history, ladder, ...
    score: float                   # its relevance when offered
    price_ratio: Optional[float]   # its price over the anchor's, None where either is unknown
    position: int                  # 0 for the offer's first item


#: The checkpoint format (:meth:`AcceptanceModel.snapshot`).
SNAPSHOT_VERSION = 1


def item_record(pid: str, kind: str, placement: str, source: str, score: float,
                price: Optional[float], anchor_price: Optional[float], position: int) -> OfferedItem:
    """The record of one offered item.

    >>> item_record("case", "cross_sell", "cart", "bought_together", 0.1234567, 20.0, 800.0, 0)
    OfferedItem(product_id='case', kind='cross_sell', placement='cart', source='bought_together', score=0.123457, price_ratio=0.025, position=0)
    """
    ratio = price / anchor_price if price and anchor_price else None
    return OfferedItem(pid, kind, placement, source, round(score, 6),
                       None if ratio is None else round(ratio, 4), position)


def shopper_features(profile: Optional[ProfileView], product: Optional[Product],
                     position: Optional[float]) -> dict[str, float]:
    """What the shopper is like, and how the item fits them: the personal half of the features.

    ``position`` is the item's :func:`~nextoffer.models.profile.price_position` in its category.

    >>> p = ProfileView("repeat", "engaged", "buying", 0.2, 0.3, {"c:mugs": 3.0, "b:Acme": 1.0})
    >>> f = shopper_features(p, Product("m", 12.0, category="mugs", brand="Acme"), 0.5)
    >>> f["category_affinity"], f["brand_affinity"], f["segment=repeat"], round(f["price_gap"], 2)
    (1.0, 1.0, 1.0, 0.3)
    """
    if profile is None:
        return {}
    out = {f"segment={profile.segment}": 1.0, f"stage={profile.stage}": 1.0,
           f"intent={profile.intent}": 1.0, "price_sensitivity": profile.price_sensitivity}
    if product is not None:
        out["category_affinity"] = profile.category_affinity(product.category)
        out["parent_affinity"] = profile.parent_affinity(product.category)
        out["brand_affinity"] = profile.brand_affinity(product.brand)
    if position is not None and profile.price_level is not None:
        gap = position - profile.price_level
        out["price_gap"] = gap                         # above the shopper's usual level...
        out["price_gap_abs"] = abs(gap)                # ...or far from it either way
        out["price_gap_x_sensitivity"] = gap * profile.price_sensitivity
    return out


class AcceptanceModel:
    """Online logistic regression of P(accept | offered item, shopper).

    >>> m = AcceptanceModel()
    >>> staple = OfferedItem("p", "cross_sell", "cart", "history", 0.4, 0.5, 0)
    >>> odd = OfferedItem("q", "cross_sell", "cart", "bought_together", 0.02, 3.0, 2)
    >>> fan, stranger = {"category_affinity": 0.8}, {"category_affinity": 0.0}
    >>> for _ in range(200):
    ...     m.learn(staple, True, fan)
    ...     m.learn(odd, False, stranger)
    >>> m.predict(staple, fan) > 0.8 > 0.2 > m.predict(odd, stranger)
    True
    """

    def __init__(self, learning_rate: float = 0.05) -> None:
        self._model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        self.updates = 0
        self.positives = 0
        #: Outcomes learned per product: how sure the model is of it (Thompson sampling reads it).
        self.outcomes: dict[str, int] = {}
        #: round(x, ndigits) as decisions compute it: the compiled kernel's where built (the same
        #: floats, faster), Python's where not or with NEXTOFFER_COMPILED_KERNELS=off.
        self.rounding = round_to

    @staticmethod
    def features(item: OfferedItem, personal: Optional[dict] = None) -> dict[str, float]:
        ratio = item.price_ratio
        out = {f"kind={item.kind}": 1.0, f"placement={item.placement}": 1.0, f"source={item.source}": 1.0,
               "relevance": min(item.score, 2.0), "log_price_ratio": math.log(ratio) if ratio else 0.0,
               "position": float(item.position)}
        if personal:
            out.update(personal)
        return out

    def predict(self, item: OfferedItem, personal: Optional[dict] = None) -> float:
        """P(accept) of ``item`` for a shopper with the ``personal`` features (0.5 untrained)."""
        return self._model.predict_proba_one(self.features(item, personal)).get(True, 0.5)

    def learn(self, item: OfferedItem, accepted: bool, personal: Optional[dict] = None) -> None:
        """One outcome: the shopper took ``item`` (True) or let it go (False)."""
        self._model.learn_one(self.features(item, personal), accepted)
        self.updates += 1
        self.positives += accepted
        self.outcomes[item.product_id] = self.outcomes.get(item.product_id, 0) + 1

    def scorer(self, kind: str, placement: str, profile: Optional[ProfileView]) -> "DecisionScorer":
        """:meth:`predict` for the many candidates of one decision (one shopper, kind and
        placement), without building each candidate's record and feature dicts."""
        return DecisionScorer(self._model, kind, placement, profile, self.rounding)

    # -- checkpoints ----------------------------------------------------------
    def snapshot(self) -> dict:
        """What the model has learned, as JSON-able data: the worker's checkpoint of it.

        >>> m = AcceptanceModel()
        >>> for _ in range(50):
        ...     m.learn(PROBE, True, {"category_affinity": 1.0})
        >>> again = AcceptanceModel()
        >>> again.restore(m.snapshot())
        >>> again.predict(PROBE) == m.predict(PROBE) > 0.5, again.updates
        (True, 50)
        """
        return {"version": SNAPSHOT_VERSION, "weights": dict(self._model._weights),
                "intercept": self._model.intercept, "iterations": self._model.optimizer.n_iterations,
                "updates": self.updates, "positives": self.positives}

    def restore(self, snapshot: dict) -> None:
        """Continue from a :meth:`snapshot` (replacing what this model has learned)."""
        version = snapshot.get("version", 1)
        if version > SNAPSHOT_VERSION:
            raise ValueError(f"acceptance model checkpoint of version {version}, newer than this "
                             f"nextoffer's {SNAPSHOT_VERSION}: upgrade nextoffer on every worker")
        fresh = linear_model.LogisticRegression(optimizer=optim.SGD(self._model.optimizer.learning_rate))
        for feature, weight in snapshot["weights"].items():
            fresh._weights[feature] = weight
        fresh.intercept = snapshot["intercept"]
        fresh.optimizer.n_iterations = snapshot.get("iterations", 0)
        self._model = fresh
        self.updates, self.positives = snapshot.get("updates", 0), snapshot.get("positives", 0)

    def merge(self, snapshot: dict) -> None:
        """Take in what another worker's model learned (its :meth:`snapshot`): each weight becomes
        the average of the two, weighted by the outcomes each model learned from, as federated
        averaging does. A worker does this when it takes over partitions, whose shoppers'
        outcomes the other worker learned from.

        >>> fan, other = AcceptanceModel(), AcceptanceModel()
        >>> for _ in range(300):
        ...     other.learn(PROBE, True)
        >>> fan.learn(PROBE, False)
        >>> fan.merge(other.snapshot())
        >>> fan.predict(PROBE) > 0.8, fan.updates
        (True, 300)
        """
        theirs, mine = snapshot.get("updates", 0), self.updates
        if theirs <= 0:
            return
        share = theirs / (theirs + mine)
        weights = self._model._weights
        for feature in set(weights) | set(snapshot["weights"]):
            weights[feature] = (1 - share) * weights.get(feature, 0.0) + share * snapshot["weights"].get(feature, 0.0)
        self._model.intercept = (1 - share) * self._model.intercept + share * snapshot["intercept"]
        # The two may share history (a worker starts from the latest checkpoint): count the larger.
        self.updates = max(mine, theirs)
        self.positives = max(self.positives, snapshot.get("positives", 0))

    def probe(self) -> float:
        """P(accept) of a fixed item for a shopper with no profile: a fingerprint of the model
        that logs and tests compare across a restart."""
        return self.predict(PROBE)


#: The item :meth:`AcceptanceModel.probe` predicts.
PROBE = OfferedItem("probe", "cross_sell", "cart", "bought_together", 0.5, 0.5, 0)


class DecisionScorer:
    """P(accept) of a decision's candidates: the numbers :meth:`AcceptanceModel.predict` gives
    for :func:`item_record` and :func:`shopper_features`, to the last bit, at a fraction of the
    cost. A decision predicts up to 40 candidates (the learned order's depth); building two
    dicts per candidate and river's call cost more than the arithmetic, so the weights are read
    once and what is the same for every candidate (kind, placement, the shopper) is looked up
    once. The terms are added in the order of the feature dict, as river's dot product does, so
    the sum is the same float; the model must not learn while the scorer is in use.

    >>> m = AcceptanceModel()
    >>> fan = ProfileView("repeat", "engaged", "buying", 0.1, 0.3, {"c:mugs": 3.0, "b:Acme": 1.0})
    >>> mug = Product("m", 12.0, category="mugs", brand="Acme")
    >>> for n in range(100):
    ...     m.learn(item_record("m", "cross_sell", "cart", "bought_together", 0.3, 12.0, 40.0, 0), n % 3 == 0,
    ...             shopper_features(fan, mug, 0.4))
    >>> record = item_record("m", "cross_sell", "cart", "history", 0.25, 12.0, 40.0, 0)
    >>> score = m.scorer("cross_sell", "cart", fan)
    >>> score("history", 0.25, 12.0, 40.0, mug, 0.4) == m.predict(record, shopper_features(fan, mug, 0.4))
    True
    """

    def __init__(self, model: linear_model.LogisticRegression, kind: str, placement: str,
                 profile: Optional[ProfileView], rounding=round_to) -> None:
        w = model._weights
        self._get = w.get
        self._round = rounding
        self._intercept = model.intercept
        self._head = 0.0 + w.get(f"kind={kind}", 0.0) * 1.0 + w.get(f"placement={placement}", 0.0) * 1.0
        self._sources: dict[str, float] = {}
        (self._relevance, self._log_price_ratio, self._position, self._category_affinity, self._parent_affinity,
         self._brand_affinity, self._price_gap, self._price_gap_abs, self._price_gap_x_sensitivity) = (
            w.get(name, 0.0) for name in (
                "relevance", "log_price_ratio", "position", "category_affinity", "parent_affinity",
                "brand_affinity", "price_gap", "price_gap_abs", "price_gap_x_sensitivity"))
        self._profile = profile
        self._shopper: tuple = ()
        self._categories: dict = {}
        self._brands: dict = {}
        self._level = self._sensitivity = None
        if profile is not None:
            self._shopper = (w.get(f"segment={profile.segment}", 0.0) * 1.0, w.get(f"stage={profile.stage}", 0.0) * 1.0,
                             w.get(f"intent={profile.intent}", 0.0) * 1.0,
                             w.get("price_sensitivity", 0.0) * profile.price_sensitivity)
            self._level, self._sensitivity = profile.price_level, profile.price_sensitivity

    def terms(self) -> tuple:
        """What is the same for every candidate, as ``_kernels.candidate_values`` reads it: the
        constant terms and weights, the shopper's terms, and the memos of the per-source,
        per-category and per-brand terms (which :meth:`source_weight`, :meth:`category_terms`
        and :meth:`brand_term` fill)."""
        return (self._head, self._relevance, self._log_price_ratio, self._position, self._intercept,
                self._shopper, self._profile is not None, self._level,
                self._sensitivity if self._sensitivity is not None else 0.0, self._price_gap,
                self._price_gap_abs, self._price_gap_x_sensitivity, self._sources, self._categories,
                self._brands)

    def source_weight(self, source: str) -> float:
        """The weight of a candidate's source (memoized)."""
        weight = self._sources[source] = self._get(f"source={source}", 0.0)
        return weight

    def category_terms(self, category: Optional[str]) -> tuple[float, float]:
        """The shopper's category and parent-category affinity terms for a category (memoized)."""
        profile = self._profile
        terms = self._categories[category] = (self._category_affinity * profile.category_affinity(category),
                                               self._parent_affinity * profile.parent_affinity(category))
        return terms

    def brand_term(self, brand: Optional[str]) -> float:
        """The shopper's brand affinity term for a brand (memoized)."""
        term = self._brands[brand] = self._brand_affinity * self._profile.brand_affinity(brand)
        return term

    def __call__(self, source: str, score: float, price: Optional[float], anchor_price: Optional[float],
                 product: Optional[Product], position: Optional[float]) -> float:
        # The weights are attributes read once each, and the terms are added in the feature
        # dict's order (river's dot product's): the same float as predict, term by term.
        rounding = self._round
        ratio = price / anchor_price if price and anchor_price else None
        ratio = None if ratio is None else rounding(ratio, 4)
        weight = self._sources.get(source)
        if weight is None:
            weight = self.source_weight(source)
        x = self._head + weight * 1.0
        x += self._relevance * min(rounding(score, 6), 2.0)
        x += self._log_price_ratio * (math.log(ratio) if ratio else 0.0)
        x += self._position * 0.0
        profile = self._profile
        if profile is not None:
            for term in self._shopper:
                x += term
            if product is not None:
                category = self._categories.get(product.category)
                if category is None:
                    category = self.category_terms(product.category)
                brand = self._brands.get(product.brand)
                if brand is None:
                    brand = self.brand_term(product.brand)
                x += category[0]
                x += category[1]
                x += brand
            level = self._level
            if position is not None and level is not None:
                gap = position - level
                x += self._price_gap * gap
                x += self._price_gap_abs * abs(gap)
                x += self._price_gap_x_sensitivity * (gap * self._sensitivity)
        x += self._intercept
        if x < -30:          # river's sigmoid
            return 0
        if x > 30:
            return 1
        return 1 / (1 + math.exp(-x))
