"""Property: whatever the catalog, history and shopper, every emitted offer obeys the active rules."""
import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from nextoffer.models.engine import Basket, LearnerSettings, OfferEngine
from nextoffer.models.events import LineItem, Product, ShopperEvent
from nextoffer.models.offer import Kind, Placement
from nextoffer.models.profile import segment
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState

PIDS = [f"p{n}" for n in range(12)]

products = st.builds(
    Product, product_id=st.sampled_from(PIDS), price=st.floats(1, 1000),
    category=st.sampled_from([None, "a", "b"]), brand=st.sampled_from([None, "x", "y"]),
    margin=st.one_of(st.none(), st.floats(0, 1)), stock=st.one_of(st.none(), st.integers(0, 3)),
    family=st.sampled_from([None, "f", "g"]), tier=st.one_of(st.none(), st.integers(1, 4).map(float)),
    active=st.booleans())
baskets = st.lists(st.lists(st.sampled_from(PIDS), min_size=1, max_size=5), max_size=25)
events = st.lists(st.tuples(
    st.sampled_from([("clickstream", "view"), ("cart", "add"), ("cart", "remove"), ("cart", "checkout"),
                     ("cart", "purchase"), ("offer-feedback", "decline")]),
    st.sampled_from(PIDS), st.floats(1, 1000), st.floats(0, 3 * 86_400)), min_size=1, max_size=25)
rules_strategy = st.builds(
    OfferRules, max_items=st.integers(1, 3), price_rules=st.booleans(),
    min_relevance=st.floats(0, 0.5), max_impressions=st.integers(1, 3),
    cross_sell_max_share=st.floats(0.05, 1.0), min_support=st.floats(0.5, 2),
    first_time_max_share=st.floats(0.05, 1.0), segment_tilt=st.floats(0, 1),
    free_shipping_threshold=st.sampled_from([0.0, 50.0, 500.0]), acceptance_weight=st.floats(0, 1),
    high_value_spend=st.sampled_from([100.0, 1000.0]))
# the learned proportion takes over from the configured shares soon or late (or never)
learners_strategy = st.builds(
    LearnerSettings, proportion_quantile=st.floats(0.5, 1.0), proportion_min_evidence=st.integers(1, 200),
    proportion_min_category_evidence=st.integers(1, 200))


@settings(max_examples=300, deadline=None)
@given(rules=rules_strategy, learners=learners_strategy, catalog=st.lists(products, max_size=20),
       history=baskets, stream=events)
def test_every_offer_obeys_the_rules(rules, learners, catalog, history, stream):
    engine = OfferEngine(rules, learners)
    for product in catalog:
        engine.update_product(product)
    for n, basket in enumerate(history):
        engine.learn_basket(Basket("h", float(n), tuple(LineItem(pid) for pid in basket)))
    shopper = ShopperState("u1")
    ts = 100.0
    for n, ((source, kind), pid, price, gap) in enumerate(stream):
        ts += gap
        before = copy.deepcopy(shopper)
        offer_id = next(iter(shopper.offers), None)
        event = ShopperEvent(source, kind, f"e{n}", "u1", ts, product_id=pid, price=price,
                             offer_id=offer_id if source == "offer-feedback" else None)
        out = engine.process(shopper, event, generated_at=ts)
        if out.offer is not None:
            check(out.offer, rules, engine, before, shopper, event, out)
            engine.learn_basket(out.basket) if out.basket else None


def check(offer, rules, engine, before, after, event, out):
    assert 1 <= len(offer.items) <= rules.max_items
    assert len(set(offer.product_ids)) == len(offer.items)
    assert offer.kind in (Kind.UPSELL, Kind.CROSS_SELL)       # one kind per offer, by construction
    assert offer.placement is event.placement
    assert offer.expires_at > offer.generated_at
    if offer.placement is Placement.CHECKOUT:
        assert offer.kind is Kind.CROSS_SELL
    bought_now = {line.product_id for line in (out.basket.items if out.basket else ())}
    anchor = engine.catalog.get(offer.anchor_product_id)
    for item in offer.items:
        pid = item.product_id
        assert item.reason
        assert pid != offer.anchor_product_id
        assert pid not in after.cart
        assert pid not in bought_now
        last = before.bought_at(pid)
        assert last is None or event.ts - last >= rules.repurchase_window
        declined = before.declined.get(pid)
        assert declined is None or event.ts - declined >= rules.decline_cooldown
        assert before.times_shown(pid, event.ts, rules.fatigue_window) < rules.max_impressions
        product = engine.catalog.get(pid)
        assert product is None or product.available(rules.min_stock)
        if offer.kind is Kind.UPSELL:
            assert anchor is not None and product is not None and product.price > anchor.price
            step = product.price / anchor.price - 1
            if rules.price_rules:
                in_family = anchor.family is not None and product.family == anchor.family
                low, high = (b.value for b in engine.proportions.upsell_band(
                    (rules.upsell_min_step, rules.upsell_max_step)))   # learned, else configured
                assert step <= (rules.family_max_step if in_family else high) + 1e-9
                assert in_family or step >= low - 1e-9
        else:
            threshold = (rules.checkout_min_relevance if offer.placement is Placement.CHECKOUT
                         else rules.min_relevance)
            assert item.score >= threshold
            if rules.price_rules and product is not None and anchor is not None:
                if offer.placement is Placement.CHECKOUT:
                    cap = rules.checkout_max_share * max(before.cart_value, anchor.price)
                    assert product.price <= cap + 1e-9
                else:
                    # the store's learned proportion where it has the evidence, else the configured share
                    share = engine.proportions.cross_sell_bound(anchor.category, product.category,
                                                                rules.cross_sell_max_share).value
                    if segment(after, rules.profile_settings()) == "first_time":
                        share = min(share, engine.proportions.first_time_bound(rules.first_time_max_share).value)
                    assert product.price <= share * anchor.price + 1e-9
