"""The core alone on a real workload: what a worker does to each event, without Kafka or Redis.

Each event of the workload (a store's orders replayed as a view, an add per line, a checkout and
the purchase) goes through what :meth:`ShopperPipeline.apply
<nextoffer.streams.worker.pipeline.ShopperPipeline.apply>` does to it: decoded and validated,
applied to its shopper's state (decoded from the bytes the table keeps, encoded again after),
decided by the engine, its offer encoded; each order is learned as every worker learns it. The
figure is events per CPU second on one core: the ceiling of a worker's drain rate on this
workload if the broker, Redis and the stack around the core cost nothing, and a quick A/B of a
change to the core (half a minute against the live benchmark's minutes).

>>> from nextoffer.benchmarks.replay import ReplayWorkload
>>> from nextoffer.models.events import LineItem
>>> from nextoffer.streams.tools.evaluation import Order
>>> w = ReplayWorkload([Order("o1", "u1", 0.0, (LineItem("tea", 1, 3.0), LineItem("pot", 1, 20.0)))])
>>> figures = core_rate(w, events=50)
>>> figures["events"], figures["orders_learned"], figures["events_per_s"] > 0
(50, 10, True)
"""
from __future__ import annotations

import time
from typing import Optional

import orjson

from nextoffer.models.bought_together import kernels_label
from nextoffer.models.engine import LearnerSettings, OfferEngine
from nextoffer.models.events import Product
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState
from nextoffer.streams.io.codecs import decode_event, decode_state, encode_offer, encode_state


#: The core benchmark's event times: from a fixed start, one event every millisecond (a store's
#: events at 1,000 a second), so that a run's offers depend on the code alone, not on how fast
#: the events were drawn: two runs of one release make the same offers.
EVENTS_START, EVENT_SPACING = 1_700_000_000.0, 0.001


def core_rate(workload, events: int, rules: Optional[OfferRules] = None,
              learners: LearnerSettings = LearnerSettings(), clock=time.process_time) -> dict:
    """Run ``events`` events of ``workload`` (a :class:`~nextoffer.benchmarks.replay.ReplayWorkload`)
    through the core; return events per CPU second and what they made. The events are drawn and
    serialised before the clock starts, at :data:`EVENT_SPACING` from :data:`EVENTS_START`."""
    engine = OfferEngine(rules or OfferRules(), learners)
    for entry in workload.catalog:
        engine.update_product(Product(entry["product_id"], entry["price"], category=entry.get("category")))
    records = [(topic, orjson.dumps(event)) for topic, _, event in
               (workload.next_event(EVENTS_START + n * EVENT_SPACING) for n in range(events))]
    states: dict[str, bytes] = {}
    offers = orders = 0
    started = clock()
    for topic, raw in records:
        event = decode_event(topic, raw)
        state = states.get(event.user_id)
        shopper = decode_state(state) if state is not None else ShopperState(event.user_id)
        outcome = engine.process(shopper, event, generated_at=event.ts)
        states[event.user_id] = encode_state(shopper)
        if outcome.offer is not None:
            offers += 1
            encode_offer(outcome.offer)
        if outcome.basket is not None:
            orders += 1
            engine.learn_basket(outcome.basket)
    seconds = clock() - started
    return {"events": events, "cpu_seconds": round(seconds, 3),
            "events_per_s": round(events / seconds) if seconds > 0 else None,
            "offers": offers, "orders_learned": orders, "kernels": kernels_label(learners.compiled_kernels)}
