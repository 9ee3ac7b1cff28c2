"""A store's own export, read through a column mapping: CSV and Parquet, presets, clear errors."""
import os
from pathlib import Path

import pytest

from nextoffer.streams.tools.datasets import read_invoices
from nextoffer.streams.tools.exports import PRESETS, ColumnMap, read_orders
from nextoffer.streams.tools.evaluation_report import load_orders

DATA = Path(os.environ.get("NEXTOFFER_TEST_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
RETAIL = DATA / "online-retail" / "online_retail.csv.gz"

EXPORT = """customer,order_no,sku,unit_price,created,qty,dept
c1,o1,tea,4.5,2024-03-01T10:00:00Z,2,grocery
c1,o1,mug,6.0,2024-03-01T10:00:00Z,1,kitchen
,o2,tea,4.5,2024-03-02 09:00:00,1,grocery
c2,o3,mug,-1,1709460000,1,kitchen
c2,o3,pot,20.0,1709460000,1,kitchen
"""
MAPPING = "user=customer,order=order_no,product=sku,price=unit_price,time=created,quantity=qty,category=dept"


def test_a_csv_export_is_read_through_its_column_mapping(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(EXPORT)
    orders = list(read_orders(path, ColumnMap.parse(MAPPING)))
    assert [o.invoice for o in orders] == ["o1", "o2", "o3"]
    assert orders[0].user_id == "c1" and orders[0].lines == [("tea", 2, 4.5, ""), ("mug", 1, 6.0, "")]
    assert orders[1].user_id == "guest-o2"                     # no shopper: a guest of that order
    assert orders[2].lines == [("pot", 1, 20.0, "")]            # the line without a valid price is skipped
    assert orders[0].ts == 1709287200.0


def test_a_parquet_export_reads_the_same(tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    (tmp_path / "orders.csv").write_text(EXPORT)
    table = pacsv.read_csv(tmp_path / "orders.csv",
                           convert_options=pacsv.ConvertOptions(column_types={"created": pa.string()}))
    pq.write_table(table, tmp_path / "orders.parquet")
    columns = ColumnMap.parse(MAPPING)
    assert list(read_orders(tmp_path / "orders.parquet", columns)) == list(read_orders(tmp_path / "orders.csv", columns))


def test_a_missing_column_is_named_with_what_the_file_has(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(EXPORT)
    with pytest.raises(ValueError, match=r"no column 'price_eur' for price \(its columns: customer, order_no"):
        list(read_orders(path, ColumnMap.parse(MAPPING.replace("unit_price", "price_eur"))))
    with pytest.raises(ValueError, match="must name the column of time"):
        ColumnMap.parse("user=customer,order=order_no,product=sku,price=unit_price")


def test_the_online_retail_preset_reads_what_the_online_retail_reader_reads():
    generic = [(o.invoice, o.user_id, o.ts, o.lines) for o in read_orders(RETAIL, PRESETS["online-retail"])]
    special: dict = {}
    for o in read_invoices(RETAIL):   # one invoice (542806) stands in two places of the file: one order
        entry = special.setdefault(o.invoice, (o.invoice, o.user_id, o.ts, []))
        entry[3].extend(line[:3] + ("",) for line in o.lines)
    assert len(generic) == len(special) > 19_000 and generic == list(special.values())


def test_evaluate_loads_orders_through_a_mapping(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(EXPORT)
    orders = load_orders(path, columns=ColumnMap.parse(MAPPING))
    assert [o.order_id for o in orders] == ["o1", "o2", "o3"] and orders[0].products == ["tea", "mug"]
    with pytest.raises(ValueError, match="map its columns with --columns"):
        load_orders(path)


def test_the_evaluate_command_reads_an_export_and_names_a_missing_column(tmp_path):
    import json
    import subprocess
    import sys
    path = tmp_path / "orders.csv"
    path.write_text(EXPORT * 3)
    run = lambda *args: subprocess.run([sys.executable, "-m", "nextoffer.streams.ops.cli", "evaluate", str(path),
                                        "--out", str(tmp_path), *args], capture_output=True, text=True, timeout=120)
    done = run("--columns", MAPPING, "--warm-up", "0.5")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["orders"] == 3 and {m["name"] for m in report["methods"]} >= {"most popular"}
    missing = run("--columns", MAPPING.replace("sku", "article"))
    assert missing.returncode == 1 and "no column 'article' for product" in missing.stderr
