"""Repeat purchases: orders per product and the smoothed repeat rate, in arrays over a product
index that other learners share."""
import random

from nextoffer.models.product_index import ProductIndex
from nextoffer.models.repeats import RepeatPurchases
from nextoffer.models.showcases import Counts


def test_orders_and_rates_are_those_of_plain_counting_over_a_shared_index():
    rng = random.Random(3)
    products = ProductIndex()
    repeats, others = RepeatPurchases(products=products), Counts(products=products)
    ids = [f"p{n}" for n in range(400)]
    plain: dict[str, list[int]] = {}
    for n in range(3000):
        order = rng.sample(ids, rng.randint(1, 15))
        order += order[:2]                                  # a product twice: counted once
        again = rng.sample(order, min(len(order), rng.randint(0, 3)))
        repeats.observe(order, again)
        for pid in dict.fromkeys(order):
            entry = plain.setdefault(pid, [0, 0])
            entry[0] += 1
            entry[1] += pid in again
        others.add(f"viewed-{n}", 1.0, ts=float(n))         # the shared index grows past the repeats'
    for pid in ids + ["viewed-7", "never"]:
        orders, again = plain.get(pid, (0, 0))
        assert repeats.orders(pid) == orders and type(repeats.orders(pid)) is int
        assert repeats.rate(pid) == (again + 0.1 * 10.0) / (orders + 10.0)
    counts = repeats.order_counts()
    assert len(counts) >= len(products) and counts[products.index["viewed-7"]] == 0.0
