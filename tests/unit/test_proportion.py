"""The cross-sell proportion, the first-time buyers' share and the upsell band come from the store's
own orders; the configured shares hold only until there is evidence."""
from nextoffer.models.engine import Basket, LearnerSettings, OfferEngine
from nextoffer.models.events import LineItem, Product, ShopperEvent
from nextoffer.models.proportion import PriceProportions
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState

T0 = 1_700_000_000.0


def engine_with(orders, catalog, **learners) -> OfferEngine:
    engine = OfferEngine(OfferRules(exploration=0.0), LearnerSettings(**learners))
    for product in catalog:
        engine.update_product(product)
    for n, lines in enumerate(orders):
        engine.learn_basket(Basket(f"h{n}", T0 + n, tuple(LineItem(pid, 1, price) for pid, price in lines)))
    return engine


def cart_offer(engine, pid, user="u1", orders=3):
    shopper = ShopperState(user, orders=orders, spend=100.0 * orders, first_ts=T0 - 90 * 86_400)
    event = ShopperEvent("cart", "add", "e1", user, T0 + 10_000, product_id=pid)
    return engine.process(shopper, event, generated_at=T0 + 10_000).offer


GIFTS = [Product(f"g{n}", 3.0 + n % 3, category=None) for n in range(6)]
GIFT_ORDERS = [[("g0", 3.0), ("g1", 4.0), ("g2", 5.0)], [("g3", 3.0), ("g4", 4.0), ("g5", 5.0)]] * 40


def test_in_a_shop_where_items_cost_the_same_complements_are_offered_once_it_has_evidence():
    learned = engine_with(GIFT_ORDERS, GIFTS)
    offer = cart_offer(learned, "g0")
    assert offer is not None and offer.kind.value == "cross_sell"
    assert {"g1", "g2"} <= set(offer.product_ids)
    bound = learned.policy.price_bounds("g0")["cross_sell_max_share"]
    assert bound.scope == "store" and bound.value > 1.5 and bound.evidence >= 50


def test_without_evidence_the_configured_share_holds():
    few = engine_with(GIFT_ORDERS[:6], GIFTS)      # 18 priced pairs: fewer than the 50 needed
    offer = cart_offer(few, "g0")
    assert offer is None or not {"g1", "g2"} & set(offer.product_ids)
    assert few.policy.price_bounds("g0")["cross_sell_max_share"].scope == "configured"


MENSWEAR = [Product("blazer", 500_000.0, category="menswear.blazers"),
            Product("blazer-2", 450_000.0, category="menswear.blazers"),
            Product("tie", 50_000.0, category="menswear.ties"),
            Product("tie-2", 40_000.0, category="menswear.ties")]


def test_no_blazer_is_offered_with_a_tie():
    # shoppers buy a blazer first and a tie with it; the other way round the price is out of proportion
    orders = [[("blazer", 500_000.0), ("tie", 50_000.0)], [("blazer-2", 450_000.0), ("tie-2", 40_000.0)],
              [("blazer", 500_000.0), ("tie-2", 40_000.0)]] * 30
    engine = engine_with(orders, MENSWEAR)
    offer = cart_offer(engine, "tie")
    assert offer is None or not {"blazer", "blazer-2"} & set(offer.product_ids)
    with_blazer = cart_offer(engine, "blazer")
    assert with_blazer is not None and with_blazer.kind.value == "cross_sell"
    assert set(with_blazer.product_ids) <= {"tie", "tie-2"}
    # with no evidence at all, the configured share (25%) refuses it too
    assert not engine_with([], MENSWEAR).policy.price_bounds("tie")["cross_sell_max_share"].value >= 10


def test_a_category_pair_with_evidence_has_its_own_bound():
    learned = PriceProportions(min_evidence=5, min_category_evidence=5)
    for _ in range(10):
        learned.observe_order([("phone", 800.0, "phones"), ("case", 20.0, "cases")], first_order=False)
        learned.observe_order([("mug", 8.0, "mugs"), ("tea", 8.0, "tea")], first_order=False)
    assert learned.cross_sell_bound("phones", "cases", 0.25).scope == "category"
    assert learned.cross_sell_bound("phones", "cases", 0.25).value < 0.05
    assert learned.cross_sell_bound("mugs", "tea", 0.25).value >= 1.0
    assert learned.cross_sell_bound("phones", "tea", 0.25).scope == "store"


def test_first_orders_and_upgrade_steps_are_learned_apart():
    learned = PriceProportions(min_evidence=5)
    for _ in range(10):
        learned.observe_order([("a", 100.0, None), ("b", 10.0, None)], first_order=True)
        learned.observe_order([("a", 100.0, None), ("c", 90.0, None)], first_order=False)
        learned.observe_upgrades([(100.0, 150.0), (100.0, 110.0)])
    assert learned.first_time_bound(0.15).value < 0.15 < learned.cross_sell_bound(None, None, 0.25).value
    low, high = learned.upsell_band((0.2, 0.4))
    assert low.scope == high.scope == "store" and low.value <= 0.15 and high.value >= 0.5
    assert PriceProportions().upsell_band((0.2, 0.4))[0].value == 0.2
