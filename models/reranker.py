"""The order of a cross-sell's best candidates, learned pairwise from what shoppers then bought.

The engine's relevance blends "bought together" and the shopper's repeat buys with fixed
weights. Which signal matters more differs by store (a wholesaler reorders, a gift shop's
shoppers discover), so the order of the best ``depth`` candidates is also learned: at every
purchase, the candidates the engine would have offered with the order's first line are
scored, and for each product of the order among them and each one not in it, a pairwise
logistic step (RankNet) moves the weights so that the first ranks above the second. The
weights start as the engine's own order (all weight on its rank), so an untrained ranker
changes nothing, and a store whose orders agree with the engine's order keeps it.

Features of a candidate, all from what the decision already knows: its rank in the engine's
order, its "bought together" and repeat-buy scores (and their logs), how many orders held the
product, and the shopper's history with it (share of their orders, times bought, how long
ago, whether it came with the anchor last time).

>>> r = PairwiseRanker(step=0.05)
>>> x = np.array([[1.0, 0.1] + [0.0] * (len(FEATURES) - 2), [0.5, 0.9] + [0.0] * (len(FEATURES) - 2)])
>>> r.order(x).tolist()                     # untrained: the engine's order
[0, 1]
>>> for _ in range(300):
...     r.learn(x, np.array([False, True]))  # shoppers keep buying the second
>>> r.order(x).tolist(), r.updates
([1, 0], 300)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

#: The features, in the order of a row of :meth:`PairwiseRanker.features`.
FEATURES = ("rank", "bought_together", "history", "log_bought_together", "log_orders", "history_share",
            "log_times", "age", "with_anchor", "in_history", "in_bought_together", "log_recent_sales", "log_price")
#: The checkpoint format (:meth:`PairwiseRanker.snapshot`).
SNAPSHOT_VERSION = 1
#: A past purchase's age is counted up to this many seconds (then it is simply old).
AGE_SPAN = 180 * 86_400.0


class PairwiseRanker:
    """Online pairwise logistic ranking over a fixed set of candidate features."""

    def __init__(self, step: float = 0.001, depth: int = 20) -> None:
        self.step = step
        self.depth = depth
        self.weights = np.zeros(len(FEATURES))
        self.weights[0] = 1.0            # the engine's order
        self.updates = 0                 # orders learned from

    @staticmethod
    def features(candidates: Sequence, purchases: dict, orders: int, product_orders, anchor_ts: Optional[float],
                 now: float, recent_sales: Optional[np.ndarray] = None) -> np.ndarray:
        """One row per candidate (best first in the engine's order): see :data:`FEATURES`.
        ``purchases`` is the shopper's product -> (times, last time), ``product_orders`` a
        function giving how many orders held a product, and ``recent_sales`` each candidate's
        recent orders (in the candidates' order; None: unknown)."""
        n = len(candidates)
        rows = []          # Python rows, made into one array: numpy's per-element writes cost more
        log1p = math.log1p
        for i, c in enumerate(candidates):
            bought, history = c.bought, c.history
            past = purchases.get(c.product_id)
            if past is None:
                mine = (0.0, 0.0, 0.0, 0.0)
            else:
                times, ts = past
                mine = (min(1.0, times / max(1, orders)), log1p(times) / 3,
                        min(1.0, max(0.0, now - ts) / AGE_SPAN), float(ts == anchor_ts))
            rows.append(((n - i) / n, bought, history, log1p(10 * bought),
                         log1p(product_orders(c.product_id)) / 10, *mine,
                         float(history > 0), float(bought > 0), 0.0, log1p(c.price or 0.0) / 5))
        x = np.array(rows, dtype=float).reshape(n, len(FEATURES))
        if recent_sales is not None and n:
            x[:, 11] = np.log1p(recent_sales) / 5
        return x

    def order(self, x: np.ndarray) -> np.ndarray:
        """Indices of the rows, best first by the learned score (ties: the engine's order)."""
        return np.argsort(-(x @ self.weights), kind="stable")      # stable: ties keep the engine's order

    def learn(self, x: np.ndarray, bought: np.ndarray) -> None:
        """One order: the rows ``bought`` should rank above the others."""
        positive, negative = x[bought], x[~bought]
        if not len(positive) or not len(negative):
            return
        for p in positive:
            d = p - negative                                     # each pair (p, n)
            gap = np.clip(d @ self.weights, -50.0, 50.0)
            self.weights += self.step * ((1.0 / (1.0 + np.exp(gap)))[:, None] * d).sum(axis=0)
        self.updates += 1

    # -- checkpoints ----------------------------------------------------------
    def snapshot(self) -> dict:
        """The learned weights as JSON-able data."""
        return {"version": SNAPSHOT_VERSION, "features": list(FEATURES), "weights": self.weights.tolist(),
                "updates": self.updates}

    def restore(self, snapshot: dict) -> None:
        """Continue from a :meth:`snapshot` (one with other features is ignored: it was another
        release's, and the engine's order is the safe start)."""
        if snapshot.get("features") != list(FEATURES):
            return
        self.weights = np.array(snapshot["weights"], dtype=float)
        self.updates = int(snapshot.get("updates", 0))

    def merge(self, snapshot: dict) -> None:
        """Average in another worker's weights, weighted by the orders each learned from."""
        if snapshot.get("features") != list(FEATURES) or snapshot.get("updates", 0) <= 0:
            return
        theirs, mine = snapshot["updates"], self.updates
        share = theirs / (theirs + mine)
        self.weights = (1 - share) * self.weights + share * np.array(snapshot["weights"], dtype=float)
        self.updates = max(mine, theirs)
