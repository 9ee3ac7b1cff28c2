"""The learned cross-sell order: it starts as the engine's order, learns from orders, and is
checkpointed with the acceptance model."""
from __future__ import annotations

import numpy as np
import pytest

from nextoffer.models.engine import OfferEngine
from nextoffer.models.events import CART, LineItem, Product, ShopperEvent
from nextoffer.models.reranker import FEATURES, PairwiseRanker
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState

DAY = 86_400.0


def _rows(*rows):
    return np.array([list(r) + [0.0] * (len(FEATURES) - len(r)) for r in rows])


def test_an_untrained_ranker_keeps_the_engines_order_and_learning_moves_what_is_bought_up():
    ranker = PairwiseRanker(step=0.01)
    x = _rows((1.0, 0.8, 0.0), (0.66, 0.1, 0.9), (0.33, 0.5, 0.0))   # rank, bought together, history
    assert ranker.order(x).tolist() == [0, 1, 2]
    for _ in range(200):
        ranker.learn(x, np.array([False, True, False]))          # the repeat buy is what is bought
    assert ranker.order(x)[0] == 1
    ranker.learn(x, np.array([True, True, True]))                # nothing to compare: no step
    assert ranker.updates == 200


def test_checkpoint_restore_and_merge():
    a, b = PairwiseRanker(), PairwiseRanker()
    a.weights[2], a.updates = 3.0, 30
    b.restore(a.snapshot())
    assert b.weights.tolist() == a.weights.tolist() and b.updates == 30
    c = PairwiseRanker()
    c.updates = 10
    c.merge(a.snapshot())                                         # 30 of 40 orders were a's
    assert abs(c.weights[2] - 3.0 * 30 / 40) < 1e-12 and c.updates == 30
    other = {**a.snapshot(), "features": ["something", "else"]}
    c.restore(other)                                              # another release's: ignored
    assert c.updates == 30


def _store() -> tuple[OfferEngine, list[str]]:
    engine = OfferEngine(OfferRules(price_rules=False))
    products = [f"p{n}" for n in range(16)]
    for pid in products:
        engine.update_product(Product(pid, 10.0, category="gifts"))
    return engine, products


def _buy(engine: OfferEngine, shopper: ShopperState, lines: list[str], ts: float, n: int,
         adds: bool = False) -> None:
    items = tuple(LineItem(pid, 1, 10.0) for pid in lines)
    for k, pid in enumerate(lines if adds else ()):      # a storefront's adds, line by line
        engine.process(shopper, ShopperEvent(CART, "add", f"o{n}-a{k}", shopper.user_id, ts - 60 + k,
                                             product_id=pid, price=10.0), generated_at=ts)
    out = engine.process(shopper, ShopperEvent(CART, "purchase", f"o{n}", shopper.user_id, ts, items=items),
                         generated_at=ts)
    if out.basket is not None:
        engine.learn_basket(out.basket)


@pytest.mark.parametrize("adds", [False, True], ids=["purchases", "adds then purchase"])
def test_the_engine_learns_the_order_at_each_purchase_and_only_once_per_order(adds):
    """Whether the lines were added to the cart first (a storefront) or not (an import): the
    order's products are what it learns, not excluded as already in the cart."""
    engine, p = _store()
    shoppers = [ShopperState(f"u{n}") for n in range(30)]
    ts, n = 1_700_000_000.0, 0
    for round_ in range(6):
        for s in shoppers:
            n += 1
            anchor = n % 2              # two kinds of order: p0 with two of p2 to p7, p1 with p8 to p13
            _buy(engine, s, [p[anchor], p[2 + 6 * anchor + n % 6], p[2 + 6 * anchor + (n + 1) % 6]],
                 ts + n * DAY / 10, n, adds)
    assert engine.ranker.updates > 0 and engine.tally["updates.ranking"] == engine.ranker.updates
    before = engine.ranker.updates
    again = ShopperEvent(CART, "purchase", f"o{n}", shoppers[-1].user_id, ts + n * DAY / 10,
                         items=(LineItem(p[0], 1, 10.0), LineItem(p[1], 1, 10.0)))
    engine.process(shoppers[-1], again, generated_at=ts)           # a duplicate event: nothing learned
    assert engine.ranker.updates == before


def test_learned_ranking_off_leaves_the_engines_order():
    engine = OfferEngine(OfferRules(learned_ranking=False))
    assert engine.ranker is None and engine.policy.ranker is None
