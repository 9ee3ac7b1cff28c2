"""The compiled kernels give exactly what their Python versions give: the same candidates, in
the same order, with the same floats (offers must not depend on whether the install had a C
compiler)."""
import random

import pytest

from nextoffer.models import bought_together
from nextoffer.models.bought_together import BoughtTogether, Complement, SharedRow, scan_complements

kernel = bought_together.complements_scan


def test_the_install_built_the_kernel():
    assert kernel is not None, ("models/_kernels.c was not built: reinstall with a C compiler "
                                "(deploy/bootstrap.sh, or pip install -e .) to get it")


def _store(rng: random.Random, products: int, rows: int, shared: bool):
    """Items and pair rows like a learned instance's: dict rows, and shared and kernel (PairRow)
    rows if asked; a
    few counts repeat exactly, so that scores tie and the order of ties is compared too."""
    ids = [f"p{n}" for n in range(products)]
    items = {pid: float(rng.choice([1, 2, 3, 5, 8])) * rng.choice([1.0, 1.7, 2.25]) for pid in ids}
    pairs = {}
    for anchor in rng.sample(ids, min(rows, products)):
        row = {pid: float(rng.choice([1, 2, 2, 3, 4])) for pid in rng.sample(ids, rng.randint(0, min(40, products)))
               if pid != anchor}
        kind = rng.random() if shared else 1.0
        pairs[anchor] = SharedRow(row) if kind < 0.33 else bought_together.PairRow(row) if kind < 0.66 else row
    return ids, items, pairs


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("seed", range(40))
def test_the_kernel_scans_as_the_python_version_does(seed):
    rng = random.Random(seed)
    ids, items, pairs = _store(rng, rng.choice([20, 60, 300]), rng.choice([5, 20, 60]), shared=seed % 2 == 0)
    anchors = [(pid, rng.choice([1.0, 0.5, 0.35])) for pid in rng.sample(ids, rng.randint(1, 9))]
    args = (anchors, items, pairs, sum(items.values()) / 3, rng.choice([0.0, 0.2, 1.0]),
            rng.choice([0.0, 1.0, 2.0]), rng.choice([0.5, 1.0]), rng.choice([0, 1, 3, 60]))
    expected = scan_complements(*args)
    assert kernel(*args) == expected
    assert [type(v) for v in kernel(*args)[0]] == [type(v) for v in expected[0]] if expected else True


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
def test_the_kernel_fails_as_the_python_version_does():
    items, pairs = {"tea": 2.0}, {"tea": {"mug": 2.0}}      # "mug" has no count of its own
    for scan in (scan_complements, kernel):
        with pytest.raises(KeyError):
            scan([("tea", 1.0)], items, pairs, 2.0, 0.2, 0.0, 1.0, 0)
    with pytest.raises(TypeError, match="product id, weight"):
        kernel(["tea"], items, pairs, 2.0, 0.2, 0.0, 1.0, 0)


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
def test_learned_complements_are_the_same_either_way():
    rng = random.Random(7)
    catalog = [f"p{n}" for n in range(400)]
    learned = BoughtTogether(max_neighbours=30)
    for n in range(3000):
        # themes of 40 products bought together, with a tail from anywhere
        theme = rng.randrange(10) * 40
        basket = [catalog[theme + int(rng.paretovariate(1.2)) % 40] for _ in range(rng.randint(2, 12))]
        basket += rng.sample(catalog, rng.randint(0, 2))
        learned.observe_basket(basket, ts=n * 600.0)
    for _ in range(200):
        anchors = [(pid, 1.0 if i == 0 else 0.35) for i, pid in enumerate(rng.sample(catalog, rng.randint(1, 9)))]
        limit = rng.choice([None, 60])
        learned.compiled = True
        fast = learned.complements(anchors, now=3000 * 600.0, limit=limit)
        learned.compiled = False
        slow = learned.complements(anchors, now=3000 * 600.0, limit=limit)
        assert fast == slow
        assert [tuple(map(type, c)) for c in fast] == [tuple(map(type, c)) for c in slow]
        assert all(type(c) is Complement for c in fast)


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("owned", [None, 2])
def test_pairs_are_counted_the_same_either_way(owned):
    """Every row, pair and float the same after thousands of orders, with rows pruned, and (with
    partitioned learning) adopted rows taken over and counted on."""
    rng = random.Random(11)
    catalog = [f"p{n}" for n in range(300)]
    fast, slow = BoughtTogether(max_neighbours=20), BoughtTogether(max_neighbours=20)
    slow.compiled = False
    for bt in (fast, slow):
        if owned is not None:
            bt.owns = lambda pid: int(pid[1:]) % 3 != owned
            bt.adopt("p2", {"p5": 3.0, "p7": 1.0}, 0.0)     # another worker's row, taken over below
    for n in range(2000):
        basket = rng.sample(catalog[:60], rng.randint(1, 8)) + rng.sample(catalog, rng.randint(0, 3))
        if n == 1000 and owned is not None:
            for bt in (fast, slow):
                bt.owns = lambda pid: True
        for bt in (fast, slow):
            bt.observe_basket(basket + basket[:1], ts=n * 900.0)
    assert fast._pairs.keys() == slow._pairs.keys()
    for anchor, row in slow._pairs.items():
        assert list(fast.row(anchor).items()) == list(row.items()), anchor
    assert (fast.updates, fast.touched, fast._items) == (slow.updates, slow.touched, slow._items)
    assert all(type(row) is bought_together.PairRow for row in fast._pairs.values())


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("seed", range(10))
def test_a_pair_row_reads_as_the_dict_it_replaces(seed):
    """PairRow against the dict it stands for: made from pairs (a later pair of the same product
    replaces the earlier, as dict() does) or a dict, cut as a stable sort cuts; the same pairs,
    floats and order, lookups of present and absent products, keys interned (one string per
    product), in under half a dict's memory."""
    from operator import itemgetter
    PairRow = bought_together.PairRow
    rng = random.Random(seed)
    pairs = [("".join(["p", str(rng.randrange(600))]), float(rng.choice([1, 2, 0.5, 3.25])))
             for _ in range(rng.randint(0, 1500))]       # a new string object for each pair
    plain, row = dict(pairs), PairRow(pairs)
    assert row.items() == list(plain.items()) == PairRow(plain).items() and len(row) == len(plain)
    assert all(row.get(pid) == v for pid, v in plain.items())
    assert row.get("absent") is None and row.get("absent", 0.0) == 0.0
    assert all(pid is bought_together.sys.intern(pid) for pid, _ in row.items())
    if plain:
        assert row.__sizeof__() < 0.5 * (plain.__sizeof__() + 24 * len(plain))
    for keep in (700, 300, 40, 1, 0):
        row.cut(keep)
        plain = dict(sorted(plain.items(), key=itemgetter(1), reverse=True)[:keep])
        assert row.items() == list(plain.items())
        assert all(row.get(pid) == v for pid, v in plain.items())




