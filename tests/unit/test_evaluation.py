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


def test_hits_are_also_split_into_repeat_and_new_items():
    # u buys a and b, then a with b again (b a repeat) and a with c (c new to them)
    orders = [order(0, "u", "a", "b"), order(1, "v", "a", "c"), order(2, "u", "a", "b"), order(3, "u", "a", "c")]
    (score,), _ = evaluate(orders, [BoughtTogetherCounts(True)], warm_up=0.5)
    assert score.scored == 2 and score.repeat == [1, 1] and score.new[0] == 1
    assert score.repeat_hit_rate == 1.0 and score.new_hit_rate == score.new[1] / 1


def test_a_replay_of_events_counts_the_share_offered_by_placement_and_kind():
    from nextoffer.models.engine import OfferEngine
    from nextoffer.models.events import Product, ShopperEvent
    from nextoffer.streams.tools.evaluation import replay_events
    engine = OfferEngine(OfferRules())
    engine.update_product(Product("s-128", 700.0, family="s", tier=1))
    engine.update_product(Product("s-256", 800.0, family="s", tier=2))
    events = [ShopperEvent("clickstream", "view", "e1", "u1", 1.0, product_id="s-128"),
              ShopperEvent("clickstream", "view", "e1", "u1", 1.0, product_id="s-128"),   # a duplicate
              ShopperEvent("clickstream", "view", "e2", "u1", 2.0, product_id="s-256"),
              ShopperEvent("clickstream", "search", "e3", "u1", 3.0, query="phone")]
    report = replay_events(events, engine).report()
    assert report == {"product_page": {"events": 2, "offered": 0.5, "upsell": 0.5, "cross_sell": 0.0}}


def test_the_evaluation_learns_with_the_configured_learner_settings(tmp_path):
    from nextoffer.models.engine import LearnerSettings
    from nextoffer.streams.tools.evaluation_report import run_evaluation
    # Thirty teapots, each bought with its own cups by shoppers seen once: only pairs find them.
    orders = [order(n, f"t{n}", f"teapot-{n % 30}", f"cups-{n % 30}") for n in range(600)]

    def relevance(report):
        return next(m["hit_rate"] for m in report["methods"] if m["name"] == "nextoffer, relevance-only rules")
    default = run_evaluation(tmp_path / "orders.csv", orders, OfferRules(), warm_up=0.5)
    unpaired = run_evaluation(tmp_path / "orders.csv", orders, OfferRules(), warm_up=0.5,
                              learners=LearnerSettings(max_basket=1))     # NEXTOFFER_MAX_BASKET=1: no pairs
    assert relevance(default) > 0.9 > 0.5 > relevance(unpaired)
