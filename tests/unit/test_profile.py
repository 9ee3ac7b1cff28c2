"""The shopper profile: affinities with decay, price level and sensitivity, segment, lifecycle, intent."""
import pytest

from nextoffer.models.catalog import Catalog
from nextoffer.models.engine import OfferEngine
from nextoffer.models.events import LineItem, Product, ShopperEvent
from nextoffer.models.profile import DAY, MAX_AFFINITIES, ProfileSettings, view
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState

SETTINGS = ProfileSettings()


def catalog():
    c = Catalog()
    for n, price in enumerate((10.0, 20.0, 40.0, 80.0)):
        c.upsert(Product(f"mug{n}", price, category="home.mugs", brand="Acme" if n % 2 else "Bolt"))
        c.upsert(Product(f"tea{n}", price / 4, category="home.tea", brand="Leaf"))
    return c


def run(events, engine=None):
    engine = engine or OfferEngine(OfferRules(), catalog=catalog())
    shopper = ShopperState("u1")
    for n, (source, kind, ts, fields) in enumerate(events):
        engine.process(shopper, ShopperEvent(source, kind, f"e{n}", "u1", ts, **fields), ts)
    return shopper


def test_affinity_follows_what_the_shopper_does_and_fades():
    s = run([("clickstream", "view", 0.0, {"product_id": "mug1"}),
             ("cart", "add", 10.0, {"product_id": "tea0"})])
    now = view(s, 10.0, SETTINGS)
    assert now.category_affinity("home.tea") == pytest.approx(0.75)   # an add weighs 3, a view 1
    assert now.parent_affinity("home.plates") == 1.0
    assert now.brand_affinity("Leaf") == pytest.approx(0.75)
    later = run([("clickstream", "view", 0.0, {"product_id": "mug1"}),
                 ("clickstream", "view", 60 * DAY, {"product_id": "tea0"})])
    faded = view(later, 60 * DAY, SETTINGS)
    assert faded.category_affinity("home.tea") > 0.75         # two half-lives fade the old interest


def test_affinities_stay_bounded():
    c = Catalog()
    for n in range(40):
        c.upsert(Product(f"p{n}", 5.0, category=f"cat{n}", brand=f"brand{n}"))
    engine = OfferEngine(OfferRules(), catalog=c)
    s = run([("clickstream", "view", float(n), {"product_id": f"p{n}"}) for n in range(40)], engine)
    assert len(s.affinity) == MAX_AFFINITIES
    assert "c:cat39" in s.affinity and "c:cat0" not in s.affinity


def test_price_level_and_sensitivity():
    pricey = run([("clickstream", "view", float(n), {"product_id": "mug3"}) for n in range(5)])
    cheap = run([("cart", "purchase", 0.0, {"items": (LineItem("mug0", 1, 10.0),)})])
    assert view(pricey, 5.0, SETTINGS).price_level > 0.5 > view(cheap, 0.0, SETTINGS).price_level
    assert view(cheap, 0.0, SETTINGS).price_sensitivity > 0.5        # bought below the median


def test_segments_lifecycle_and_intent():
    s = run([("clickstream", "view", 0.0, {"product_id": "mug0", "session_id": "a"}),
             ("clickstream", "view", 5.0, {"product_id": "mug1", "session_id": "a"})])
    now = view(s, 5.0, SETTINGS)
    assert (now.segment, now.stage, now.intent) == ("first_time", "new", "comparing")
    orders = [("cart", "purchase", n * DAY, {"items": (LineItem("mug3", 1, 400.0),), "session_id": f"s{n}"})
              for n in range(3)]
    buyer = run(orders + [("cart", "add", 100 * DAY, {"product_id": "tea1", "session_id": "back"})])
    now = view(buyer, 100 * DAY, SETTINGS)
    assert (now.segment, now.stage, now.intent) == ("high_value", "at_risk", "buying")
    regular = run(orders[:2] + [("clickstream", "view", 40 * DAY, {"product_id": "tea1", "session_id": "z"})])
    assert (view(regular, 40 * DAY, SETTINGS).segment, regular.stage) == ("repeat", "engaged")


def test_the_profile_survives_the_state_table_round_trip():
    s = run([("clickstream", "view", 0.0, {"product_id": "mug1", "session_id": "a"}),
             ("cart", "add", 1.0, {"product_id": "tea0", "session_id": "a"})])
    assert s.affinity and s.price and s.stage and s.session_stats
    assert ShopperState.from_dict(s.to_dict()) == s
    assert "y" not in ShopperState("u2").to_dict()      # nothing stored for a shopper without a profile
