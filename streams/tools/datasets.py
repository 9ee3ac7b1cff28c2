"""Real data sets turned into the contract's events, in time order.

Each reader yields :class:`Record` (topic name without prefix, key, JSON-able value)
and counts what it had to skip in ``stats``; nothing is produced here.

* Online Retail (UCI): invoice lines -> per invoice a view and an add per line, a
  checkout and a purchase with all items. Cancellations, non-positive quantities or
  prices are skipped and counted. Its descriptions become catalog names.
* REES46: view / cart / purchase rows -> view / add / purchase events, with price,
  category (category_code, else category_id) and brand.
"""
from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Optional

from nextoffer.streams.io.records import Record

FORMATS = ("online-retail", "rees46", "jsonl")


@dataclass
class Invoice:
    """One Online Retail order."""

    invoice: str
    user_id: str
    ts: float
    lines: list[tuple[str, int, float, str]] = field(default_factory=list)  # pid, qty, price, name

    @property
    def products(self) -> list[str]:
        return list(dict.fromkeys(line[0] for line in self.lines))


def detect_format(path: Path) -> str:
    """Guess a file's format from its header line."""
    with _open(path) as fh:
        head = fh.readline()
    if head.startswith("InvoiceNo,"):
        return "online-retail"
    if head.startswith("event_time,event_type"):
        return "rees46"
    if head.lstrip().startswith("{"):
        return "jsonl"
    raise ValueError(f"{path}: unknown format (expected Online Retail CSV, REES46 CSV or JSON lines); "
                     "pass --format, or map its columns with --columns user=...,order=...,product=...,"
                     "price=...,time=...")


def read_invoices(path: Path, stats: Optional[Counter] = None) -> Iterator[Invoice]:
    """Valid Online Retail invoices in file (time) order, lines merged per product."""
    stats = stats if stats is not None else Counter()
    with _open(path) as fh:
        rows = csv.DictReader(fh)
        for invoice_no, group in itertools.groupby(rows, key=lambda r: r["InvoiceNo"]):
            group = list(group)
            if invoice_no.startswith("C"):
                stats["cancellation_lines"] += len(group)
                continue
            inv = None
            for row in group:
                qty, price = _int(row["Quantity"]), _float(row["UnitPrice"])
                if qty is None or qty <= 0 or price is None or price <= 0 or not row["StockCode"]:
                    stats["bad_lines"] += 1
                    continue
                if inv is None:
                    customer = row["CustomerID"].split(".")[0]
                    inv = Invoice(invoice_no, customer or f"guest-{invoice_no}",
                                  _ts(row["InvoiceDate"]))
                inv.lines.append((row["StockCode"], qty, price, row["Description"].strip()))
            if inv is not None:
                stats["invoices"] += 1
                yield inv


def online_retail_catalog(path: Path) -> Iterator[Record]:
    """One catalog record per product: its description as name, its last seen unit price."""
    return catalog_records(read_invoices(path))


def catalog_records(invoices: Iterable[Invoice]) -> Iterator[Record]:
    """One catalog record per product of the orders: its name, if any, and its last unit price."""
    products: dict[str, tuple[str, float]] = {}
    for inv in invoices:
        for pid, _, price, name in inv.lines:
            products[pid] = (name or products.get(pid, ("", 0))[0], price)
    for pid, (name, price) in products.items():
        yield Record("catalog", pid, {"product_id": pid, "name": name or None, "price": price}, paced=False)


def online_retail_events(path: Path, run_id: str = "", warm_up_orders: int = 0,
                         stats: Optional[Counter] = None) -> Iterator[Record]:
    """Shopping events of every invoice; the first ``warm_up_orders`` invoices as purchases only."""
    return order_events(read_invoices(path, stats), run_id, warm_up_orders)


def order_events(invoices: Iterable[Invoice], run_id: str = "", warm_up_orders: int = 0) -> Iterator[Record]:
    """Each order as a storefront sends it: a view and an add per line, a checkout and the
    purchase of all its items; the first ``warm_up_orders`` orders as purchases only."""
    for n, inv in enumerate(invoices):
        eid = f"{run_id}{inv.invoice}"
        user = inv.user_id
        items = [{"product_id": pid, "quantity": qty, "price": price} for pid, qty, price, _ in inv.lines]
        if n >= warm_up_orders:
            for i, (pid, qty, price, _) in enumerate(inv.lines):
                base = {"user_id": user, "session_id": eid, "product_id": pid, "price": price, "ts": inv.ts}
                yield Record("clickstream", user, {"event_id": f"{eid}-{i}-v", "type": "view", **base})
                yield Record("cart", user, {"event_id": f"{eid}-{i}-a", "type": "add", "quantity": qty, **base})
            yield Record("cart", user, {"event_id": f"{eid}-c", "type": "checkout", "user_id": user,
                                        "session_id": eid, "ts": inv.ts})
        yield Record("cart", user, {"event_id": f"{eid}-p", "type": "purchase", "user_id": user,
                                    "session_id": eid, "order_id": inv.invoice, "items": items,
                                    "ts": inv.ts}, paced=n >= warm_up_orders)


def rees46_events(path: Path, run_id: str = "", stats: Optional[Counter] = None) -> Iterator[Record]:
    stats = stats if stats is not None else Counter()
    kinds = {"view": ("clickstream", "view"), "cart": ("cart", "add"), "purchase": ("cart", "purchase")}
    with _open(path) as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            kind = kinds.get(row["event_type"])
            price = _float(row["price"])
            if kind is None or not row["user_id"] or not row["product_id"]:
                stats["bad_rows"] += 1
                continue
            value = {"event_id": f"{run_id}r{n}", "type": kind[1], "user_id": row["user_id"],
                     "session_id": row["user_session"] or None, "product_id": row["product_id"],
                     "ts": row["event_time"].replace(" UTC", "+00:00"),
                     "category": row["category_code"] or row["category_id"] or None,
                     "brand": row["brand"] or None}
            if price is not None and price > 0:
                value["price"] = price
            stats["rows"] += 1
            yield Record(kind[0], row["user_id"], {k: v for k, v in value.items() if v is not None})


def rees46_invoices(path: Path) -> Iterator[Invoice]:
    """REES46 purchases as orders: one per shopper and session, in the order of their first line."""
    orders: dict[tuple[str, str], Invoice] = {}
    for record in rees46_events(path):
        v = record.value
        if v["type"] != "purchase" or "price" not in v:
            continue
        key = (v["user_id"], v.get("session_id") or v["event_id"])
        inv = orders.get(key)
        if inv is None:
            ts = datetime.fromisoformat(v["ts"]).timestamp()
            inv = orders[key] = Invoice(f"{key[0]}-{key[1]}", v["user_id"], ts)
        inv.lines.append((v["product_id"], 1, v["price"], ""))
    yield from sorted(orders.values(), key=lambda inv: inv.ts)


def _open(path: Path):
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def _int(text: str) -> Optional[int]:
    try:
        return int(text)
    except ValueError:
        return None


def _float(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None
