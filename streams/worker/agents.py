"""The worker's agents and tasks: thin wrappers around :mod:`nextoffer.streams.worker.pipeline`.

The shopper agent is the only writer of the ``shoppers`` table and keeps
``concurrency=1``: events of one shopper are applied one after another.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import orjson

from nextoffer.models.engine import OfferEngine
from nextoffer.streams.worker import heap
from nextoffer.streams.worker.app import app, settings
from nextoffer.streams.worker.pipeline import DeliveryFailed, OfferWriter, Outputs, ShopperPipeline
from nextoffer.streams.io.admin import group_offsets
from nextoffer.streams.io.figures import Figures
from nextoffer.streams.worker.metrics import WorkerMetrics
from nextoffer.streams.io.shared_learning import ACCEPTANCE_KEY, SharedLearning
from nextoffer.streams.io.showcases import ShowcaseWriter
from nextoffer.streams.io.store import RedisOfferStore
from nextoffer.streams.io.topics import SHOPPER_INPUTS
from nextoffer.streams.worker.rejections import DeadLettered
from nextoffer.streams.worker.tables import dead_lettered, shoppers
from nextoffer.streams.worker.topics import (activity_topic, baskets_topic, catalog_topic, complements_topic,
                                             dead_letter_topic, decisions_topic, models_topic, offers_topic,
                                             shopper_inputs)
from nextoffer.streams.worker.faust_internals import FaustPartitions, consumer_lag
from nextoffer.streams.worker.watchdog import EXIT_RESTART, OffsetGuard

log = logging.getLogger("nextoffer")

worker_id = f"{socket.gethostname()}-{os.getpid()}"
engine = OfferEngine(settings.rules, settings.learners, showcases=settings.showcases)
shared = SharedLearning(settings, engine, worker=worker_id)
writer = OfferWriter(RedisOfferStore(settings.redis_url, settings.redis_ttl))


def _sender(topic):
    """Sends through the app's producer straight away (Faust's ``topic.send`` costs a future and
    callbacks per record); keyed records get Kafka's default partition for their key unless one
    is given (the complements topic's records go to their anchor's). Returns the delivery, which
    the pipeline awaits before it saves the batch's states."""
    name = topic.get_topic_name()

    async def send(key, value, partition=None):
        return await app.producer.send(name, key, value, partition, None, None)
    return send


send_complements = _sender(complements_topic)
pipeline = ShopperPipeline(
    engine, shoppers, writer,
    Outputs(offers=_sender(offers_topic), dead_letters=_sender(dead_letter_topic),
            baskets=_sender(baskets_topic),
            activity=_sender(activity_topic) if settings.showcase_interval > 0 else None,
            decisions=_sender(decisions_topic) if settings.rules.decision_log else None),
    settings.limits(),
    prefix=settings.topic_prefix, redis_key=settings.redis_key, save=shoppers.save,
    delivery_timeout=settings.delivery_timeout,
    dead_lettered=DeadLettered(dead_lettered, save=dead_lettered.save),
    activity_every=settings.showcase_interval,
    max_touched=settings.showcase_max_writes if settings.showcase_interval > 0 else 0)
showcase_writer = ShowcaseWriter(settings, engine)
shared.on_row = showcase_writer.row_adopted



def _lag() -> dict:
    """Input records not processed yet per partition (:func:`consumer_lag`)."""
    return consumer_lag(app, guard.consumer.inputs(), guard.expected, guard.holes)


metrics = WorkerMetrics(Figures(pipeline.stats, engine.tally, pipeline.dead_letters),
                        lambda: _lag() if app.consumer else {}, rereads=lambda: guard.rereads)

guard = OffsetGuard(FaustPartitions(app, (settings.topic(n) for n in SHOPPER_INPUTS),
                                   stage=lambda: f"{pipeline.stage} {pipeline.record}",
                                   read_group=lambda: group_offsets(settings, settings.topic(settings.app_id))),
                    stall_after=settings.stall_timeout, restart_after=settings.stall_restart,
                    on_stuck=lambda why: exit_for_restart(why), unconfirmed=lambda: batches.unconfirmed(),
                    delivering=lambda: pipeline.refused)


async def exit_for_restart(why: str) -> None:
    """A stuck worker exits with EXIT_RESTART and its supervisor starts a fresh one. First it
    commits, where it can, the first offset of each partition it has not applied, since Faust may
    have committed past records it dropped, and never past an event whose outputs Kafka has not
    confirmed (:meth:`Batches.unconfirmed`); what comes round again is skipped by event_id."""
    log.critical("worker stuck: %s; exiting with code %d to be started again", why, EXIT_RESTART)
    positions = guard.safe_positions()
    try:
        await asyncio.wait_for(guard.consumer.commit(positions), timeout=5.0)
        log.info("committed the first unapplied offsets: %s", positions)
    except Exception as exc:  # noqa: BLE001 - exiting anyway; the committed offsets stand
        log.warning("could not commit the first unapplied offsets (%s: %s)", type(exc).__name__, exc)
    logging.shutdown()
    os._exit(EXIT_RESTART)


