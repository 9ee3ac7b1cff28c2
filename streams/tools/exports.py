"""A store's own order export, CSV or Parquet, read through a column mapping.

A store judges nextoffer on its own data: ``nextoffer evaluate FILE --columns user=...`` (and
``replay``) read any export with one row per order line, given which column holds the shopper,
the order, the product, the unit price and the time (quantity, category and brand optional).
Online Retail and REES46 are presets. A missing column is named, with the columns the file has.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

from nextoffer.streams.tools.datasets import Invoice

REQUIRED = ("user", "order", "product", "price", "time")
OPTIONAL = ("quantity", "category", "brand", "event")


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the export holds what. ``event``, when set, names a column of event types
    and only rows whose value is ``purchase_value`` are order lines (an event log such as REES46).

    >>> ColumnMap.parse("user=customer,order=order_no,product=sku,price=unit_price,time=created")
    ColumnMap(user='customer', order='order_no', product='sku', price='unit_price', time='created', quantity=None, category=None, brand=None, event=None, purchase_value='purchase')
    >>> ColumnMap.parse("price=net", base=PRESETS["online-retail"]).price
    'net'
    >>> ColumnMap.parse("user=a,colour=b")
    Traceback (most recent call last):
    ...
    ValueError: unknown field 'colour' in --columns; the fields are user, order, product, price, time, quantity, category, brand, event
    """

    user: str
    order: str
    product: str
    price: str
    time: str
    quantity: Optional[str] = None
    category: Optional[str] = None
    brand: Optional[str] = None
    event: Optional[str] = None
    purchase_value: str = "purchase"

    @classmethod
    def parse(cls, text: str, base: Optional["ColumnMap"] = None) -> "ColumnMap":
        """``field=column,...`` (over ``base``, a preset, where given)."""
        fields = dataclasses.asdict(base) if base else {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, column = part.partition("=")
            name = name.strip()
            if name not in REQUIRED + OPTIONAL:
                raise ValueError(f"unknown field {name!r} in --columns; the fields are "
                                 f"{', '.join(REQUIRED + OPTIONAL)}")
            fields[name] = column.strip() or None
        missing = [f for f in REQUIRED if not fields.get(f)]
        if missing:
            raise ValueError(f"--columns must name the column of {', '.join(missing)} "
                             f"(for example {missing[0]}=COLUMN)")
        return cls(**fields)

    def check(self, header: list[str], path: Path) -> None:
        """Every mapped column exists in ``header``, or an error naming the missing one."""
        for name in REQUIRED + OPTIONAL:
            column = getattr(self, name)
            if column is not None and column not in header:
                raise ValueError(f"{path}: no column {column!r} for {name} (its columns: "
                                 f"{', '.join(header)}); map it with --columns {name}=COLUMN")


PRESETS = {
    "online-retail": ColumnMap(user="CustomerID", order="InvoiceNo", product="StockCode", price="UnitPrice",
                               time="InvoiceDate", quantity="Quantity"),
    "rees46": ColumnMap(user="user_id", order="user_session", product="product_id", price="price",
                        time="event_time", category="category_code", brand="brand", event="event_type"),
}


def read_rows(path: Path) -> tuple[list[str], Iterator[dict]]:
    """The header and rows (dicts of text) of a CSV (optionally gzipped) or Parquet file."""
    if str(path).endswith((".parquet", ".pq")):
        return _parquet_rows(path)
    fh = io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="") if str(path).endswith(".gz") \
        else open(path, encoding="utf-8", newline="")
    reader = csv.DictReader(fh)
    return list(reader.fieldnames or []), reader


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:   # optional: CSV needs nothing more
        raise ValueError(f"{path}: reading Parquet needs pyarrow: pip install 'nextoffer[parquet]'") from exc
    table = pq.ParquetFile(path)
    header = list(table.schema_arrow.names)

    def rows() -> Iterator[dict]:
        for batch in table.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                yield {k: "" if v is None else v if isinstance(v, str) else _text(v) for k, v in row.items()}
    return header, rows()


def _text(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def read_orders(path: Path, columns: ColumnMap) -> Iterator[Invoice]:
    """The export's orders, in the order of their first line: lines with a quantity below 1, a
    price not above 0 or no product are skipped; a missing shopper becomes ``guest-<order>``."""
    header, rows = read_rows(path)
    columns.check(header, path)
    orders: dict[str, Invoice] = {}
    for row in rows:
        if columns.event and row[columns.event] != columns.purchase_value:
            continue
        qty = _number(row[columns.quantity]) if columns.quantity else 1.0
        price, product = _number(row[columns.price]), row[columns.product]
        if qty is None or qty < 1 or price is None or price <= 0 or not product:
            continue
        order_id = row[columns.order] or f"{row[columns.user]}-{row[columns.time]}"
        inv = orders.get(order_id)
        if inv is None:
            user = _identifier(row[columns.user]) or f"guest-{order_id}"
            inv = orders[order_id] = Invoice(order_id, user, parse_time(row[columns.time]))
        inv.lines.append((product, int(qty), price, ""))
    yield from sorted(orders.values(), key=lambda inv: inv.ts)


def parse_time(text: str) -> float:
    """Epoch seconds from a number, an ISO-8601 time or ``YYYY-MM-DD HH:MM[:SS][ UTC]`` (UTC).

    >>> parse_time("1700000000"), parse_time("2011-12-09 12:50:00"), parse_time("2019-10-01 00:00:00 UTC")
    (1700000000.0, 1323435000.0, 1569888000.0)
    """
    number = _number(text)
    if number is not None:
        return number
    text = text.strip().replace(" UTC", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}; use epoch seconds or ISO-8601") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _identifier(text: str) -> str:
    """A shopper id as text: ``17850.0`` (a number column read as float) is ``17850``."""
    text = str(text).strip()
    return text[:-2] if text.endswith(".0") and text[:-2].isdigit() else text
