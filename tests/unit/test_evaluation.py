from nextoffer.streams.tools.evaluation import (BoughtTogetherCounts, EngineMethod, MostPopular, Order, evaluate,
                               orders_from)
from nextoffer.models.events import LineItem
from nextoffer.models.rules import OfferRules


def order(n, user, *products):
    # Two days apart: older than the "just bought" window.
    return Order(str(n), user, n * 2 * 86_400.0, tuple(LineItem(p, 1, 1.0) for p in products))


def test_the_protocol_scores_only_late_orders_with_two_or_more_products():
    orders = [order(n, f"u{n}", "a", "b") for n in range(8)] + [order(8, "x", "a"), order(9, "y", "a", "b")]
    scores, info = evaluate(orders, [BoughtTogetherCounts(streaming=True)], warm_up=0.8)
    assert info["warm_up_orders"] == 8 and info["scored_orders"] == 1
    assert scores[0].hits == 1 and scores[0].curve == [1.0]


def test_batch_counts_stop_learning_after_the_warm_up():
    orders = [order(n, "u", "a", "b") for n in range(4)] + [order(n, "u", "a", "c") for n in range(4, 10)]
    batch, stream = evaluate(orders, [BoughtTogetherCounts(False, frozen_after=4),
                                      BoughtTogetherCounts(True)], warm_up=0.6)[0]
    assert stream.hit_rate > batch.hit_rate


def test_most_popular_never_offers_the_anchor():
    pop = MostPopular()
    pop.learn(order(0, "u", "a", "b", "c"))
    assert "a" not in pop.recommend(order(1, "u", "a", "z"), 3)


def test_the_engine_learns_a_shoppers_staples_and_what_completes_an_order():
    # Every shopper rebuys tea; teapots come with cups.
    orders = []
    for n in range(300):
        orders.append(order(2 * n, f"s{n % 20}", "tea", "biscuits"))
        orders.append(order(2 * n + 1, f"t{n}", "teapot", "cups"))
    engine, counts = EngineMethod("engine", OfferRules.relevance_only()), BoughtTogetherCounts(True)
    scores, _ = evaluate(orders, [engine, counts], warm_up=0.5)
    assert scores[0].hit_rate == 1.0 and scores[0].scored == 300


def test_orders_merge_repeated_lines():
    class Inv:
        invoice, user_id, ts = "1", "u", 0.0
        lines = [("a", 1, 2.0, "A"), ("b", 1, 1.0, "B"), ("a", 2, 2.0, "A")]
    (o,) = orders_from([Inv()])
    assert o.lines == (LineItem("a", 3, 2.0), LineItem("b", 1, 1.0))
