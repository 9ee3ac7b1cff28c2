from nextoffer.models.bought_together import DAY, BoughtTogether


def test_attachment_rate_and_lift_follow_their_definitions():
    bt = BoughtTogether(half_life=None)
    for basket in (["a", "b"], ["a", "b"], ["a", "c"], ["b"], ["d"]):
        bt.observe_basket(basket, ts=0)
    # 2 of the 3 orders with a hold b; b is in 3 of 5 orders.
    assert bt.attachment_rate("a", "b") == 2 / 3
    assert abs(bt.lift("a", "b") - (2 / 3) / (3 / 5)) < 1e-12
    assert bt.orders() == 5


def test_duplicates_inside_one_order_count_once():
    bt = BoughtTogether(half_life=None)
    bt.observe_basket(["a", "a", "b"], ts=0)
    assert bt.item_count("a", now=0) == 1
    assert bt.attachment_rate("a", "b") == 1


def test_lift_keeps_best_sellers_from_winning_everywhere():
    bt = BoughtTogether(half_life=None, lift_exponent=1.0)
    # "bag" is in every order; "filter" only ever goes with "coffee".
    for _ in range(10):
        bt.observe_basket(["bag", "x"], ts=0)
    for _ in range(3):
        bt.observe_basket(["coffee", "filter", "bag"], ts=0)
    ranked = [c.product_id for c in bt.complements([("coffee", 1.0)], now=0, min_support=1, min_lift=1.0)]
    assert ranked[0] == "filter"
    assert "bag" not in ranked  # lift of bag with coffee is exactly 1: no better than chance


def test_old_orders_fade_with_the_half_life():
    bt = BoughtTogether(half_life=10 * DAY)
    bt.observe_basket(["unrelated"], ts=30 * DAY)
    for _ in range(4):
        bt.observe_basket(["phone", "old-case"], ts=0)
    for _ in range(2):
        bt.observe_basket(["phone", "new-case"], ts=30 * DAY)
    now = 30 * DAY
    assert abs(bt.item_count("old-case", now) - 4 / 8) < 1e-9
    ranked = [c.product_id for c in bt.complements([("phone", 1.0)], now=now, min_support=0.1)]
    assert ranked == ["new-case", "old-case"]


def test_min_support_filters_one_off_pairs():
    bt = BoughtTogether(half_life=None)
    bt.observe_basket(["unrelated"], ts=0)
    bt.observe_basket(["a", "rare"], ts=0)
    bt.observe_basket(["a", "b"], ts=0)
    bt.observe_basket(["a", "b"], ts=0)
    assert [c.product_id for c in bt.complements([("a", 1.0)], now=0, min_support=2)] == ["b"]


def test_neighbours_are_pruned_to_the_strongest():
    bt = BoughtTogether(half_life=None, max_neighbours=2)
    for n in range(3):
        bt.observe_basket(["a", "strong"], ts=0)
    for n in range(10):
        bt.observe_basket(["a", f"weak{n}"], ts=0)
    neighbours = {c.product_id for c in bt.complements([("a", 1.0)], now=0, min_support=0, min_lift=0)}
    assert "strong" in neighbours
    assert len(neighbours) <= 2 * 2


def test_huge_orders_pair_only_their_first_lines():
    bt = BoughtTogether(half_life=None, max_basket=3)
    bt.observe_basket([f"p{n}" for n in range(100)], ts=0)
    assert bt.attachment_rate("p0", "p2") == 1
    assert bt.attachment_rate("p0", "p50") == 0
    assert bt.item_count("p50", now=0) == 1  # still counted as bought


def test_rescaling_keeps_ratios():
    bt = BoughtTogether(half_life=1.0)
    bt.observe_basket(["a", "b"], ts=0)
    bt.observe_basket(["a", "b"], ts=600)  # 2**600 > the rescale threshold
    assert bt.attachment_rate("a", "b") == 1
    assert 1.0 <= bt.item_count("a", now=600) <= 2.0