@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
def test_rounding_gives_pythons_floats_to_the_bit():
    """round_to(x, n) is round(x, n): random values, exact decimal halves (ties go to even) and
    their neighbours one ulp away, signed zeros, non-finite values and ints."""
    import math
    import struct

    from nextoffer.models._kernels import round_to
    rng = random.Random(5)
    values = [rng.choice([rng.random(), rng.random() * 100, rng.expovariate(1.0), -rng.random(),
                          rng.random() * 1e-5, rng.uniform(0, 1e6)]) for _ in range(100_000)]
    for k in range(0, 20_000, 7):
        for digits in (4, 6):
            half = k / 10 ** digits + 0.5 / 10 ** digits
            values += [half, math.nextafter(half, 0.0), math.nextafter(half, 1.0), -half]
    values += [0.0, -0.0, 5e-324, 1e300, 2.675, 0.125, 0.5, 1.5, 2.5, 1e16 + 0.5]
    for x in values:
        for digits in (0, 2, 4, 6, 15):
            assert struct.pack("d", round_to(x, digits)) == struct.pack("d", round(x, digits)), (x, digits)
    for x in (math.inf, -math.inf):
        assert round_to(x, 6) == x
    assert math.isnan(round_to(math.nan, 6))
    assert round_to(0, 6) == 0 and type(round_to(1, 6)) is int      # a sigmoid's exact 0 or 1


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("seed", range(10))
def test_the_learned_orders_rows_are_pythons_to_the_bit(seed):
    """ranking_rows makes PairwiseRanker.features' rows (less the recent-sales column, which
    numpy fills either way): repeat buys, products never ordered, prices None or 0, the anchor
    bought at the same time as a candidate, integer counts and times."""
    import numpy as np

    from nextoffer.models._kernels import ranking_rows
    from nextoffer.models.candidates import Candidate
    from nextoffer.models.reranker import AGE_SPAN, PairwiseRanker
    from nextoffer.models.repeats import RepeatPurchases
    from nextoffer.models.showcases import Counts
    rng = random.Random(seed)
    ids = [f"p{n}" for n in range(60)]
    repeats = RepeatPurchases()
    for _ in range(200):
        repeats.observe(rng.sample(ids, 5), rng.sample(ids, 2))
    anchor_ts = rng.choice([None, 1_700_000_000.0])
    purchases = {pid: [rng.randint(1, 9), rng.choice([1_700_000_000.0, 1_690_000_000.5, 1_700_000_100])]
                 for pid in rng.sample(ids, 20)}
    candidates = [Candidate(pid, rng.random(), "", rng.choice([None, 0.0, 0, rng.uniform(0.1, 500.0), 7]),
                            bought=rng.choice([0.0, rng.random(), 2]), history=rng.choice([0.0, rng.random()]))
                  for pid in rng.sample(ids, rng.randint(0, 40))]
    now = 1_700_000_050.0 + rng.random()
    orders = rng.randint(0, 12)
    expected = PairwiseRanker.features(candidates, purchases, orders, repeats.orders, anchor_ts, now)
    counted = (repeats.index, repeats.order_counts())
    rows = np.frombuffer(ranking_rows(candidates, purchases, orders, *counted, anchor_ts, now, AGE_SPAN),
                         dtype=float).reshape(len(candidates), expected.shape[1])
    assert rows.shape == expected.shape
    assert rows.tobytes() == expected.tobytes()
    # with recent sales: the raw counts as Counts.values_of reads them (the caller takes the log)
    # (half the runs with one product index for both, as an engine has: more products indexed
    # than the repeats counted, whose arrays grow to them)
    sales = Counts(7 * 86_400.0, repeats.products if seed % 2 else None)
    for n in range(300):
        sales.add_each(rng.sample(ids[:45] + [f"new{n % 30}"], 3), 1.0, ts=1_699_000_000.0 + n * 3000.0)
    counted = (repeats.index, repeats.order_counts())
    recent = sales.values_of([c.product_id for c in candidates], now)
    with_sales = np.frombuffer(ranking_rows(candidates, purchases, orders, *counted, anchor_ts, now, AGE_SPAN,
                                            sales.index, sales.values, sales.scale(now)),
                               dtype=float).reshape(len(candidates), expected.shape[1])
    assert with_sales[:, 11].tobytes() == recent.tobytes()
    expected = PairwiseRanker.features(candidates, purchases, orders, repeats.orders, anchor_ts, now, recent)
    logged = with_sales.copy()
    logged[:, 11] = np.log1p(np.ascontiguousarray(with_sales[:, 11])) / 5
    assert logged.tobytes() == expected.tobytes()


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
def test_cross_sell_candidates_are_the_same_either_way():
    """cross_sell_rows makes what candidates.cross_sells' Python loop makes: the same candidates
    with the same reasons, the anchors' other tiers left out, products the catalog lacks too."""
    from nextoffer.models.candidates import cross_sells
    from nextoffer.models.catalog import Catalog
    from nextoffer.models.events import Product
    from nextoffer.models.rules import OfferRules
    rng = random.Random(3)
    ids = [f"p{n}" for n in range(200)]
    catalog = Catalog()
    for n, pid in enumerate(ids[:150]):       # the last 50 only seen in orders
        catalog.upsert(Product(pid, round(rng.uniform(1, 90), 2), name=f"Item {n}" if n % 3 else None,
                               family=f"f{n % 7}" if n % 4 == 0 else None, tier=n))
    learned = BoughtTogether(max_neighbours=40)
    for n in range(2500):
        learned.observe_basket(rng.sample(ids[:60], rng.randint(2, 9)) + rng.sample(ids, 2), ts=n * 600.0)
    for _ in range(150):
        anchors = [(pid, 1.0 if i == 0 else 0.5) for i, pid in enumerate(rng.sample(ids, rng.randint(1, 9)))]
        rules, limit = OfferRules(min_support=rng.choice([1.0, 2.0])), rng.choice([10, 60])
        learned.compiled = True
        fast = cross_sells(anchors, catalog, learned, rules, 2500 * 600.0, limit)
        learned.compiled = False
        slow = cross_sells(anchors, catalog, learned, rules, 2500 * 600.0, limit)
        assert fast == slow
        assert [(c.reason, type(c)) for c in fast] == [(c.reason, type(c)) for c in slow]


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
def test_rescaled_rows_stay_kernel_rows_with_the_python_versions_counts():
    """A rescale (counts brought back near 1 after hundreds of half-lives) keeps PairRows as
    PairRows, with the same floats as the Python version's dicts, in the same order."""
    fast, slow = BoughtTogether(half_life=1.0), BoughtTogether(half_life=1.0)
    slow.compiled = False
    for bt in (fast, slow):
        for n, basket in enumerate((["a", "b", "c"], ["a", "c"], ["b", "c", "d"], ["a", "b"])):
            bt.observe_basket(basket, ts=n * 300.0)        # 2 ** 600 passes the rescale threshold
    assert all(type(row) is bought_together.PairRow for row in fast._pairs.values())
    assert {a: list(fast.row(a).items()) for a in fast._pairs} == {a: list(slow.row(a).items()) for a in slow._pairs}


