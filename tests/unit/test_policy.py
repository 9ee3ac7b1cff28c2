"""The offer policy obeys the domain's rules, placement by placement."""
import pytest

from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem, Product, ShopperEvent
from nextoffer.models.offer import Kind, Placement
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState

PHONES = [Product("s-128", 700.0, name="S 128GB", category="phone", family="s", tier=1, margin=0.2),
          Product("s-256", 800.0, name="S 256GB", category="phone", family="s", tier=2, margin=0.2),
          Product("s-512", 950.0, name="S 512GB", category="phone", family="s", tier=3, margin=0.2)]
ACCESSORIES = [Product("case", 25.0, name="Case", category="acc", margin=0.5),
               Product("glass", 12.0, name="Screen glass", category="acc", margin=0.6),
               Product("charger", 30.0, name="Charger", category="acc", margin=0.4),
               Product("cable", 9.0, name="Cable", category="acc", margin=0.3),
               Product("tv", 900.0, name="TV", category="tv")]


def make_engine(rules=OfferRules(), orders=4):
    engine = OfferEngine(rules)
    for p in PHONES + ACCESSORIES:
        engine.update_product(p)
    for n in range(orders):
        engine.learn_basket(Basket("x", float(n), tuple(LineItem(p, 1, None) for p in
                                                          ("s-128", "case", "glass", "charger", "cable"))))
        engine.learn_basket(Basket("y", float(n), (LineItem("tv", 1, 900.0),)))
    return engine


def event(kind, eid="e1", source="cart", ts=10.0, **kw):
    return ShopperEvent(source, kind, eid, "u1", ts, **kw)


def test_product_page_offers_the_next_tier_of_the_family_first():
    out = make_engine().process(ShopperState("u1"), event("view", source="clickstream", product_id="s-128"), 0)
    offer = out.offer
    assert offer.kind is Kind.UPSELL and offer.placement is Placement.PRODUCT_PAGE
    assert offer.product_ids[0] == "s-256"
    assert offer.items[0].reason == "same line, S 256GB, +14%"
    assert offer.anchor_product_id == "s-128"


def test_cart_add_offers_complements_not_upgrades():
    out = make_engine().process(ShopperState("u1"), event("add", product_id="s-128", price=700.0), 0)
    assert out.offer.kind is Kind.CROSS_SELL and out.offer.placement is Placement.CART
    assert set(out.offer.product_ids) <= {"case", "glass", "charger", "cable"}
    assert len(out.offer.items) == 3
    assert all("often bought with S 128GB" in item.reason for item in out.offer.items)


def test_nothing_in_the_cart_is_offered():
    engine, s = make_engine(), ShopperState("u1")
    engine.process(s, event("add", "e0", product_id="case", price=25.0), 0)
    out = engine.process(s, event("add", product_id="s-128", price=700.0), 0)
    assert "case" not in out.offer.product_ids


def test_just_bought_items_are_not_offered_within_the_window():
    engine, s = make_engine(), ShopperState("u1")
    engine.process(s, event("purchase", "e0", items=(LineItem("glass", 1, 12.0),), ts=5.0), 0)
    assert "glass" not in engine.process(s, event("add", product_id="s-128", ts=6.0), 0).offer.product_ids
    later = 6.0 + OfferRules().repurchase_window + 1
    assert "glass" in engine.process(s, event("add", "e2", product_id="s-128", ts=later), 0).offer.product_ids


def test_out_of_stock_and_withdrawn_items_are_never_offered():
    engine = make_engine()
    engine.update_product(Product("case", 25.0, stock=0))
    engine.update_product(Product("glass", 12.0, active=False))
    out = engine.process(ShopperState("u1"), event("add", product_id="s-128"), 0)
    assert not {"case", "glass"} & set(out.offer.product_ids)


