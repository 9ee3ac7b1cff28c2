"""Learned upgrades, the content fallback, segment-aware choices and the free-shipping nudge."""
from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem, Product, ShopperEvent
from nextoffer.models.offer import Kind
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState

TEA = [Product("own-tea", 3.0, name="Own tea", category="tea", brand="Own"),
       Product("brand-tea", 3.9, name="Brand tea", category="tea", brand="Leaf"),
       Product("gold-tea", 4.0, name="Gold tea", category="tea", brand="Gold"),
       Product("mug", 9.0, name="Mug", category="mugs", brand="Leaf"),
       Product("cup", 7.0, name="Cup", category="mugs", brand="Own"),
       Product("kettle", 40.0, name="Kettle", category="kettles", brand="Leaf")]


def engine_with(products, rules=OfferRules(exploration=0.0)):
    engine = OfferEngine(rules)
    for p in products:
        engine.update_product(p)
    return engine


def test_upgrades_learned_from_shoppers_who_looked_then_bought_pricier():
    engine = engine_with(TEA)
    for n in range(3):   # shoppers look at the store brand, then buy the national brand
        shopper = ShopperState(f"u{n}")
        engine.process(shopper, ShopperEvent("clickstream", "view", "v", f"u{n}", 1.0, product_id="own-tea"), 1.0)
        out = engine.process(shopper, ShopperEvent("cart", "purchase", "p", f"u{n}", 2.0,
                                                   items=(LineItem("brand-tea", 1, 3.9),)), 2.0)
        assert out.basket.upgrades == (("own-tea", "brand-tea"),)
        engine.learn_basket(out.basket)
    out = engine.process(ShopperState("new"), ShopperEvent("clickstream", "view", "v", "new", 3.0,
                                                           product_id="own-tea"), 3.0)
    assert out.offer.kind is Kind.UPSELL
    assert out.offer.product_ids[0] == "brand-tea"
    assert "often chose Brand tea" in out.offer.items[0].reason


def test_a_new_product_gets_content_based_cross_sells_marked_as_such():
    engine = engine_with(TEA + [Product("new-kettle", 55.0, name="New kettle", category="kettles", brand="Leaf")],
                         OfferRules(exploration=0.0, first_time_max_share=0.25))
    for n in range(4):
        engine.learn_basket(Basket(f"u{n}", float(n), (LineItem("kettle", 1, 40.0), LineItem("mug", 1, 9.0))))
        engine.learn_basket(Basket(f"t{n}", float(n), (LineItem("own-tea", 1, 3.0),)))
    out = engine.process(ShopperState("u9"), ShopperEvent("cart", "add", "a", "u9", 9.0, product_id="new-kettle"), 9.0)
    assert out.offer.kind is Kind.CROSS_SELL
    assert set(out.offer.product_ids) <= {"mug", "cup"}
    first = out.offer.items[0]
    assert first.product_id == "mug" and first.reason.startswith("same brand as New kettle")
    assert "popular in mugs" in first.reason


def test_first_time_buyers_get_cheaper_add_ons_than_repeat_customers():
    products = [Product("tv", 1000.0, category="tv"), Product("mount", 200.0, category="mounts"),
                Product("hdmi", 20.0, category="cables")]
    rules = OfferRules(exploration=0.0, cross_sell_max_share=0.25, first_time_max_share=0.1)
    engine = engine_with(products, rules)
    for n in range(4):
        engine.learn_basket(Basket(f"u{n}", float(n), tuple(LineItem(p.product_id, 1, p.price) for p in products)))
        engine.learn_basket(Basket(f"o{n}", float(n), (LineItem("other", 1, 5.0),)))
    first = engine.process(ShopperState("new"), ShopperEvent("cart", "add", "a", "new", 9.0, product_id="tv"), 9.0)
    assert first.offer.product_ids == ["hdmi"]
    regular = ShopperState("old", orders=3, spend=600.0)
    again = engine.process(regular, ShopperEvent("cart", "add", "a", "old", 9.0, product_id="tv"), 9.0)
    assert again.offer.product_ids[0] == "mount"      # premium leans first at near-equal relevance
    assert set(again.offer.product_ids) == {"mount", "hdmi"}


def test_an_add_on_that_reaches_free_shipping_is_preferred_and_says_so():
    products = [Product("kettle", 40.0, category="kettles"), Product("mug", 9.0, category="mugs"),
                Product("filter", 3.0, category="filters")]
    rules = OfferRules(exploration=0.0, free_shipping_threshold=49.0, cross_sell_max_share=1.0, first_time_max_share=1.0,
                       segment_tilt=0.0)
    engine = engine_with(products, rules)
    for n in range(4):
        engine.learn_basket(Basket(f"u{n}", float(n), tuple(LineItem(p.product_id, 1, p.price) for p in products)))
        engine.learn_basket(Basket(f"o{n}", float(n), (LineItem("other", 1, 5.0),)))
    engine.learn_basket(Basket("f", 5.0, (LineItem("kettle", 1, 40.0), LineItem("filter", 1, 3.0))))
    shopper = ShopperState("u9")
    out = engine.process(shopper, ShopperEvent("cart", "add", "a", "u9", 9.0, product_id="kettle", price=40.0), 9.0)
    assert out.offer.product_ids[0] == "mug"          # filter is likelier, but the mug ships the order free
    assert "adds free shipping (9.00 to go)" in out.offer.items[0].reason
    plain = engine_with(products, OfferRules(exploration=0.0, cross_sell_max_share=1.0, first_time_max_share=1.0,
                                             segment_tilt=0.0))
    for n in range(4):
        plain.learn_basket(Basket(f"u{n}", float(n), tuple(LineItem(p.product_id, 1, p.price) for p in products)))
        plain.learn_basket(Basket(f"o{n}", float(n), (LineItem("other", 1, 5.0),)))
    plain.learn_basket(Basket("f", 5.0, (LineItem("kettle", 1, 40.0), LineItem("filter", 1, 3.0))))
    out = plain.process(ShopperState("u9"), ShopperEvent("cart", "add", "a", "u9", 9.0, product_id="kettle", price=40.0), 9.0)
    assert out.offer.product_ids[0] == "filter"


def test_the_shoppers_price_level_decides_how_far_up_the_ladder():
    ladder = [Product(f"tv-{n}", price, category="tv", family="tv", tier=float(n))
              for n, price in enumerate((500.0, 650.0, 900.0, 1000.0, 400.0, 300.0), start=1)]
    engine = engine_with(ladder, OfferRules(exploration=0.0, family_max_step=1.0))
    lavish, thrifty = ShopperState("rich"), ShopperState("thrift")
    for n in range(3):   # one buys the top tier, the other the cheapest
        engine.process(lavish, ShopperEvent("cart", "purchase", f"p{n}", "rich", float(n),
                                            items=(LineItem("tv-4", 1, 1000.0),)), n)
        engine.process(thrifty, ShopperEvent("cart", "purchase", f"p{n}", "thrift", float(n),
                                             items=(LineItem("tv-6", 1, 300.0),)), n)
    later = 3 * 86_400.0    # past the repurchase window
    high = engine.process(lavish, ShopperEvent("clickstream", "view", "x", "rich", later, product_id="tv-1"), later)
    low = engine.process(thrifty, ShopperEvent("clickstream", "view", "x", "thrift", later, product_id="tv-1"), later)
    assert high.offer.product_ids == ["tv-2", "tv-3", "tv-4"]
    assert low.offer.product_ids == ["tv-2"]           # the thrifty shopper is offered the next tier only
