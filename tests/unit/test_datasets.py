import gzip
import os
from collections import Counter
from pathlib import Path

import pytest

from nextoffer.streams.tools.datasets import (detect_format, online_retail_catalog, online_retail_events, read_invoices,
                              rees46_events)
from nextoffer.streams.tools.storefront import storefront_records

# The shared data sets sit beside the repository; NEXTOFFER_TEST_DATA points elsewhere.
DATA = Path(os.environ.get("NEXTOFFER_TEST_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
RETAIL = DATA / "online-retail" / "online_retail.csv.gz"
REES46 = DATA / "rees46-sample" / "rees46_2019oct_head.csv.gz"

SAMPLE = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,A,MUG,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,B,TEA,2,2010-12-01 08:26:00,3.00,17850.0,United Kingdom
536366,A,MUG,1,2010-12-01 08:28:00,0,,United Kingdom
536366,C,CAKE,1,2010-12-01 08:28:00,4.0,,United Kingdom
C536367,A,MUG,-1,2010-12-01 08:30:00,2.55,17850.0,United Kingdom
"""


@pytest.fixture
def sample(tmp_path) -> Path:
    path = tmp_path / "retail.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(SAMPLE)
    return path


def test_invoices_skip_dirt_and_count_it(sample):
    stats = Counter()
    invoices = list(read_invoices(sample, stats))
    assert [(i.invoice, i.user_id, i.products) for i in invoices] == [
        ("536365", "17850", ["A", "B"]), ("536366", "guest-536366", ["C"])]
    assert stats == Counter(invoices=2, bad_lines=1, cancellation_lines=1)
    assert detect_format(sample) == "online-retail"


def test_each_invoice_becomes_views_adds_checkout_and_purchase(sample):
    records = list(online_retail_events(sample, run_id="r1-"))
    kinds = [(r.topic, r.value["type"]) for r in records[:6]]
    assert kinds == [("clickstream", "view"), ("cart", "add"), ("clickstream", "view"), ("cart", "add"),
                     ("cart", "checkout"), ("cart", "purchase")]
    purchase = records[5].value
    assert purchase["event_id"] == "r1-536365-p" and len(purchase["items"]) == 2
    assert all(r.key == r.value["user_id"] for r in records)


def test_warm_up_orders_are_purchases_only(sample):
    records = list(online_retail_events(sample, warm_up_orders=1))
    assert records[0].value["type"] == "purchase" and records[1].value["type"] == "view"


def test_catalog_names_come_from_descriptions(sample):
    catalog = {r.key: r.value for r in online_retail_catalog(sample)}
    assert catalog["A"] == {"product_id": "A", "name": "MUG", "price": 2.55}


def test_the_shared_data_sets_are_there():
    assert RETAIL.exists() and REES46.exists(), f"data sets not found under {DATA}; set NEXTOFFER_TEST_DATA"


def test_the_real_online_retail_file_matches_its_readme():
    stats = Counter()
    invoices = list(read_invoices(RETAIL, stats))
    # The data README: ~25,900 invoices incl. cancellations; 9,288 cancellation lines here.
    assert stats["cancellation_lines"] == 9288
    assert 19_000 < len(invoices) < 21_000
    assert all(a.ts <= b.ts for a, b in zip(invoices, invoices[1:]))


def test_rees46_rows_become_contract_events():
    records = list(rees46_events(REES46, run_id="x"))
    assert len(records) == 17_434
    kinds = Counter((r.topic, r.value["type"]) for r in records)
    # 17,434 rows: 165 carts, 214 purchases and so 17,055 views (the data README rounds to 17,056).
    assert kinds == Counter({("clickstream", "view"): 17_055, ("cart", "add"): 165, ("cart", "purchase"): 214})
    first = records[0].value
    assert first["ts"] == "2019-10-01 00:00:00+00:00" and first["brand"] == "shiseido"


def test_simulator_is_deterministic_for_a_seed():
    def take(seed):
        it = storefront_records(seed=seed, shoppers=20, start_ts=0)
        return [next(it) for _ in range(300)]
    assert take(3) == take(3)
    assert take(3) != take(4)
    catalog = [r for r in take(3) if r.topic == "catalog"]
    assert any(r.value.get("family") for r in catalog) and all(r.value["price"] > 0 for r in catalog)


def test_rees46_purchases_become_orders_per_shopper_and_session():
    from nextoffer.streams.tools.datasets import rees46_invoices
    orders = list(rees46_invoices(REES46))
    assert sum(len(o.lines) for o in orders) <= 214 and len(orders) >= 100
    assert all(o.lines and o.user_id for o in orders)
    assert [o.ts for o in orders] == sorted(o.ts for o in orders)
