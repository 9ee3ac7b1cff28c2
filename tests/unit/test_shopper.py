from nextoffer.models.events import LineItem, ShopperEvent
from nextoffer.models.acceptance import OfferedItem
from nextoffer.models.shopper import MAX_SEEN_EVENTS, ShopperState


def item(pid: str) -> OfferedItem:
    return OfferedItem(pid, "cross_sell", "cart", "bought_together", 0.5, 0.1, 0)


def ev(kind, eid, source="cart", ts=1.0, **kw):
    return ShopperEvent(source, kind, eid, "u1", ts, **kw)


def test_cart_add_remove_and_whole_cart_purchase():
    s = ShopperState("u1")
    s.apply(ev("add", "1", product_id="a", price=2.0, quantity=2))
    s.apply(ev("add", "2", product_id="b", price=5.0))
    s.apply(ev("remove", "3", product_id="a"))
    assert s.cart == {"a": [1, 2.0], "b": [1, 5.0]}
    assert s.cart_value == 7.0
    s.apply(ev("purchase", "4", ts=9.0))
    assert s.cart == {} and set(s.purchases) == {"a", "b"}
    assert s.orders == 1 and s.spend == 7.0


def test_purchase_with_items_keeps_the_rest_of_the_cart():
    s = ShopperState("u1")
    s.apply(ev("add", "1", product_id="a", price=2.0))
    s.apply(ev("add", "2", product_id="b", price=5.0))
    s.apply(ev("purchase", "3", items=(LineItem("b", 2, 5.0),)))
    assert list(s.cart) == ["a"] and s.spend == 10.0


def test_duplicate_events_are_applied_once():
    s = ShopperState("u1")
    assert s.apply(ev("add", "1", product_id="a"))
    assert not s.apply(ev("add", "1", product_id="a"))
    assert s.cart["a"][0] == 1


def test_dedup_memory_is_bounded():
    s = ShopperState("u1")
    for n in range(MAX_SEEN_EVENTS * 3):
        s.apply(ev("view", str(n), source="clickstream", product_id="p"))
    assert len(s.seen) == MAX_SEEN_EVENTS


def test_decline_by_offer_id_marks_every_offered_item():
    s = ShopperState("u1")
    s.record_offer("o1", [item("x"), item("y")], now=1.0, window=100)
    s.apply(ev("decline", "f1", source="offer-feedback", offer_id="o1", ts=2.0))
    assert s.declined == {"x": 2.0, "y": 2.0}


def test_frequency_window_restarts():
    s = ShopperState("u1")
    for t in (0.0, 1.0, 2.0):
        s.record_offer(f"o{t}", [item("x")], now=t, window=10)
    assert s.times_shown("x", now=5, window=10) == 3
    assert s.times_shown("x", now=50, window=10) == 0


def test_round_trip_through_a_dict():
    s = ShopperState("u1")
    s.apply(ev("add", "1", product_id="a", price=2.0, session_id="s"))
    assert ShopperState.from_dict(s.to_dict()) == s


def test_outcomes_settle_offered_items_once():
    s = ShopperState("u1")
    s.record_offer("o1", [item("x"), item("y")], now=1.0, window=100)
    assert s.take_outcomes(ev("add", "a1", product_id="x"), {"x"}) == [(item("x"), True)]
    assert s.take_outcomes(ev("add", "a2", product_id="x"), {"x"}) == []
    declined = s.take_outcomes(ev("decline", "f1", source="offer-feedback", offer_id="o1"), set())
    assert declined == [(item("y"), False)]


def test_offers_that_lapse_are_returned_for_learning():
    s = ShopperState("u1")
    lapsed = []
    for n in range(12):
        lapsed += s.record_offer(f"o{n}", [item(f"p{n}")], now=float(n), window=100)
    assert lapsed == [item(f"p{n}") for n in range(4)]


def test_a_state_of_the_previous_format_still_loads():
    old = {"u": "u1", "c": {"a": [1, 2.0]}, "v": [], "p": {}, "d": {}, "s": {},
           "o": {"o1": [["x", "cross_sell", "cart", "bought_together", 0.5, 0.1, 0]]},
           "e": ["1"], "n": 0, "m": 0.0, "f": 1.0, "l": 1.0, "i": "s", "y": {"c:mugs": [1.0, 1.0]}}
    state = ShopperState.from_dict(old)
    assert state.offers == {"o1": [item("x")]} and state.affinity == {"c:mugs": [1.0, 1.0]}
    assert state.to_dict()["V"] == 2 and ShopperState.from_dict(state.to_dict()) == state


def test_a_state_of_a_newer_format_is_refused_with_the_reason():
    import pytest
    newer = {**ShopperState("u1").to_dict(), "V": 99}
    with pytest.raises(ValueError, match="newer than this nextoffer"):
        ShopperState.from_dict(newer)