def test_declined_items_cool_down_then_come_back():
    engine, s = make_engine(), ShopperState("u1")
    first = engine.process(s, event("add", "e1", product_id="s-128", ts=10.0), 0).offer
    engine.process(s, event("decline", "f1", source="offer-feedback", offer_id=first.offer_id, ts=11.0), 0)
    engine.process(s, event("remove", "r1", product_id="s-128", ts=12.0), 0)
    again = engine.process(s, event("add", "e2", product_id="s-128", ts=13.0), 0)
    assert again.offer is None or not set(first.product_ids) & set(again.offer.product_ids)
    later = 11.0 + OfferRules().decline_cooldown + 1
    engine.process(s, event("remove", "r2", product_id="s-128", ts=later), 0)
    back = engine.process(s, event("add", "e3", product_id="s-128", ts=later + 1), 0)
    assert set(first.product_ids) & set(back.offer.product_ids)


def test_frequency_cap_stops_endless_repeats():
    engine, s = make_engine(OfferRules(max_impressions=2)), ShopperState("u1")
    shown = []
    for n in range(4):
        out = engine.process(s, event("view", f"v{n}", source="clickstream", product_id="s-128", ts=10.0 + n), 0)
        shown.append(out.offer.product_ids if out.offer else [])
    assert sum("s-256" in ids for ids in shown) == 2


def test_cross_sell_price_is_capped_by_the_anchor_share():
    rules = OfferRules(cross_sell_max_share=0.02)  # 2% of 700 = 14: only glass and cable fit
    out = make_engine(rules).process(ShopperState("u1"), event("add", product_id="s-128"), 0)
    assert set(out.offer.product_ids) == {"glass", "cable"}


def test_price_rules_can_be_switched_off():
    rules = OfferRules.relevance_only(cross_sell_max_share=0.02)
    out = make_engine(rules).process(ShopperState("u1"), event("add", product_id="s-128"), 0)
    assert len(out.offer.items) == 3


def test_upsell_band_applies_to_same_category_upgrades():
    engine = OfferEngine(OfferRules())
    for pid, price in (("base", 100.0), ("near", 110.0), ("good", 130.0), ("far", 200.0)):
        engine.update_product(Product(pid, price, category="kettle"))
    out = engine.process(ShopperState("u1"), event("view", source="clickstream", product_id="base"), 0)
    assert out.offer.kind is Kind.UPSELL and out.offer.product_ids == ["good"]
    assert out.offer.items[0].reason == "same category, good, +30%"


def test_no_offer_when_nothing_is_relevant():
    out = make_engine().process(ShopperState("u1"), event("add", product_id="unknown"), 0)
    assert out.offer is None and out.reason == "nothing_relevant"
    weak = make_engine(OfferRules(min_relevance=1.5)).process(ShopperState("u1"), event("add", product_id="s-128"), 0)
    assert weak.offer is None or weak.offer.kind is Kind.UPSELL


def test_checkout_offers_only_small_add_ons():
    engine, s = make_engine(), ShopperState("u1")
    engine.process(s, event("add", "e0", product_id="s-128", price=700.0), 0)
    out = engine.process(s, event("checkout", "e1"), 0)
    assert out.offer.placement is Placement.CHECKOUT and out.offer.kind is Kind.CROSS_SELL
    assert all(item.price <= 0.15 * 700.0 for item in out.offer.items)


def test_post_purchase_complements_what_was_bought():
    engine, s = make_engine(), ShopperState("u1")
    out = engine.process(s, event("purchase", "p1", items=(LineItem("s-128", 1, 700.0),)), 0)
    assert out.offer.placement is Placement.POST_PURCHASE and out.offer.anchor_product_id == "s-128"
    assert out.basket.items == (LineItem("s-128", 1, 700.0),)


def test_margin_breaks_near_ties_only():
    engine = OfferEngine(OfferRules(margin_weight=0.05))
    engine.update_product(Product("anchor", 100.0))
    engine.update_product(Product("low", 10.0, margin=0.0))
    engine.update_product(Product("high", 10.0, margin=0.9))
    for n in range(3):
        engine.learn_basket(Basket("x", 0.0, (LineItem("anchor"), LineItem("low"), LineItem("high"))))
        engine.learn_basket(Basket("y", 0.0, (LineItem("other"),)))
    out = engine.process(ShopperState("u1"), event("add", product_id="anchor"), 0)
    assert out.offer.product_ids == ["high", "low"]


