"""Showcases: the windows learned from orders and views, per product and per shopper."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from nextoffer.models.bought_together import DAY, BoughtTogether
from nextoffer.models.catalog import Catalog
from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem, Product
from nextoffer.models.profile import ProfileView
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState
from nextoffer.models.showcases import Counts, ProductIndex, ShowcaseItem, Showcases, excluded, personalise
from nextoffer.streams.io.codecs import Limits, encode_state
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.shared_learning import SharedLearning
from nextoffer.streams.io.showcases import ShowcaseWriter, read_showcase
from nextoffer.streams.io.store import MemoryOfferStore
from nextoffer.streams.worker.pipeline import OfferWriter, Outputs, ShopperPipeline

T0 = 1_700_000_000.0


def store() -> Showcases:
    catalog = Catalog()
    for n in range(6):
        catalog.upsert(Product(f"mug-{n}", 10.0 + n, category="kitchen.mugs", brand="Acme" if n % 2 else "Bolt"))
    catalog.upsert(Product("mug-gold", 200.0, category="kitchen.mugs"))
    catalog.upsert(Product("mug-gone", 11.0, category="kitchen.mugs", stock=0))
    for n in range(4):
        catalog.upsert(Product(f"tea-{n}", 5.0, category="grocery.tea"))
    return Showcases(catalog, BoughtTogether())


def test_trending_puts_what_rises_now_ahead_of_what_was_viewed_most():
    s = store()
    s.observe_views({"mug-0": 500}, ts=T0)                       # a week ago, a lot
    s.observe_views({"mug-1": 40}, ts=T0 + 7 * DAY)              # today, less
    now = T0 + 7 * DAY
    assert [i.product_id for i in s.window("most_viewed", now=now)] == ["mug-0", "mug-1"]
    assert [i.product_id for i in s.window("trending", now=now)] == ["mug-1", "mug-0"]


def test_a_products_popularity_windows_keep_to_its_category_and_leave_it_out():
    s = store()
    for n in range(4):
        s.observe_order([(f"tea-{n}", 1)], ts=T0)
        s.observe_order([(f"tea-{n}", 1)], ts=T0)
        s.observe_order([(f"mug-{n}", 1)], ts=T0)
    ids = [i.product_id for i in s.window("best_sellers", "mug-0", now=T0)]
    assert ids == ["mug-1", "mug-2", "mug-3"], "mugs only, the product itself left out"
    assert [i.product_id for i in s.window("best_sellers", now=T0)][:4] == [f"tea-{n}" for n in range(4)]


def test_a_sparse_category_falls_back_to_the_stores_list():
    s = store()
    s.catalog.upsert(Product("odd", 9.0, category="misc"))
    s.observe_order([("tea-0", 1)], ts=T0)
    assert [i.product_id for i in s.window("best_sellers", "odd", now=T0)] == ["tea-0"]


def test_similar_products_share_the_category_and_price_band_and_are_in_stock():
    s = store()
    s.observe_order([("mug-5", 1)], ts=T0)
    ids = [i.product_id for i in s.window("similar", "mug-2", now=T0)]
    assert ids[0] == "mug-5", "the best sold first"
    assert "mug-2" not in ids and "mug-gold" not in ids and "mug-gone" not in ids
    assert set(ids) <= {f"mug-{n}" for n in range(6)}
    assert s.window("similar", "unknown", now=T0) == []


def test_frequently_bought_together_are_the_learned_complements():
    engine = OfferEngine(OfferRules())
    for n in range(6):
        engine.learn_basket(Basket(f"u{n}", T0 + n, (LineItem("pot", 1, 30.0), LineItem("tea", 1, 5.0))))
        engine.learn_basket(Basket(f"v{n}", T0 + n, (LineItem("bread", 1, 2.0),)))
    items = engine.showcases.window("frequently_bought_together", "pot", now=T0 + 10)
    assert [i.product_id for i in items] == ["tea"] and items[0].price == 5.0
    assert [i.product_id for i in engine.showcases.window("best_sellers", now=T0 + 10)][0] in ("pot", "tea", "bread")


def test_a_shoppers_showcase_leaves_out_cart_bought_and_declined_and_follows_their_taste():
    shopper = ShopperState("u1", cart={"a": [1, 1.0]}, purchases={"b": [1, T0]}, declined={"c": T0})
    gone = excluded(shopper, now=T0 + DAY)
    assert gone == {"a", "b", "c"}
    assert excluded(shopper, now=T0 + 60 * DAY) == {"a"}, "old purchases and declines come back"
    window = [ShowcaseItem(p, 1.0 - n / 10, "x" if p != "e" else "y") for n, p in enumerate("abcdef")]
    fan = ProfileView("repeat", "engaged", "browsing", None, 0.5, {"c:y": 1.0})
    assert [i.product_id for i in personalise(window, fan, gone)] == ["e", "d", "f"]
    assert [i.product_id for i in personalise(window, fan, gone, weight=0.0)] == ["d", "e", "f"]


def test_decayed_counts_keep_their_order_over_years():
    c = Counts(half_life=3600.0)
    c.add("old", 1000.0, ts=0.0)
    for day in range(0, 3 * 365, 5):
        c.add("steady", 1.0, ts=day * DAY)          # many rescales on the way
    top = c.top(2, now=1090 * DAY)                  # the day of the last view
    assert [pid for pid, _ in top] == ["steady"], "a count decayed to nothing leaves the window"
    assert 0.99 < top[0][1] < 1.01 and c.get("old", now=1090 * DAY) == 0.0


def test_counts_sharing_one_product_index_read_as_counts_of_their_own():
    """Four counts over one index (as an engine's recent sales and showcases share theirs) give
    every value, window and tie exactly as four counts with an index each: each breaks its ties
    by the order it first counted its products, not the index's."""
    import random
    rng = random.Random(4)
    products = ProductIndex()
    shared = [Counts(hl, products) for hl in (7 * DAY, 30 * DAY, DAY, None)]
    alone = [Counts(hl) for hl in (7 * DAY, 30 * DAY, DAY, None)]
    ids = [f"p{n}" for n in range(300)]
    for step in range(4000):
        which = rng.randrange(4)
        ts = step * 600.0
        if rng.random() < 0.3:
            pids = list(dict.fromkeys(rng.sample(ids, rng.randint(1, 12))))
            for counts in (shared, alone):
                counts[which].add_each(pids, 1.0, ts)
        else:
            pid, n = rng.choice(ids[:60] if rng.random() < 0.7 else ids), float(rng.choice([1, 1, 2]))
            for counts in (shared, alone):
                counts[which].add(pid, n, ts)
    now = 4000 * 600.0
    for mine, theirs in zip(shared, alone):
        assert len(mine) == len(theirs) and mine.ids == theirs.ids
        assert mine.values_of(ids + ["absent"], now).tolist() == theirs.values_of(ids + ["absent"], now).tolist()
        assert [mine.get(pid, now) for pid in ids] == [theirs.get(pid, now) for pid in ids]
        for _ in range(30):
            k = rng.choice([1, 5, 20, 400])
            among = rng.sample(ids, rng.randint(0, 150)) if rng.random() < 0.5 else None
            exclude = rng.sample(ids, rng.randint(0, 20))
            assert mine.top(k, now, among, exclude) == theirs.top(k, now, among, exclude)
    assert len(products) == len(set().union(*(set(c.ids) for c in alone)))


def _pipeline(sent: list, now: list) -> ShopperPipeline:
    async def send(key, value):
        sent.append(orjson.loads(value))

    async def ignore(key, value):
        return None
    return ShopperPipeline(OfferEngine(OfferRules()), {}, OfferWriter(MemoryOfferStore(ttl=60)),
                           Outputs(ignore, ignore, ignore, activity=send), Limits(),
                           activity_every=5.0, monotonic=lambda: now[0])


def _view(user, pid, n) -> bytes:
    return orjson.dumps({"event_id": f"{user}-{n}", "type": "view", "user_id": user, "product_id": pid,
                         "ts": T0 + n})


def test_views_go_to_the_activity_topic_with_a_batch_at_most_every_interval():
    sent, now = [], [100.0]
    pipeline = _pipeline(sent, now)
    for n, (user, pid) in enumerate([("u1", "mug-0"), ("u2", "mug-0"), ("u1", "mug-1")]):
        pipeline.apply("clickstream", 0, n, user.encode(), _view(user, pid, n))
    asyncio.run(pipeline.flush())
    assert sent == [{"ts": T0 + 2, "views": {"mug-0": 2, "mug-1": 1}}]
    pipeline.apply("clickstream", 0, 3, b"u3", _view("u3", "mug-2", 3))
    asyncio.run(pipeline.flush())
    assert len(sent) == 1, "not again within the interval"
    now[0] += 5.0
    pipeline.apply("clickstream", 0, 4, b"u3", _view("u3", "mug-2", 4))
    asyncio.run(pipeline.flush())
    assert sent[-1] == {"ts": T0 + 4, "views": {"mug-2": 2}}, "nothing counted is dropped"
    products, shoppers = pipeline.take_touched()
    assert products == ["mug-0", "mug-1", "mug-2"] and sorted(shoppers) == ["u1", "u2", "u3"]
    assert pipeline.take_touched() == ([], {})


def test_every_worker_learns_the_views_of_all_workers_from_the_activity_topic():
    shared = SharedLearning(Settings.from_env({}), OfferEngine(OfferRules()))
    shared.dispatch("nextoffer-activity", None, orjson.dumps({"ts": T0, "views": {"mug-0": 3}}))
    shared.dispatch("nextoffer-activity", None, orjson.dumps({"ts": T0 + 1, "views": {"mug-1": 5}}))
    shared.dispatch("nextoffer-activity", None, b"{broken")
    assert shared.applied["activity"] == 2 and shared.applied["skipped"] == 1
    assert [i.product_id for i in shared.engine.showcases.window("most_viewed", now=T0 + 1)] == ["mug-1", "mug-0"]


def test_a_round_of_writes_and_a_personalised_read_of_them():
    settings = Settings.from_env({"NEXTOFFER_TOPIC_PREFIX": "s1."})
    engine = OfferEngine(OfferRules())
    for n in range(5):
        engine.update_product(Product(f"mug-{n}", 10.0, category="mugs", brand="Acme" if n == 4 else None))
        engine.learn_basket(Basket(f"u{n}", T0 + n, tuple(LineItem(f"mug-{m}", 1, 10.0) for m in range(n + 1))))
    shopper = ShopperState("fan", purchases={"mug-0": [1, T0 + 4]}, affinity={"b:Acme": [2.0, T0 + 4]})
    writes = dict(ShowcaseWriter(settings, engine).round(["mug-1"], {"fan": encode_state(shopper)}, now=T0 + 5))
    assert set(writes) == {"s1.showcase:store", "s1.showcase:product:mug-1", "s1.showcase:user:fan"}
    product = {k.encode(): v for k, v in writes["s1.showcase:product:mug-1"].items()}
    store_fields = {k.encode(): v for k, v in writes["s1.showcase:store"].items()}
    generic = read_showcase("best_sellers", product, store_fields, None, weight=1.0)
    assert [i["product_id"] for i in generic["items"]] == ["mug-0", "mug-2", "mug-3", "mug-4"]
    mine = read_showcase("best_sellers", product, store_fields, writes["s1.showcase:user:fan"]["profile"], 1.0)
    assert mine["personalised"] and [i["product_id"] for i in mine["items"]] == ["mug-2", "mug-4", "mug-3"], \
        "the brand the shopper likes moves up (from last); what they just bought is out"
    unknown = read_showcase("trending", {}, store_fields, None, 1.0)
    assert unknown["source"] == "store"
    assert read_showcase("similar", {}, store_fields, None, 1.0) == {
        "kind": "similar", "source": "none", "personalised": False, "items": []}


def test_a_round_is_written_in_slices_that_leave_the_loop_to_events_three_times_as_long():
    from nextoffer.streams.io.showcases import ROUND_SHARE, ROUND_SLICE
    engine = OfferEngine(OfferRules())
    products = [f"p{n}" for n in range(2 * ROUND_SLICE + ROUND_SLICE // 2)]      # three slices
    for pid in products:
        engine.update_product(Product(pid, 10.0, category="c"))
    writer = ShowcaseWriter(Settings(), engine)
    shoppers = {f"u{n}": encode_state(ShopperState(f"u{n}")) for n in range(ROUND_SLICE + ROUND_SLICE // 5)}
    clock, slept, puts = [0.0], [], []
    plain = writer.round

    def timed_round(*args, **kwargs):        # each slice holds the loop 10 ms, then 20, 30
        clock[0] += 0.01 * (len(puts) + 1)
        return plain(*args, **kwargs)

    async def put(writes):
        puts.append([key for key, _ in writes])

    async def sleep(seconds):
        slept.append((len(puts), seconds))    # after which put, for how long
    writer.round = timed_round
    written = asyncio.run(writer.write_round(products, shoppers, T0, put, clock=lambda: clock[0], sleep=sleep))
    assert len(puts) == 3 and written == sum(map(len, puts)) == 1 + len(products) + len(shoppers)
    assert [n for n, _ in slept] == [1, 2, 3], "the loop is given back after each slice is written"
    assert [round(seconds, 9) for _, seconds in slept] == [round(held * (1 / ROUND_SHARE - 1), 9)
                                                          for held in (0.01, 0.02, 0.03)]
    assert ROUND_SHARE == 0.25, "three times as long as the slice held the loop"
    assert puts[0][0] == "showcase:store"
    assert sum(k.startswith("showcase:user:") for k in puts[1]) == ROUND_SLICE // 5


def test_a_round_ends_at_the_first_write_that_fails():
    engine = OfferEngine(OfferRules())
    for n in range(150):
        engine.update_product(Product(f"p{n}", 10.0, category="c"))
    writer, calls = ShowcaseWriter(Settings(), engine), []

    async def put(writes):
        calls.append(len(writes))
        raise ConnectionError("redis is down")

    async def no_sleep(seconds):
        pass
    with pytest.raises(ConnectionError):
        asyncio.run(writer.write_round([f"p{n}" for n in range(150)], {}, T0, put, sleep=no_sleep))
    assert len(calls) == 1


def plain_similar(s, product_id, now, k):
    """The similar window as it was written first: the whole band listed, every candidate sorted."""
    import math

    import numpy as np

    from nextoffer.models.showcases import SIMILAR_SCAN
    product = s.catalog.get(product_id)
    band = s.settings.showcase_similar_price_band
    prices_ids = [(p.price, p.product_id) for p in s.catalog.products() if p.category == product.category
                  and product.price / band <= p.price <= product.price * band]
    inside = [s.catalog.get(pid) for _, pid in sorted(prices_ids)]
    if len(inside) > SIMILAR_SCAN:
        inside = sorted(inside, key=lambda o: abs(math.log(o.price / product.price)))[:SIMILAR_SCAN]
    others = [o for o in inside if o.product_id != product.product_id and o.stock != 0]
    ids = [o.product_id for o in others]
    closeness = 1.0 / (1.0 + np.abs(np.log(np.array([o.price for o in others]) / product.price)))
    score = np.round(s.sold.values_of(ids, now) + 0.1 * s.viewed.values_of(ids, now) + 0.01 * closeness, 6)
    order = sorted(range(len(ids)), key=lambda i: (-score[i], ids[i]))[:k]
    return [(ids[i], round(float(score[i]), 6)) for i in order]


@pytest.mark.parametrize("seed", range(4))
def test_the_similar_window_is_the_plain_sorts(seed):
    """A category of 900 products (more than the similar scan reads), prices repeating, some
    out of stock, a few sold and viewed: the window is what listing and sorting them all gives."""
    import random
    rng = random.Random(seed)
    catalog = Catalog()
    for n in range(900):
        catalog.upsert(Product(f"p{n}", rng.choice([9.99, 10.0, 12.5]) * rng.choice([1, 1, 1.2, 0.8]),
                               category="big", stock=rng.choice([None, 5, 0])))
    s = Showcases(catalog, BoughtTogether())
    for n in range(300):
        s.observe_order([(f"p{k}", 1) for k in rng.sample(range(900), 3)], T0 + n)
    for n in range(20):
        pid = f"p{rng.randrange(900)}"
        for k in (1, 12, 1000):
            fast = [(i.product_id, i.score) for i in s.window("similar", pid, now=T0 + 400, limit=k)]
            assert fast == plain_similar(s, pid, T0 + 400, k)
            assert fast


@pytest.mark.parametrize("seed", range(4))
def test_a_rounds_similar_windows_read_each_category_once_and_are_the_plain_sorts(seed):
    """In a round (one cache for many products), the similar windows are sliced from their
    category's counts read once: the same windows as the plain list-and-sort, for categories of
    a few products, of many, and of more than a round reads at once."""
    import random

    from nextoffer.models.showcases import ROUND_CATEGORY_LIMIT
    rng = random.Random(seed)
    catalog = Catalog()
    sizes = {"few": 3, "some": 150, "many": 700, "huge": ROUND_CATEGORY_LIMIT + 10}
    for category, size in sizes.items():
        for n in range(size):
            catalog.upsert(Product(f"{category}-{n}", rng.choice([9.99, 10.0, 12.5, 20.0]) * rng.choice([1, 1, 1.2, 0.8]),
                                   category=category, stock=rng.choice([None, 5, 0])))
    s = Showcases(catalog, BoughtTogether())
    ids = [p.product_id for p in catalog.products()]
    for n in range(400):
        s.observe_order([(pid, 1) for pid in rng.sample(ids, 3)], T0 + n)
    s.observe_views({pid: rng.randint(1, 4) for pid in rng.sample(ids, 200)}, T0 + 300)
    cache: dict = {}
    for pid in rng.sample(ids, 60) + [f"few-{n}" for n in range(3)]:
        for k in (1, 10):
            fast = [(i.product_id, i.score) for i in s.window("similar", pid, now=T0 + 400, limit=k, cache=cache)]
            assert fast == plain_similar(s, pid, T0 + 400, k)
    assert {key[1] for key in cache if key[0] == "similar"} == {"few", "some", "many"}


def test_a_rounds_popularity_windows_are_each_windows_alone():
    """In a round, a category's positions are read once for its three popularity windows and
    its products' similar windows: each window is the one computed alone, without the round."""
    import random
    rng = random.Random(5)
    catalog = Catalog()
    for n in range(600):
        catalog.upsert(Product(f"p{n}", rng.choice([5.0, 9.99, 12.5, 20.0]), category=f"c{n % 7}",
                               stock=rng.choice([None, 4, 0])))
    s = Showcases(catalog, BoughtTogether())
    ids = [f"p{n}" for n in range(600)]
    for n in range(300):
        s.observe_order([(pid, 1) for pid in rng.sample(ids[:400], 3)], T0 + n)   # the last 200 never sold
    s.observe_views({pid: rng.randint(1, 4) for pid in rng.sample(ids, 150)}, T0 + 300)
    cache: dict = {}
    for pid in rng.sample(ids, 80):
        for kind in ("best_sellers", "most_viewed", "trending", "similar"):
            assert s.window(kind, pid, now=T0 + 400, cache=cache) == s.window(kind, pid, now=T0 + 400)
    assert sum(key[0] == "category" for key in cache) == 7


def test_a_rounds_windows_are_as_of_its_first_read_of_a_category():
    """A round given back to the event loop between slices may see the catalog change: its
    windows stay those of the category as it first read it (not a misaligned mix)."""
    catalog = Catalog()
    for n in range(40):
        catalog.upsert(Product(f"p{n}", 10.0 + n % 8, category="mugs", stock=0 if n % 9 == 0 else None))
    s = Showcases(catalog, BoughtTogether())
    for n in range(60):
        s.observe_order([(f"p{n % 40}", 1), (f"p{(3 * n) % 40}", 1)], T0 + n)
    kinds, pids = ("similar", "best_sellers"), ("p5", "p12", "p21")
    before = {(pid, kind): s.window(kind, pid, now=T0 + 100) for pid in pids for kind in kinds}
    cache: dict = {}
    s.window("similar", "p1", now=T0 + 100, cache=cache)          # the round reads the category
    catalog.upsert(Product("p0-new", 9.0, category="mugs"))       # the cheapest: every position moves
    catalog.upsert(Product("p20", 14.0, category="mugs", stock=0))
    for pid in pids:
        for kind in kinds:
            assert s.window(kind, pid, now=T0 + 100, cache=cache) == before[(pid, kind)]
    assert len(catalog.in_category("mugs")) == 41 and "p20" in catalog.out_of_stock
