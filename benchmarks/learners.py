"""Memory and learning speed of the shared learners on a large catalog.

Every worker holds the shared learners ("bought together", category pairs, repeat rates,
learned upgrades, proportions, showcase counts) and the catalog, and learns every order
(:meth:`~nextoffer.models.engine.OfferEngine.learn_basket`). This measures what they take as a
catalog grows: the store's catalog loaded first (every product, with its theme as category),
then the large-cart orders of :mod:`nextoffer.benchmarks.large_carts` learned one by one.
Memory is the process's resident set growth (what a worker's container pays), read from
``/proc/self/statm`` after a garbage collection, so tracing does not slow the learning timed
beside it.

With ``workers`` above 1 it measures one worker of a deployment with partitioned learning
(:mod:`nextoffer.streams.io.pair_partitions`): the worker counts the pairs of its own learning
partitions' anchors (of ``partitions``) while it learns every order, then adopts every other
anchor's row as the complements topic would deliver it, counted by a separate process
(:func:`peer_rows`), so the peers' counting takes none of this process's memory.
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
from typing import Optional

import orjson

from nextoffer.benchmarks.large_carts import THEME_SIZE, large_cart_orders
from nextoffer.models.bought_together import BoughtTogether, PairRow, SharedRow, anchor_partition
from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import Product
from nextoffer.models.rules import OfferRules

MIB = 1024 * 1024


def resident_bytes() -> int:
    """This process's resident set size."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def owned_by_first(partitions: int, workers: int):
    """Whether an anchor is counted by the first of ``workers`` (learning partitions dealt out
    in turn, as the consumer group's range assignor gives shopper partitions)."""
    share = max(1, partitions // workers)
    return lambda pid: anchor_partition(pid, partitions) < share


def peer_rows(products: int, orders: int, seed: int, workers: int, partitions: int, path: str) -> None:
    """The rows of every anchor the first worker does not count, as the other workers publish
    them, one JSON line each (``anchor``, ``t0``, ``ts``: their latest order, ``row``), written
    to ``path``."""
    mine, bought = owned_by_first(partitions, workers), BoughtTogether()
    bought.owns = lambda pid: not mine(pid)
    for o in large_cart_orders(products, orders, seed):
        bought.observe_basket([line.product_id for line in o.lines], o.ts)
    with open(path, "wb") as out:
        for anchor in bought.take_touched():
            out.write(orjson.dumps({"anchor": anchor, "t0": bought.t0, "ts": bought.latest,
                                    "row": bought.row(anchor)}) + b"\n")


def learner_memory(products: int, orders: int, seed: int = 7, workers: int = 1, partitions: int = 8) -> dict:
    """Resident memory of the catalog and of the learners after ``orders`` large-cart orders
    over ``products`` products, and how fast the orders were learned; with ``workers`` above 1,
    of one worker of them (its own pairs counted, the others' rows adopted)."""
    data = large_cart_orders(products, orders, seed)
    themes = max(1, products // THEME_SIZE)
    prices = {line.product_id: line.price for o in data for line in o.lines}
    start = resident_bytes()
    engine = OfferEngine(OfferRules())
    for n in range(products):
        pid = f"p{n}"
        engine.catalog.upsert(Product(pid, prices.get(pid, 10.0), category=f"theme-{n % themes}"))
    catalog = resident_bytes()
    if workers > 1:
        engine.bought.owns = owned_by_first(partitions, workers)
    began, lines = time.perf_counter(), 0
    for o in data:
        engine.learn_basket(Basket(o.user_id, o.ts, o.lines, event_id=o.order_id))
        lines += len(o.lines)
    seconds = time.perf_counter() - began
    learned = resident_bytes()
    bought = engine.bought
    counted = sum(len(row) for row in bought._pairs.values())
    rows = counted_rows_bytes(bought)
    adopted = _adopt_peer_rows(bought, products, orders, seed, workers, partitions) if workers > 1 else 0
    shared = resident_bytes()
    pairs = counted + adopted
    return {"products": products, "orders": orders, "workers": workers, "partitions": partitions,
            "lines_per_order": round(lines / max(1, orders), 1),
            "products_ordered": bought.products, "pairs_stored": pairs, "pairs_counted": counted,
            "pair_updates": engine.tally["updates.pairs"],
            "catalog_mib": round((catalog - start) / MIB, 1), "learners_mib": round((shared - catalog) / MIB, 1),
            "adopted_mib": round((shared - learned) / MIB, 1),
            "counted_rows_mib": None if rows is None else round(rows / MIB, 1),
            "total_mib": round((shared - start) / MIB, 1),
            "bytes_per_pair": round((shared - catalog) / max(1, pairs), 1),
            "bytes_per_adopted_pair": round((shared - learned) / max(1, adopted), 1) if adopted else None,
            "orders_per_s": round(orders / seconds, 1), "lines_per_s": round(lines / seconds)}


def counted_rows_bytes(bought: BoughtTogether) -> Optional[int]:
    """What the counted rows hold, exactly, when they are the compiled kernels' PairRows (their
    arrays included); None for the Python version's dictionaries, whose floats may be shared."""
    rows = [row for row in bought._pairs.values() if type(row) is not SharedRow]
    if PairRow is None or any(type(row) is not PairRow for row in rows):
        return None
    return sum(sys.getsizeof(row) for row in rows)


def _adopt_peer_rows(bought: BoughtTogether, products: int, orders: int, seed: int, workers: int,
                     partitions: int) -> int:
    """The other workers' rows, counted in a child process, adopted one line at a time."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as rows:
        subprocess.run([sys.executable, "-c", "import sys; from nextoffer.benchmarks.learners import peer_rows; "
                        "peer_rows(*map(int, sys.argv[1:6]), sys.argv[6])", str(products), str(orders), str(seed),
                        str(workers), str(partitions), rows.name], check=True)
        adopted = 0
        with open(rows.name, "rb") as lines:
            for line in lines:
                record = orjson.loads(line)
                bought.adopt(record["anchor"], record["row"], record["t0"], record["ts"])
                adopted += len(bought.row(record["anchor"]))
        return adopted