class Batches:
    """Events applied but not yet published, and the stream to acknowledge them on.

    The agent applies events as they come; the publisher task (below) takes what has
    accumulated, publishes it, saves the states and only then acknowledges the events, so their
    offsets are committed after everything they produced is safe. The agent waits when a batch
    is full, which bounds what is held in memory.
    """

    def __init__(self) -> None:
        self.events: list = []
        self.publishing: list = []         # the events of the batch being published
        self.stream = None
        self.waiting = asyncio.Event()     # events to publish
        self.room = asyncio.Event()        # the batch may grow
        self.room.set()

    def unconfirmed(self) -> dict:
        """Per partition, the first offset whose outputs Kafka has not confirmed yet: no commit
        (the offset guard's, the stuck exit's) may go past it."""
        first: dict = {}
        for event in self.publishing + self.events:
            m = event.message
            if m.tp not in first or m.offset < first[m.tp]:
                first[m.tp] = m.offset
        return first


batches = Batches()


@app.agent(shopper_inputs, concurrency=1)
async def shopper_events(stream):
    """Clickstream, cart and offer-feedback events -> shopper state -> offers. Events are applied
    one by one here; their outputs are published in batches by :func:`publish_batches`."""
    await shared.ready.wait()
    stream.enable_acks = False          # acknowledged once published (publish_batches)
    batches.stream = stream
    async for event in stream.events():
        m = event.message
        await guard.seen(m.tp, m.offset)  # re-reads records the consumer dropped, if any
        try:
            pipeline.apply(m.topic, m.partition, m.offset, m.key, m.value, context=m.timestamp)
        except Exception as exc:  # noqa: BLE001 - an agent exception would still ack the event
            log.exception("failed on %s[%d]@%d", m.topic, m.partition, m.offset)
            pipeline.reject_later(m.topic, m.partition, m.offset, m.key, m.value,
                                  f"internal error: {type(exc).__name__}: {exc}"[:300])
        batches.events.append(event)
        batches.waiting.set()
        if len(batches.events) >= settings.batch_max:
            batches.room.clear()
            await batches.room.wait()


@app.task
async def publish_batches() -> None:
    """Publish what the agent applied, at most ``batch_wait`` seconds after the first event."""
    while True:
        await batches.waiting.wait()
        await asyncio.sleep(settings.batch_wait)
        await publish_pending()


async def publish_pending() -> None:
    """Publish what was applied, save the states, then acknowledge the events. A batch whose
    outputs Kafka does not confirm is never acknowledged: the worker stops for a restart."""
    batches.waiting.clear()
    events, batches.events = batches.events, []
    batches.publishing = events
    try:
        published = await pipeline.flush()
    except Exception as exc:  # noqa: BLE001 - DeliveryFailed, or anything else: nothing is acknowledged
        log.critical("a batch's outputs were not confirmed (%s: %s)", type(exc).__name__, exc,
                     exc_info=not isinstance(exc, DeliveryFailed))
        await exit_for_restart(f"{len(events)} events whose outputs Kafka did not confirm")
        return
    for event in events:
        await batches.stream.ack(event)
    batches.publishing = []
    batches.room.set()
    now = time.time()
    for produced_at, _offer in published:
        if produced_at:
            metrics.observe_latency(now - produced_at)


@app.agent(catalog_topic)
async def catalog_updates(stream):
    """Dead-letters unusable catalog messages; :mod:`nextoffer.streams.io.shared_learning` applies the rest on every worker."""
    async for event in stream.events():
        m = event.message
        await pipeline.check_product(m.topic, m.partition, m.offset, m.key, m.value)


@app.task
async def learn_shared() -> None:
    await shared.run()


@app.task
async def keep_collector_pauses_short() -> None:
    """Once the catalog and the shared learners are loaded, and then every
    ``gc_freeze_interval`` seconds, freeze what survives (:mod:`nextoffer.streams.worker.heap`)."""
    await shared.ready.wait()
    while True:
        objects, seconds = heap.freeze()
        log.info("garbage collector: %d long-lived objects frozen (%.0f ms)", objects, seconds * 1000)
        if settings.gc_freeze_interval <= 0:
            return
        await asyncio.sleep(settings.gc_freeze_interval)


@app.task
async def checkpoint_models() -> None:
    """Every ``model_checkpoint_interval`` seconds, the acceptance model and the learned
    cross-sell order (learned only from this worker's shoppers' outcomes and orders) to the
    compacted models topic, when they have learned something."""
    await shared.ready.wait()

    def learned() -> int:
        return engine.acceptance.updates + (engine.ranker.updates if engine.ranker is not None else 0)
    written, send_checkpoint = learned(), _sender(models_topic)
    while settings.model_checkpoint_interval > 0:
        await asyncio.sleep(settings.model_checkpoint_interval)
        if learned() != written:
            written = learned()
            ranker = {"ranker": engine.ranker.snapshot()} if engine.ranker is not None else {}
            snapshot = orjson.dumps({**engine.acceptance.snapshot(), **ranker, "worker": worker_id})
            try:
                await (await send_checkpoint(ACCEPTANCE_KEY, snapshot))
            except Exception as exc:  # noqa: BLE001 - the next checkpoint tries again
                written = -1
                log.warning("could not checkpoint the acceptance model: %s: %s", type(exc).__name__, exc)


