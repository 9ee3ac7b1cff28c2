"""A worker's figures: Prometheus metrics, and a snapshot in Redis for the dashboard.

Counts already kept by the pipeline (``ShopperPipeline.stats``) and the engine
(``OfferEngine.tally``) are read when Prometheus scrapes, so the hot path pays
only for the latency histogram. Every worker also writes a JSON snapshot to
``{prefix}nextoffer:worker:{worker_id}`` (expiring), which ``nextoffer serve``
adds up across workers for its dashboard.
"""
from __future__ import annotations

import collections
import logging
import time
from typing import Callable, Iterable, Mapping, Optional

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from nextoffer.streams.io.figures import Figures

log = logging.getLogger("nextoffer")

#: Offer latency buckets (seconds from the event's produce time to its offer in Redis).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

class WorkerMetrics:
    """The Prometheus collector of one worker (scraped at ``/metrics`` on the metrics port)."""

    def __init__(self, figures: Figures, lag: Callable[[], Mapping[tuple[str, int], int]],
                 registry: Optional[CollectorRegistry] = None, rereads: Callable[[], int] = lambda: 0) -> None:
        self.figures = figures
        self.lag = lag
        self.rereads = rereads
        self.registry = registry or CollectorRegistry()
        self.latency = Histogram("nextoffer_offer_latency_seconds",
                                 "Seconds from an event's produce time to its offer written to Redis.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.recent = collections.deque(maxlen=4096)   # (when, latency) of the latest offers
        self.window = 60.0                              # seconds the dashboard's quantiles cover
        self.registry.register(self)

    def observe_latency(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.latency.observe(seconds)
        self.recent.append((time.monotonic(), seconds))

    def serve(self, port: int, addr: str = "0.0.0.0") -> bool:
        """Serve ``/metrics``; a taken port is logged, not fatal (the worker goes on)."""
        if not port:
            return False
        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            log.warning("metrics not served: port %d: %s (set NEXTOFFER_METRICS_PORT to a free port, "
                        "0 to turn metrics off)", port, exc.strerror or exc)
            return False
        log.info("metrics at http://%s:%d/metrics", addr, port)
        return True

    def collect(self) -> Iterable:
        f = self.figures
        yield _counter("nextoffer_events", "Shopper events processed, by topic and type.",
                       ("topic", "type"), f.by_prefix(f.stats, "events."), skip=lambda k: len(k) != 2)
        yield _counter("nextoffer_duplicate_events", "Events skipped as already applied (same event_id).",
                       (), {(): f.stats.get("events.duplicate", 0)})
        yield _counter("nextoffer_delivery_refused", "Output records Kafka refused (each sent again, "
                       "until NEXTOFFER_DELIVERY_TIMEOUT).", (), {(): f.stats.get("delivery.refused", 0)})
        yield _counter("nextoffer_delivery_retries", "Times a batch's refused records were sent again.",
                       (), {(): f.stats.get("delivery.retries", 0)})
        yield _counter("nextoffer_partition_rereads", "Times an input partition was read again from records "
                       "the consumer had dropped (around rebalances).", (), {(): self.rereads()})
        yield _counter("nextoffer_dead_letters", "Input messages sent to the dead-letter topic, by reason.",
                       ("reason",), {(k,): v for k, v in f.dead_letters.items()})
        yield _counter("nextoffer_offers", "Offers published, by kind and placement.", ("kind", "placement"),
                       f.by_prefix(f.stats, "offers."))
        yield _counter("nextoffer_no_offers", "Events that got no offer, by reason.", ("reason",),
                       f.by_prefix(f.stats, "no_offer."))
        yield _counter("nextoffer_offer_outcomes", "Offered items settled by feedback or by the shopper's "
                       "next add or purchase.", ("kind", "placement", "outcome"), f.by_prefix(f.tally, "outcome."))
        yield _counter("nextoffer_segment_outcomes", "Offered items settled, by the shopper's segment "
                       "(first_time, repeat, high_value).", ("segment", "outcome"),
                       f.by_prefix(f.tally, "segment_outcome."))
        yield _counter("nextoffer_orders", "Orders, by group (treated or control).", ("group",),
                       f.by_prefix(f.tally, "orders."))
        yield _counter("nextoffer_orders_with_offer", "Orders that include an offered item, by group.",
                       ("group",), f.by_prefix(f.tally, "orders_with_offer."))
        yield _counter("nextoffer_order_value", "Value of orders, by group (currency of the prices).",
                       ("group",), f.by_prefix(f.tally, "order_value."))
        yield _counter("nextoffer_model_updates", "Updates of each online learner.", ("model",),
                       f.by_prefix(f.tally, "updates."))
        rates = GaugeMetricFamily("nextoffer_rate", "Acceptance rate, attach rate and AOV by group "
                                  "(NaN until known).", labels=("name", "group"))
        for name, group, value in self.rates():
            rates.add_metric((name, group), float("nan") if value is None else value)
        yield rates
        lag = GaugeMetricFamily("nextoffer_consumer_lag", "Input records not processed yet, by partition.",
                                labels=("topic", "partition"))
        for (topic, partition), value in sorted(self.lag().items()):
            lag.add_metric((topic, str(partition)), value)
        yield lag

    def rates(self) -> list[tuple[str, str, Optional[float]]]:
        f = self.figures
        return [("acceptance_rate", "treated", f.acceptance_rate()),
                ("attach_rate", "treated", f.attach_rate("treated")),
                ("aov", "treated", f.aov("treated")), ("aov", "control", f.aov("control"))]

    def snapshot(self, extra: Mapping) -> dict:
        """The dashboard's view of this worker: totals so far, current lag and latency quantiles."""
        f = self.figures
        since = time.monotonic() - self.window
        recent = sorted(latency for when, latency in list(self.recent) if when >= since)
        quantile = (lambda q: round(recent[min(len(recent) - 1, int(q * len(recent)))], 4)) if recent \
            else (lambda q: None)
        return {"ts": time.time(), "stats": dict(f.stats), "tally": dict(f.tally),
                "dead_letters": dict(f.dead_letters),
                "lag": {f"{t}[{p}]": v for (t, p), v in sorted(self.lag().items())},
                "latency": {"p50": quantile(0.5), "p95": quantile(0.95), "p99": quantile(0.99),
                            "count": len(recent)}, **extra}


def _counter(name: str, doc: str, labels: tuple, values: Mapping, skip=lambda k: False) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        if len(key) == len(labels) and not skip(key):
            family.add_metric(key, value)
    return family
