import orjson
import pytest

from nextoffer.models.engine import Basket
from nextoffer.models.events import LineItem, Product
from nextoffer.streams.worker import agents
from nextoffer.streams.worker.pipeline import Outputs
from tests.agents.conftest import run

VIEW = {"event_id": "e1", "type": "view", "user_id": "u1", "product_id": "s-128", "ts": 1_700_000_000}


def _catalog(engine):
    engine.update_product(Product("s-128", 700.0, name="S 128GB", family="s", tier=1))
    engine.update_product(Product("s-256", 800.0, name="S 256GB", family="s", tier=2))


def test_a_view_yields_an_upsell_in_the_store_and_on_the_topic(harness):
    _catalog(agents.pipeline.engine)

    async def go():
        async with agents.shopper_events.test_context() as agent:
            agents.shared.ready.set()
            await harness.put(agent, "clickstream", VIEW)
    run(go())
    assert len(harness.offers) == 1
    key, offer = harness.offers[0]
    assert key == b"u1" and offer["kind"] == "upsell" and offer["placement"] == "product_page"
    assert offer["items"][0]["product_id"] == "s-256" and offer["event_id"] == "e1"
    stored = run(harness.store.get("nbo:u1", "product_page"))
    assert orjson.loads(stored) == offer
    assert orjson.loads(agents.shoppers["u1"])["v"] == ["s-128"]


def test_bad_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on(harness):
    _catalog(agents.pipeline.engine)

    async def go():
        async with agents.shopper_events.test_context() as agent:
            agents.shared.ready.set()
            await harness.put(agent, "clickstream", b"{oops", partition=2)
            await harness.put(agent, "cart", {**VIEW, "type": "view"})
            await harness.put(agent, "clickstream", {**VIEW, "user_id": "someone-else"})
            await harness.put(agent, "clickstream", VIEW, key=None)
            await harness.put(agent, "clickstream", VIEW)
    run(go())
    reasons = [dl["error"] for _, dl in harness.dead_letters]
    assert reasons[0].startswith("not JSON") and harness.dead_letters[0][1]["partition"] == 2
    assert harness.dead_letters[0][1]["raw"] == "{oops"
    assert reasons[1].startswith("unknown type 'view' for topic cart")
    assert "differs from user_id" in reasons[2]
    assert "no key" in reasons[3]
    assert len(harness.offers) == 1  # the good one still flows


def test_duplicate_events_are_applied_once(harness):
    _catalog(agents.pipeline.engine)
    add = {"event_id": "a1", "type": "add", "user_id": "u1", "product_id": "s-128", "price": 700, "ts": 1.0}

    async def go():
        async with agents.shopper_events.test_context() as agent:
            agents.shared.ready.set()
            await harness.put(agent, "cart", add)
            await harness.put(agent, "cart", add)
    run(go())
    assert orjson.loads(agents.shoppers["u1"])["c"] == {"s-128": [1, 700.0]}
    # Applied once, published once: a state is saved only after its offer reached Kafka.
    assert len(harness.offers) == 1


def test_a_purchase_publishes_its_basket_and_a_post_purchase_offer(harness):
    engine = agents.pipeline.engine
    for n in range(3):
        engine.learn_basket(Basket("x", 0.0, (LineItem("tea", 1, 6.0), LineItem("teapot", 1, 40.0))))
        engine.learn_basket(Basket("y", 0.0, (LineItem("cake", 1, 9.0),)))
    purchase = {"event_id": "p1", "type": "purchase", "user_id": "u1", "ts": 5.0,
                "items": [{"product_id": "teapot", "quantity": 1, "price": 40.0}]}

    async def go():
        async with agents.shopper_events.test_context() as agent:
            agents.shared.ready.set()
            await harness.put(agent, "cart", purchase)
    run(go())
    assert harness.baskets[0][1]["items"] == [["teapot", 1, 40.0]]
    offer = harness.offers[0][1]
    assert offer["placement"] == "post_purchase" and offer["items"][0]["product_id"] == "tea"
    assert "often bought with teapot" in offer["items"][0]["reason"]


def test_catalog_agent_dead_letters_bad_products(harness):
    async def go():
        async with agents.catalog_updates.test_context() as agent:
            await harness.put(agent, "catalog", {"product_id": "p1", "price": 0}, key="p1")
            await harness.put(agent, "catalog", {"product_id": "p2", "price": 5}, key="p2")
    run(go())
    assert [dl["error"] for _, dl in harness.dead_letters] == [
        "field 'price' must be > 0 for a catalog product, got 0.0"]


def test_a_batch_kafka_refuses_is_never_acknowledged_and_stops_the_worker(harness, monkeypatch):
    _catalog(agents.pipeline.engine)

    async def refused(key, value):
        raise RuntimeError("MessageSizeTooLargeError")
    monkeypatch.setattr(agents.pipeline, "outputs", Outputs(refused, refused, refused))
    monkeypatch.setattr(agents.pipeline, "delivery_timeout", 0.0)
    acked = []

    async def go():
        async with agents.shopper_events.test_context() as agent:
            agents.shared.ready.set()
            original = agent.to_message

            def to_message(k, v, **kw):
                message = original(k, v, **kw)
                message.topic = "clickstream"
                return message
            agent.to_message = to_message
            await agent.put(orjson.dumps(VIEW), key=b"u1", partition=0)
            monkeypatch.setattr(agents.batches.stream, "ack", lambda event: acked.append(event))
            with pytest.raises(AssertionError, match="would stop: 1 events whose outputs Kafka did not confirm"):
                await agents.publish_pending()
            assert list(agents.batches.unconfirmed().values()) == [0]
    run(go())
    assert acked == [] and "u1" not in agents.shoppers.data and harness.saved == []
    agents.batches.publishing = []
    agents.batches.room.set()
