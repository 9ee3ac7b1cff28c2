"""Will the shopper take it? An online model of offer acceptance (river), and how it ranks.

Each offered item is remembered with its features (kind, placement, signal source,
relevance, price ratio to the anchor, position); outcomes teach the model:
an accept or click, or the item added or bought while the offer stands, is a 1;
a decline or dismiss, or an offer that lapses unconverted, is a 0.
"""
from __future__ import annotations

import math
from typing import Optional

from river import linear_model, optim

#: An offered item as remembered in the shopper's state (JSON-able):
#: [product_id, kind, placement, source, score, price_ratio or None, position]
ItemRecord = list


def item_record(pid: str, kind: str, placement: str, source: str, score: float,
                price: Optional[float], anchor_price: Optional[float], position: int) -> ItemRecord:
    ratio = price / anchor_price if price and anchor_price else None
    return [pid, kind, placement, source, round(score, 6), None if ratio is None else round(ratio, 4),
            position]


class AcceptanceModel:
    """Online logistic regression of P(accept | offered item).

    >>> m = AcceptanceModel()
    >>> staple = ["p", "cross_sell", "cart", "history", 0.4, 0.5, 0]
    >>> odd = ["q", "cross_sell", "cart", "bought_together", 0.02, 3.0, 2]
    >>> for _ in range(200):
    ...     m.learn(staple, True, repeat_customer=True)
    ...     m.learn(odd, False, repeat_customer=True)
    >>> m.predict(staple, True) > 0.8 > 0.2 > m.predict(odd, True)
    True
    """

    def __init__(self, learning_rate: float = 0.05) -> None:
        self._model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        self.updates = 0
        self.positives = 0

    @staticmethod
    def features(record: ItemRecord, repeat_customer: bool) -> dict[str, float]:
        _, kind, placement, source, score, ratio, position = record
        return {f"kind={kind}": 1.0, f"placement={placement}": 1.0, f"source={source}": 1.0,
                "relevance": min(score, 2.0), "log_price_ratio": math.log(ratio) if ratio else 0.0,
                "position": float(position), "repeat_customer": float(repeat_customer)}

    def predict(self, record: ItemRecord, repeat_customer: bool) -> float:
        return self._model.predict_proba_one(self.features(record, repeat_customer)).get(True, 0.5)

    def learn(self, record: ItemRecord, accepted: bool, repeat_customer: bool) -> None:
        self._model.learn_one(self.features(record, repeat_customer), accepted)
        self.updates += 1
        self.positives += accepted
