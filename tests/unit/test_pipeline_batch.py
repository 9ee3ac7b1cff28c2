"""ShopperPipeline in batches: every event applied in order, then one Redis round trip for the
batch's offers, and only then the offers on their topic; dead letters and orders go with it."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem, Product
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.codecs import Limits, decode_state
from nextoffer.streams.worker.pipeline import DeliveryFailed, OfferWriter, Outputs, ShopperPipeline
from nextoffer.streams.io.store import MemoryOfferStore
from nextoffer.streams.worker.rejections import DeadLettered

T0 = 1_700_000_000.0


class Recorder(MemoryOfferStore):
    """The store, logging every round trip into the shared ``log``."""

    def __init__(self, log: list) -> None:
        super().__init__(ttl=60)
        self.log = log

    async def put_many(self, writes):
        self.log.append(("redis", len(writes)))
        await super().put_many(writes)


def make():
    log: list = []

    def output(name):
        async def send(key, value):
            log.append((name, orjson.loads(value)))
        return send
    engine = OfferEngine(OfferRules(exploration=0.0))
    for pid, price, tier in (("s-1", 500.0, 1), ("s-2", 600.0, 2)):
        engine.update_product(Product(pid, price, family="s", tier=tier, stock=5))
    for n in range(3):
        engine.learn_basket(Basket(f"h{n}", T0, (LineItem("s-1", 1, 500.0), LineItem("case", 1, 20.0))))
    pipeline = ShopperPipeline(engine, {}, OfferWriter(Recorder(log)),
                               Outputs(output("offers"), output("dead_letters"), output("baskets")), Limits())
    return pipeline, log


def view(user: str, n: int) -> bytes:
    return orjson.dumps({"event_id": f"{user}-{n}", "type": "view", "user_id": user, "product_id": "s-1",
                         "ts": T0 + n})


def test_a_batch_writes_redis_once_before_any_offer_is_published():
    pipeline, log = make()
    for n, user in enumerate(["u1", "u2", "u3"]):
        pipeline.apply("clickstream", 0, n, user.encode(), view(user, n), context=n)
    pipeline.apply("clickstream", 0, 3, b"u4", b"{broken", context=3)
    assert log == [], "nothing leaves before the flush"
    published = asyncio.run(pipeline.flush())
    assert [kind for kind, _ in log] == ["redis", "offers", "offers", "offers", "dead_letters"]
    assert log[0] == ("redis", 3)
    assert [context for context, _ in published] == [0, 1, 2]
    assert [offer.user_id for _, offer in published] == ["u1", "u2", "u3"]
    assert asyncio.run(pipeline.flush()) == [] and len(log) == 5, "a flush publishes a batch once"


def test_events_of_one_shopper_in_a_batch_are_applied_in_order_and_once():
    pipeline, log = make()
    for n in range(3):
        pipeline.apply("clickstream", 0, n, b"u1", view("u1", n))
    pipeline.apply("clickstream", 0, 3, b"u1", view("u1", 1))           # a redelivery
    asyncio.run(pipeline.flush())
    assert pipeline.stats["events.duplicate"] == 1
    offers = [value for kind, value in log if kind == "offers"]
    assert [o["event_id"] for o in offers] == ["u1-0", "u1-1", "u1-2"]
    assert pipeline.stats["events.clickstream.view"] == 4


def test_states_are_saved_only_after_kafka_has_the_batch_s_outputs():
    log: list = []
    pipeline, _ = make()
    deliveries: list[asyncio.Future] = []

    async def save(partition, user_id, value):
        log.append(("state", partition, user_id, all(d.done() for d in deliveries)))
        pipeline.shoppers[user_id] = value
    pipeline.save = save

    async def send(key, value):
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, future.set_result, None)
        deliveries.append(future)
        return future
    pipeline.outputs = Outputs(send, send, send)
    pipeline.apply("clickstream", 3, 0, b"u1", view("u1", 0))
    pipeline.apply("clickstream", 3, 1, b"u1", view("u1", 1))
    asyncio.run(pipeline.flush())
    assert log == [("state", 3, "u1", True)], \
        "one write per shopper, to its events' partition, after every delivery"
    assert decode_state(pipeline.shoppers["u1"]).seen[-2:] == ["u1-0", "u1-1"], "the state holds both events"


def test_a_refused_record_is_sent_again_until_kafka_takes_it_and_only_then_the_states_are_saved():
    pipeline, log = make()
    pauses, refusals = [], {"left": 2}

    async def sleep(seconds):
        pauses.append(seconds)

    async def offers(key, value):
        if refusals["left"]:
            refusals["left"] -= 1
            raise RuntimeError("MessageSizeTooLargeError")
        log.append(("offers", orjson.loads(value)))
    pipeline.outputs = Outputs(offers, pipeline.outputs.dead_letters, pipeline.outputs.baskets)
    pipeline.sleep = sleep
    pipeline.apply("clickstream", 0, 0, b"u1", view("u1", 0))
    asyncio.run(pipeline.flush())
    assert pauses == [0.1, 0.2], "a growing pause between attempts"
    assert [kind for kind, _ in log] == ["redis", "offers"], "the offer is on its topic once"
    assert pipeline.stats["delivery.refused"] == 2 and pipeline.stats["delivery.retries"] == 2
    assert "u1" in pipeline.shoppers


def test_a_delivery_refused_for_the_whole_timeout_saves_no_state():
    pipeline, _ = make()
    now = [0.0]

    async def sleep(seconds):
        now[0] += seconds

    async def broken(key, value):
        raise RuntimeError("broker refuses")
    pipeline.outputs = Outputs(broken, broken, broken)
    pipeline.sleep, pipeline.monotonic, pipeline.delivery_timeout = sleep, lambda: now[0], 30.0
    pipeline.apply("clickstream", 0, 0, b"u1", view("u1", 0))
    with pytest.raises(DeliveryFailed, match="refused 1 records for 30 s"):
        asyncio.run(pipeline.flush())
    assert "u1" not in pipeline.shoppers, "no state is saved ahead of its outputs"
    assert 30.0 <= now[0] < 40.0


def test_a_bad_record_read_again_is_dead_lettered_once():
    pipeline, log = make()
    for _ in range(3):   # the consumer reads the partition again (offset guard, rebalance)
        pipeline.apply("clickstream", 2, 41, b"u1", b"{broken")
        asyncio.run(pipeline.flush())
    assert [kind for kind, _ in log] == ["dead_letters"] and log[0][1]["offset"] == 41
    assert pipeline.stats["dead_letter.repeat"] == 2
    pipeline.apply("clickstream", 2, 42, b"u1", b"{broken")      # another record: its own letter
    asyncio.run(pipeline.flush())
    assert [kind for kind, _ in log] == ["dead_letters", "dead_letters"]


def test_the_dead_lettered_offsets_are_saved_with_their_partition_after_the_letters_are_confirmed():
    pipeline, log = make()
    saved: dict = {}

    async def save(partition, key, value):
        log.append(("marks", partition))
        saved[key] = value
    pipeline.dead_lettered = DeadLettered(saved, save)
    pipeline.apply("clickstream", 2, 41, b"u1", b"{broken")
    pipeline.apply("clickstream", 2, 42, b"u2", view("u2", 0))
    asyncio.run(pipeline.flush())
    assert [kind for kind, _ in log] == ["redis", "offers", "dead_letters", "marks"]
    assert orjson.loads(saved[2]) == {"clickstream": [[41, 41]]}
    # the worker that takes partition 2 over (or this one, restarted) recovers the table
    again, log_again = make()
    again.dead_lettered = DeadLettered(dict(saved), save)
    again.apply("clickstream", 2, 41, b"u1", b"{broken")
    again.apply("clickstream", 2, 43, b"u1", b"{broken")
    asyncio.run(again.flush())
    assert [dl["offset"] for kind, dl in log_again if kind == "dead_letters"] == [43], \
        "the record dead-lettered before is not dead-lettered again"
    assert again.stats["dead_letter.repeat"] == 1


def test_a_dead_letter_kafka_did_not_confirm_leaves_no_mark():
    pipeline, _ = make()
    saved: dict = {}
    now = [0.0]

    async def sleep(seconds):
        now[0] += seconds

    async def broken(key, value):
        raise RuntimeError("broker refuses")
    pipeline.dead_lettered = DeadLettered(saved)
    pipeline.outputs = Outputs(pipeline.outputs.offers, broken, pipeline.outputs.baskets)
    pipeline.sleep, pipeline.monotonic, pipeline.delivery_timeout = sleep, lambda: now[0], 5.0
    pipeline.apply("clickstream", 1, 7, b"u1", b"{broken")
    with pytest.raises(DeliveryFailed):
        asyncio.run(pipeline.flush())
    assert saved == {}, "the record is dead-lettered again when its event comes round"
    assert DeadLettered(saved).first("clickstream", 1, 7)


def test_a_shoppers_run_of_events_saves_the_states_decoding_each_event_would():
    """A pending shopper is taken as the object its state was encoded from: the saved states are
    the ones decoding the pending bytes for every event gives."""
    def cart(user: str, n: int, kind: str, pid=None) -> bytes:
        return orjson.dumps({"event_id": f"{user}-c{n}", "type": kind, "user_id": user, "ts": T0 + n,
                             **({"product_id": pid, "price": 20.0} if pid else {})})

    events = [("clickstream", view("u1", 0)), ("cart", cart("u1", 1, "add", "s-1")),
              ("cart", cart("u1", 2, "add", "case")), ("clickstream", view("u2", 3)),
              ("cart", cart("u1", 4, "checkout")), ("cart", cart("u1", 5, "purchase"))]
    saved = []
    for reuse in (True, False):
        pipeline, _ = make()
        for n, (topic, value) in enumerate(events):
            pipeline.apply(topic, 0, n, orjson.loads(value)["user_id"].encode(), value)
            if not reuse:
                pipeline._forget_object("u1")
            if n == 2:
                asyncio.run(pipeline.flush())          # the rest reads the batch being published
        asyncio.run(pipeline.flush())
        saved.append(dict(pipeline.shoppers))
    assert saved[0] == saved[1] and decode_state(saved[0]["u1"]).orders == 1


def test_an_event_that_fails_half_applied_leaves_the_next_one_the_saved_bytes(monkeypatch):
    pipeline, _ = make()
    pipeline.apply("clickstream", 0, 0, b"u1", view("u1", 0))
    before = pipeline._batch.states["u1"][1]
    engine_process = pipeline.engine.process

    def half_then_fail(shopper, event, generated_at):
        shopper.orders += 100                    # changed, then the event fails
        raise RuntimeError("model failure")
    monkeypatch.setattr(pipeline.engine, "process", half_then_fail)
    with pytest.raises(RuntimeError):
        pipeline.apply("clickstream", 0, 1, b"u1", view("u1", 1))
    monkeypatch.setattr(pipeline.engine, "process", engine_process)
    assert pipeline._batch.states["u1"][1:] == (before, None)
    pipeline.apply("clickstream", 0, 2, b"u1", view("u1", 2))
    assert decode_state(pipeline._batch.states["u1"][1]).orders == 0