@app.task
async def share_complements() -> None:
    """Every ``complements_interval`` seconds, the "bought together" rows this worker counts and
    changed, then its partitions' markers, to the compacted complements topic."""
    await shared.ready.wait()
    while shared.pairs is not None:
        await asyncio.sleep(settings.complements_interval)
        await shared.publish_pairs(send_complements)


@app.on_partitions_revoked.connect
async def share_complements_of_revoked_partitions(sender, revoked, **kwargs) -> None:
    guard.consumer.hold_rereads()       # re-reads that hold, from the fetcher this rebalance starts
    await shared.on_revoked({tp for tp in revoked if tp.topic in guard.consumer.topics}, send_complements)


@app.task
async def write_showcases() -> None:
    """Every ``showcase_interval`` seconds: the store's showcases, and those of the products and
    shoppers of this worker's events since the last round, to Redis."""
    await shared.ready.wait()
    send_activity = _sender(activity_topic)
    while settings.showcase_interval > 0:
        await asyncio.sleep(settings.showcase_interval)
        quiet = pipeline.take_activity()         # views no batch took (the stream went quiet)
        if quiet is not None:
            try:
                await (await send_activity(None, quiet))
            except Exception as exc:  # noqa: BLE001 - approximate counts: these views are not counted
                log.warning("could not publish view counts: %s: %s", type(exc).__name__, exc)
        products, shoppers = pipeline.take_touched()
        if pipeline.latest_ts is None:
            continue
        products = showcase_writer.due(products, time.monotonic())
        try:
            await showcase_writer.write_round(products, shoppers, pipeline.latest_ts, put_showcases)
        except Exception as exc:  # noqa: BLE001 - the next round writes them again
            log.warning("could not write the showcases: %s: %s", type(exc).__name__, exc)


async def put_showcases(writes) -> None:
    """One slice of a showcase round to Redis (each hash expiring like the lookup), counted."""
    await writer.store.put_hashes(writes, settings.redis_ttl)
    pipeline.stats["showcases.written"] += len(writes)


@app.timer(1.0)
async def retry_offer_writes() -> None:
    await writer.flush()


@app.timer(1.0)
async def reread_dropped_tails() -> None:
    if shared.ready.is_set():
        try:
            await guard.check_idle()
        except Exception as exc:  # noqa: BLE001 - a failed check is tried again a second later
            log.warning("could not check the input partitions: %s: %s", type(exc).__name__, exc)


@app.on_partitions_assigned.connect
async def keep_offsets_of_kept_partitions(sender, assigned, **kwargs) -> None:
    await guard.on_assigned(assigned)
    shared.on_assigned({tp for tp in assigned if tp.topic in guard.consumer.topics})


@app.task
async def serve_metrics() -> None:
    metrics.serve(settings.metrics_port)


@app.timer(settings.report_interval)
async def publish_status() -> None:
    """The dashboard's snapshot of this worker, in Redis (expires if the worker stops)."""
    extra = {"worker": worker_id, "partitions": sorted(f"{t}[{p}]" for t, p in _lag()),
             "complements": [[c.anchor_id, c.product_id, c.attachment_rate, c.lift]
                             for c in engine.bought.strongest_pairs(10)],
             "upgrades": [[a, b, n] for (a, b), n in pipeline.upgrades.most_common(10)],
             "learned": {"products": len(engine.catalog), "orders": shared.applied["baskets"],
                         "learning_partitions": sorted(shared.pairs.owned) if shared.pairs is not None else None,
                         "orders_counted_again": shared.applied["counted_again"]}}
    try:
        await writer.store.put_status(settings.status_key(worker_id), orjson.dumps(metrics.snapshot(extra)),
                                      ttl=max(int(3 * settings.report_interval), 30))
    except Exception as exc:  # noqa: BLE001 - the dashboard is not worth a stalled worker
        log.debug("could not publish the status snapshot: %s", exc)


@app.timer(settings.report_interval)
async def report() -> None:
    stats = pipeline.stats
    offers = sum(v for k, v in stats.items() if k.startswith("offers."))
    events = sum(v for k, v in stats.items() if k.startswith("events.") and k != "events.duplicate")
    log.info("processed %d events (%d duplicates skipped), %d offers, %d dead letters; "
             "learned %d products, %d orders; %d partition re-reads", events, stats["events.duplicate"],
             offers, stats["dead_letter"], len(engine.catalog), shared.applied["baskets"], guard.rereads)


