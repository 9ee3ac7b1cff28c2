"""The acceptance model's per-decision scorer gives predict's numbers, to the last bit."""
import random

import pytest

from nextoffer.models.acceptance import AcceptanceModel, item_record, shopper_features
from nextoffer.models.events import Product
from nextoffer.models.profile import ProfileView

SOURCES = ("bought_together", "history", "content", "ladder")
CATEGORIES = ("home.mugs", "home.tea", "garden.tools", None)


def _profile(rng: random.Random):
    if rng.random() < 0.15:
        return None
    affinities = {f"c:{c}": rng.random() * 3 for c in CATEGORIES[:3] if rng.random() < 0.7}
    affinities.update({f"b:{b}": rng.random() for b in ("Acme", "Zen") if rng.random() < 0.5})
    return ProfileView(rng.choice(("new", "repeat", "vip")), rng.choice(("browsing", "engaged")),
                       rng.choice(("buying", "looking")), rng.choice((None, rng.gauss(0, 0.5))),
                       rng.random(), affinities)


def _case(rng: random.Random):
    product = None if rng.random() < 0.1 else Product(
        "p", rng.choice((0.5, 3.0, 12.0, 99.0)), category=rng.choice(CATEGORIES), brand=rng.choice(("Acme", "Zen", None)))
    return dict(source=rng.choice(SOURCES), score=rng.choice((rng.random() * 3, 0.0, 1e-7)),
                price=rng.choice((None, 0.0, rng.random() * 50)), anchor_price=rng.choice((None, 0.0, rng.random() * 80)),
                product=product, position=rng.choice((None, rng.gauss(0, 1))))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_decision_scorer_gives_exactly_what_predict_gives(seed):
    rng = random.Random(seed)
    model = AcceptanceModel()
    for _ in range(400):      # a model with weights for every feature, some of them strong
        c, profile = _case(rng), _profile(rng)
        record = item_record("p", rng.choice(("cross_sell", "upsell")), rng.choice(("cart", "product")), c["source"],
                             c["score"], c["price"], c["anchor_price"], 0)
        model.learn(record, rng.random() < 0.3, shopper_features(profile, c["product"], c["position"]))
    checked = 0
    for _ in range(40):
        kind, placement, profile = rng.choice(("cross_sell", "upsell")), rng.choice(("cart", "product", "home")), _profile(rng)
        score = model.scorer(kind, placement, profile)
        for _ in range(50):
            c = _case(rng)
            record = item_record("p", kind, placement, c["source"], c["score"], c["price"], c["anchor_price"], 0)
            expected = model.predict(record, shopper_features(profile, c["product"], c["position"]))
            assert score(**c) == expected, (c, profile)
            checked += 1
    assert checked == 2000


def test_an_untrained_scorer_says_what_an_untrained_model_says():
    model = AcceptanceModel()
    assert model.scorer("cross_sell", "cart", None)("history", 0.3, 2.0, 4.0, None, None) == 0.5