def _store_with_shoppers(rules, seed: int):
    """An engine that has learned a small store's orders (categories, brands, margins, stock,
    inactive products, products only seen in orders) and outcomes of its offers, and shoppers
    with carts, purchases, declines and impressions."""
    from nextoffer.models.acceptance import item_record, shopper_features
    from nextoffer.models.engine import OfferEngine
    from nextoffer.models.events import CART, CLICKSTREAM, LineItem, Product, ShopperEvent
    from nextoffer.models.shopper import ShopperState
    rng = random.Random(seed)
    engine = OfferEngine(rules)
    ids = [f"p{n}" for n in range(160)]
    for n, pid in enumerate(ids[:140]):                         # the last 20 only seen in orders
        engine.update_product(Product(
            pid, rng.choice([round(rng.uniform(1, 300), 2), float(rng.randint(1, 90)), 12.5]),
            category=rng.choice([f"c{n % 9}", f"c{n % 9}", None]), brand=rng.choice(["Acme", "Zed", None]),
            margin=rng.choice([None, 0.3, 0, 0.55]), stock=rng.choice([None, None, 0, 4]),
            family=f"f{n % 11}" if n % 5 == 0 else None, tier=n, active=rng.random() > 0.05))
    shoppers = {f"u{n}": ShopperState(f"u{n}") for n in range(12)}
    ts = 1_700_000_000.0
    for n in range(500):
        user = rng.choice(list(shoppers))
        lines = rng.sample(ids[:70], rng.randint(2, 8)) + rng.sample(ids, 1)
        for k, pid in enumerate(lines):
            event = ShopperEvent(CLICKSTREAM if k % 3 == 0 else CART, "view" if k % 3 == 0 else "add",
                                 f"e{n}-{k}", user, ts, product_id=pid, price=rng.choice([None, 9.5]))
            engine.process(shoppers[user], event, generated_at=ts)
        out = engine.process(shoppers[user], ShopperEvent(CART, "purchase", f"e{n}-p", user, ts, items=tuple(
            LineItem(pid, rng.randint(1, 3), rng.choice([4.0, 19.99, 120.0])) for pid in lines)), generated_at=ts)
        if out.basket is not None:
            engine.learn_basket(out.basket)
        ts += rng.choice([60.0, 3600.0, 86_400.0])
    for _ in range(300):                                        # outcomes: a learned acceptance model
        pid = rng.choice(ids)
        engine.acceptance.learn(item_record(pid, "cross_sell", rng.choice(["cart", "checkout"]),
                                            rng.choice(["bought_together", "history", "content"]),
                                            rng.random(), rng.uniform(1, 50), rng.uniform(1, 500), 0),
                                rng.random() < 0.3, shopper_features(None, engine.catalog.get(pid), None))
    for shopper in shoppers.values():
        for pid in rng.sample(ids, 6):
            shopper.declined[pid] = ts - rng.choice([3600.0, 30 * 86_400.0])
        for pid in rng.sample(ids, 6):
            shopper.shown[pid] = [rng.randint(1, 5), ts - rng.choice([60.0, 3 * 86_400.0])]
    return engine, shoppers, ts, ids


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("variant", ["default", "expected_value", "free_shipping", "no_price_rules", "uniform"])
def test_eligible_candidates_and_their_values_are_pythons_to_the_bit(variant):
    """eligible_candidates and candidate_values make what OfferPolicy's Python loop and value
    function make: the same eligible candidates in the same order, the same values and
    P(accept) (an exact 0 or 1 of the sigmoid an int, as in Python), for every placement and
    kind, with and without a profile, for shoppers with carts, past orders, declines and caps."""
    from dataclasses import replace

    from nextoffer.models.events import CART, LineItem, ShopperEvent
    from nextoffer.models.offer import Kind, Placement
    from nextoffer.models.policy import Situation
    from nextoffer.models.rules import OfferRules
    rules = {"default": OfferRules(), "expected_value": OfferRules(ranking="expected_value", segment_tilt=0.3),
             "free_shipping": OfferRules(free_shipping_threshold=150.0, free_shipping_window=0.9),
             "no_price_rules": OfferRules(price_rules=False, acceptance_weight=1.0),
             "uniform": OfferRules(exploration_policy="uniform")}[variant]
    engine, shoppers, now, ids = _store_with_shoppers(rules, seed=len(variant))
    policy = engine.policy
    rng = random.Random(5)
    compared = 0
    for n in range(120):
        shopper = shoppers[rng.choice(list(shoppers))]
        placement = rng.choice(list(Placement))
        order = tuple(LineItem(pid, 1, 10.0) for pid in rng.sample(ids, 3)) if placement is Placement.POST_PURCHASE else ()
        event = ShopperEvent(CART, "add", f"x{n}", shopper.user_id, now, product_id=rng.choice(ids))
        s = policy._prepared(Situation(event, shopper, order, now, now))
        if n % 5 == 0:
            s = replace(s, profile=None)          # a scorer without the shopper's terms
        anchor_id, context = policy._anchor(placement, s)
        if anchor_id is None:
            continue
        anchor = engine.catalog.get(anchor_id)
        for kind in (Kind.CROSS_SELL, Kind.UPSELL):
            made = []
            for compiled in (True, False):
                engine.bought.compiled = compiled
                accept = policy._acceptance(kind, placement, anchor, s)
                value = policy._value_function(kind, placement, anchor, s, accept)
                ranked = policy._ranked(kind, placement, anchor_id, context, s, accept=accept, value=value)
                made.append([(c, repr(value(c)), repr(accept(c)), type(accept(c))) for c in ranked])
            engine.bought.compiled = True
            assert made[0] == made[1]
            compared += len(made[0])
    assert compared > 500


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
def test_candidate_values_leave_what_they_cannot_reproduce_to_python():
    """A negative base of a power (a negative margin large enough) gives None: Python values it."""
    from nextoffer.models._kernels import candidate_values
    from nextoffer.models.candidates import Candidate
    from nextoffer.models.events import Product
    products = {"a": Product("a", 10.0, margin=-50.0)}
    worth = (False, False, 0.05, 0.5, 0.5, 0.0, None, 1.5)
    assert candidate_values([Candidate("a", 0.5, "")], products, lambda c: None, {}, worth, None, None, None,
                            None) == [0.5 * (1.0 + 0.05 * -50.0)]
    learned = (True,) + worth[1:]
    from nextoffer.models.acceptance import AcceptanceModel
    scorer = AcceptanceModel().scorer("cross_sell", "cart", None)
    assert candidate_values([Candidate("a", 0.5, "")], products, lambda c: None, {}, learned, {}, scorer,
                            scorer.terms(), 20.0) is None


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("seed", range(12))
def test_repeat_buys_are_blended_as_pythons(seed):
    """repeat_blend makes what blend(complements, repeat_buys(...)) makes: the same candidates
    (complements a repeat buy adds to, repeat buys alone, the reasons of whichever part is
    larger) in the same order with the same floats, ties kept in the dict's order."""
    from nextoffer.models.candidates import Candidate, with_repeat_buys
    from nextoffer.models.catalog import Catalog
    from nextoffer.models.events import Product
    from nextoffer.models.repeats import RepeatPurchases
    from nextoffer.models.shopper import ShopperState
    rng = random.Random(seed)
    ids = [f"p{n}" for n in range(80)]
    catalog = Catalog()
    for pid in ids[:60]:
        catalog.upsert(Product(pid, rng.choice([3.5, 12.0, 40])))
    repeats = RepeatPurchases()
    for _ in range(rng.choice([0, 50, 400])):
        repeats.observe(rng.sample(ids[:50], 6), rng.sample(ids[:50], rng.randint(0, 3)))
    at = [1_700_000_000.0, 1_700_050_000.0, 1_700_086_400, 1_699_000_000.5]
    purchases = {pid: [rng.randint(1, 12), rng.choice(at)] for pid in rng.sample(ids, rng.randint(1, 40))}
    shopper = ShopperState("u1", orders=rng.randint(0, 15), purchases=purchases)
    scores = [0.5, 0.25, 0.125, rng.random()]                    # some exact ties
    complements = [Candidate(pid, rng.choice(scores), ("with {}", pid), rng.choice([None, 9.0]), bought=0.3)
                   for pid in rng.sample(ids, rng.randint(0, 50))]
    anchor = rng.choice(ids + list(purchases))
    args = (complements, shopper, repeats, catalog, anchor, rng.choice([86_400.0, 60 * 86_400.0]),
            rng.choice([0.5, 2.0]))
    fast, slow = with_repeat_buys(*args, compiled=True), with_repeat_buys(*args, compiled=False)
    assert [(c, repr(c.score), repr(c.history), type(c)) for c in fast] == \
        [(c, repr(c.score), repr(c.history), type(c)) for c in slow]
    assert [c.reason for c in fast] == [c.reason for c in slow]


