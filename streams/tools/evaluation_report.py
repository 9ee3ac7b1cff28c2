"""``nextoffer evaluate``: the offline replay of a data set through the workers' engine, with baselines.

Runs :mod:`nextoffer.streams.tools.evaluation` on the orders of an Online Retail-style file, prints a
table, writes a JSON report and a PNG plot of each method's hit rate over time.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import platform
import time
from pathlib import Path
from typing import Optional

import orjson

from nextoffer.streams.tools.evaluation import (BoughtTogetherCounts, EngineMethod, MostPopular, Order, evaluate,
                                                orders_from, replay_events)
from nextoffer.models.bought_together import kernels_label
from nextoffer.models.engine import LearnerSettings, OfferEngine
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.codecs import decode_event
from nextoffer.streams.tools.exports import ColumnMap, read_orders
from nextoffer.streams.tools.datasets import detect_format, read_invoices, rees46_events, rees46_invoices
from nextoffer.streams.tools.plots import save_lines


def load_orders(path: Path, limit: Optional[int] = None, columns: Optional[ColumnMap] = None) -> list[Order]:
    """The orders of a file, in time order (the first ``limit``): through ``columns`` (a store's
    own CSV or Parquet export), else as the Online Retail or REES46 file it is."""
    if columns is not None:
        return orders_from(read_orders(path, columns))[:limit]
    fmt = detect_format(path)
    if fmt not in ("online-retail", "rees46"):
        raise ValueError(f"{path}: evaluate reads Online Retail or REES46 CSV (this is {fmt}); for another "
                         "export map its columns with --columns user=...,order=...,product=...,price=...,time=...")
    return orders_from(read_invoices(path) if fmt == "online-retail" else rees46_invoices(path))[:limit]


def event_shares(path: Path, rules: OfferRules, limit: Optional[int] = None,
                 learners: LearnerSettings = LearnerSettings()) -> Optional[dict]:
    """For a file of shopping events (REES46): every event replayed through the engine, and the
    share of events that got an offer, by placement and kind (None for a file of orders)."""
    if detect_format(path) != "rees46":
        return None

    def events():
        decoded = (decode_event(r.topic, orjson.dumps(r.value)) for r in rees46_events(path))
        return itertools.islice(decoded, limit)
    return {name: replay_events(events(), OfferEngine(r, learners)).report()
            for name, r in (("configured rules", rules),
                            ("relevance-only rules", dataclasses.replace(rules, price_rules=False)))}


def run_evaluation(path: Path, orders: list[Order], rules: OfferRules, warm_up: float = 0.8,
                   k: int = 3, learners: LearnerSettings = LearnerSettings()) -> dict:
    """Replay ``orders`` (read from ``path``); return the report (methods, figures, timings).
    The engines learn with ``learners`` (the NEXTOFFER_* learner settings, as a worker does)."""
    started = time.perf_counter()
    warm = int(len(orders) * warm_up)

    def engine(r: OfferRules) -> OfferEngine:
        return OfferEngine(r, learners)
    engines = [EngineMethod("nextoffer, relevance-only rules", dataclasses.replace(rules, price_rules=False),
                            engine),
               EngineMethod("nextoffer, configured rules", rules, engine)]
    methods = [MostPopular(), BoughtTogetherCounts(False, warm), BoughtTogetherCounts(True), *engines]
    scores, info = evaluate(orders, methods, warm_up, k)
    core = {m.name: round(m.events / info["seconds"][m.name]) for m in engines}
    return {
        "data": str(path), "orders": info["orders"], "warm_up_orders": info["warm_up_orders"],
        "scored_orders": info["scored_orders"], "k": k,
        "methods": [{"name": s.name, "hit_rate": round(s.hit_rate, 4), "hits": s.hits,
                     "coverage": round(s.coverage, 4), "repeat_hit_rate": rounded(s.repeat_hit_rate),
                     "new_hit_rate": rounded(s.new_hit_rate), "repeat_orders": s.repeat[0],
                     "new_orders": s.new[0]} for s in scores],
        "curves": {s.name: s.curve for s in scores},
        "core_events_per_second": core,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
                   f"{kernels_label(learners.compiled_kernels)}",
    }


def rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def write_plot(report: dict, path: Path) -> None:
    """Cumulative hit rate @k over the scored orders, one line per method."""
    lines = [(f"{name} ({curve[-1]:.3f})" if curve else name, range(1, len(curve) + 1), curve, "-")
             for name, curve in report["curves"].items()]
    save_lines(path, lines, "scored orders, in time order", f"hit rate @{report['k']} (cumulative)",
               f"{Path(report['data']).name}: {report['scored_orders']} scored orders "
               f"after {report['warm_up_orders']} warm-up orders", (0, 1))


def save(report: dict, json_path: Path) -> None:
    slim = {k: v for k, v in report.items() if k != "curves"}
    json_path.write_text(json.dumps(slim, indent=2) + "\n")