def test_offer_ids_are_stable_for_replays():
    a = make_engine().process(ShopperState("u1"), event("add", product_id="s-128"), 0).offer
    b = make_engine().process(ShopperState("u1"), event("add", product_id="s-128"), 5).offer
    assert a.offer_id == b.offer_id


@pytest.mark.parametrize("kind,source", [("search", "clickstream"), ("remove", "cart"),
                                         ("impression", "offer-feedback")])
def test_events_without_a_placement_make_no_offer(kind, source):
    out = make_engine().process(ShopperState("u1"), event(kind, source=source, product_id="s-128"), 0)
    assert out.applied and out.offer is None


def test_staples_come_back_but_one_off_purchases_do_not():
    engine = OfferEngine(OfferRules.relevance_only())
    for n in range(30):  # beans are rebought by their buyers; the grinder never is
        engine.learn_basket(Basket(f"b{n % 5}", float(n), (LineItem("beans", 1, 12.0),), ("beans",) if n >= 5 else ()))
        engine.learn_basket(Basket(f"g{n}", float(n), (LineItem("grinder", 1, 90.0),)))
    s = ShopperState("u1")
    engine.process(s, event("purchase", "p1", items=(LineItem("beans", 1, 12.0), LineItem("grinder", 1, 90.0)), ts=0.0), 0)
    engine.process(s, event("purchase", "p2", items=(LineItem("beans", 1, 12.0),), ts=100.0), 0)
    later = 100.0 + OfferRules().repurchase_window + 1
    out = engine.process(s, event("add", "a1", product_id="mug", price=8.0, ts=later), 0)
    assert out.offer is not None and out.offer.product_ids == ["beans"]
    assert out.offer.items[0].reason.startswith("you bought it in 2 of your 2 orders")


def test_a_purchase_reports_which_lines_were_bought_again():
    engine, s = make_engine(), ShopperState("u1")
    engine.process(s, event("purchase", "p1", items=(LineItem("case", 1, 25.0),)), 0)
    out = engine.process(s, event("purchase", "p2", items=(LineItem("case", 1, 25.0), LineItem("glass", 1, 12.0)), ts=20.0), 0)
    assert out.basket.repeats == ("case",)


def test_the_control_group_gets_no_offers_but_its_state_is_kept():
    engine, s = make_engine(OfferRules(control_share=1.0)), ShopperState("u1")
    out = engine.process(s, event("add", product_id="s-128", price=700.0), 0)
    assert out.offer is None and out.reason == "control_group"
    assert "s-128" in s.cart


def test_exploration_swaps_the_last_item_and_records_its_propensity():
    greedy = make_engine(OfferRules(exploration=0.0, cross_sell_max_share=1.0)).process(
        ShopperState("u1"), event("add", product_id="s-128"), 0).offer
    explored = make_engine(OfferRules(exploration=1.0, cross_sell_max_share=1.0)).process(
        ShopperState("u1"), event("add", product_id="s-128"), 0).offer
    assert greedy.policy == "greedy" and greedy.propensity == 1.0
    assert explored.policy == "epsilon-greedy(1)"
    assert explored.product_ids[:2] == greedy.product_ids[:2]
    assert explored.product_ids[2] not in greedy.product_ids
    assert explored.propensity == 1.0  # one alternative, chosen with certainty at epsilon 1


def test_feedback_and_purchases_of_offered_items_teach_the_acceptance_model():
    engine, s = make_engine(), ShopperState("u1")
    offer = engine.process(s, event("add", "e1", product_id="s-128"), 0).offer
    engine.process(s, event("accept", "f1", source="offer-feedback", offer_id=offer.offer_id,
                            product_id=offer.product_ids[0]), 0)
    assert engine.acceptance.updates == 1 and engine.acceptance.positives == 1
    engine.process(s, event("add", "e2", product_id=offer.product_ids[1]), 0)
    assert engine.acceptance.updates == 2 and engine.acceptance.positives == 2
    engine.process(s, event("decline", "f2", source="offer-feedback", offer_id=offer.offer_id), 0)
    assert engine.acceptance.updates == 3 and engine.acceptance.positives == 2