def _category_store(seed: int):
    """A long-tail catalog of a few categories and brands, names on some products, prices that
    repeat (so that scores tie), sales learned from random orders, and category pairs."""
    from nextoffer.models.catalog import Catalog
    from nextoffer.models.events import Product
    rng = random.Random(seed)
    catalog, bought, categories = Catalog(), BoughtTogether(max_neighbours=40), BoughtTogether()
    ids = [f"p{n}" for n in range(400)]
    for n, pid in enumerate(ids):
        catalog.upsert(Product(pid, float(rng.choice([5, 9.99, 12, 12, 20, 35, 60])) * rng.choice([1.0, 1.5]),
                               name=f"Item {n}" if n % 3 else None, category=f"c{n % 6}",
                               brand=rng.choice(["Acme", "Nova", None])))
    for n in range(600):
        basket = rng.sample(ids[:120], rng.randint(1, 6)) + rng.sample(ids, 1)
        bought.observe_basket(basket, ts=n * 900.0)
        categories.observe_basket([catalog.get(pid).category for pid in basket], ts=n * 900.0)
    return rng, catalog, bought, categories, ids


def _same_either_way(make, bought: BoughtTogether, args: tuple) -> int:
    """Asserts that ``make(*args)`` gives the same candidates (reasons and float types too) with
    the kernels and without; returns how many it compared."""
    bought.compiled = True
    fast = make(*args)
    bought.compiled = False
    slow = make(*args)
    bought.compiled = True
    assert fast == slow
    assert [(c.reason, type(c), type(c.score)) for c in fast] == [(c.reason, type(c), type(c.score)) for c in slow]
    return len(fast)


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("seed", range(6))
def test_category_upsells_are_pythons_to_the_bit(seed):
    """category_upsells makes what the category branch of candidates.upsells makes: the same
    candidates, scores (sales, brand, the shopper's reach), reasons and order of ties."""
    from nextoffer.models.candidates import upsells
    from nextoffer.models.profile import ProfileView
    from nextoffer.models.rules import OfferRules
    rng, catalog, bought, _, ids = _category_store(seed)
    profiles = [None, ProfileView("repeat", "engaged", "buying", None, 0.5, {}),
                ProfileView("repeat", "engaged", "buying", -0.4, 0.9, {}),
                ProfileView("repeat", "engaged", "buying", 0.8, 0.1, {})]
    compared = 0
    for _ in range(120):
        anchor = catalog.get(rng.choice(ids))
        rules = OfferRules(price_rules=rng.random() < 0.8)
        args = (anchor, catalog, bought, rules, 600 * 900.0, None, rng.choice(profiles),
                rng.choice([None, (0.0, 3.0), (0.1, 0.5)]))
        compared += _same_either_way(upsells, bought, args)
    assert compared > 1000


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
@pytest.mark.parametrize("seed", range(6))
def test_content_candidates_are_pythons_to_the_bit(seed):
    """content_rows makes what candidates.content_fallback's Python makes: the related
    categories' products scored, the anchor's brand first, the best ``limit`` in the stable
    order of their scores, with the same reasons."""
    from nextoffer.models.candidates import CONTENT_SCAN, content_fallback
    from nextoffer.models.rules import OfferRules
    rng, catalog, bought, categories, ids = _category_store(seed)
    compared = 0
    for _ in range(80):
        anchor = catalog.get(rng.choice(ids))
        args = (anchor, catalog, bought, categories, OfferRules(min_support=rng.choice([1.0, 2.0])),
                600 * 900.0, rng.choice([0, 1, 7, 60, 3 * CONTENT_SCAN]))
        compared += _same_either_way(content_fallback, bought, args)
    assert compared > 500


@pytest.mark.skipif(kernel is None, reason="the kernel was not built")
def test_what_the_category_kernels_cannot_rank_is_left_to_python():
    """A NaN score (a sales count gone NaN) is ranked by Python's sort, not the kernels'."""
    from nextoffer.models import candidates
    _, catalog, bought, categories, ids = _category_store(1)
    bought._items[ids[5]] = float("nan")
    in_band = [catalog.get(pid) for pid in ids[:60]]
    assert candidates.category_upsells(in_band, "x", 0.0, None, bought.item_counts, 1.0, 0.3, None,
                                       candidates.SAME_CATEGORY, candidates.Candidate) is None
    groups = [("c1", 0.5, [pid for pid in ids if catalog.get(pid).category == "c1"])]
    groups[0][2].insert(0, ids[5])
    assert candidates.content_rows(groups, bought.item_counts, catalog.products_by_id, 1.0, 0.5, None, "a", "c0",
                                   200, 10, candidates.SAME_BRAND_POPULAR, candidates.POPULAR_IN,
                                   candidates.Candidate) is None
