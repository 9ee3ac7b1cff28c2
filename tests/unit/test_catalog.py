from nextoffer.models.catalog import Catalog
from nextoffer.models.events import Product


def test_price_change_reindexes_the_category():
    c = Catalog()
    c.upsert(Product("a", 10.0, category="x"))
    c.upsert(Product("a", 50.0, category="x"))
    assert [p.product_id for p in c.in_category_between("x", 40, 60)] == ["a"]
    assert c.in_category_between("x", 5, 15) == []


def test_family_ladder_orders_by_tier_and_survives_updates():
    c = Catalog()
    c.upsert(Product("pro", 300.0, family="f", tier=3))
    c.upsert(Product("basic", 100.0, family="f", tier=1))
    c.upsert(Product("plus", 200.0, family="f", tier=2))
    c.upsert(Product("plus", 210.0, family="f", tier=2))
    assert [p.product_id for p in c.higher_tiers("basic")] == ["plus", "pro"]
    assert c.higher_tiers("pro") == []
    assert c.higher_tiers("unknown") == []


def test_events_teach_unknown_products_but_never_override_the_catalog():
    c = Catalog()
    c.observe("seen", 5.0, "cat", "brand")
    assert c.get("seen").price == 5.0 and c.get("seen").from_events
    c.observe("seen", 6.0)
    assert c.get("seen").price == 6.0 and c.get("seen").category == "cat"
    c.upsert(Product("declared", 9.0, category="real"))
    c.observe("declared", 1.0, "other")
    assert c.get("declared").price == 9.0 and c.get("declared").category == "real"
    c.observe("no-price", None)
    assert "no-price" not in c


def test_the_out_of_stock_set_follows_every_update():
    c = Catalog()
    c.upsert(Product("a", 5.0, stock=0))
    c.upsert(Product("b", 5.0, stock=None))
    c.upsert(Product("c", 5.0, stock=3))
    assert c.out_of_stock == {"a"}
    c.upsert(Product("a", 5.0, stock=2))
    c.upsert(Product("c", 6.0, stock=0))
    c.observe("d", 4.0)                      # known from events only: stock unknown
    assert c.out_of_stock == {"c"} == {p.product_id for p in c.products() if p.stock == 0}
