"""Agent tests: the real agents under Faust's test_context, memory table store, nothing leaving the process."""
import asyncio

import orjson
import pytest

from nextoffer.models.engine import OfferEngine
from nextoffer.streams.worker import agents
from nextoffer.streams.worker.pipeline import OfferWriter, Outputs
from nextoffer.streams.worker.rejections import DeadLettered
from nextoffer.streams.io.store import MemoryOfferStore


class Harness:
    def __init__(self) -> None:
        self.offers, self.dead_letters, self.baskets, self.saved = [], [], [], []
        self.store = MemoryOfferStore(ttl=86_400)

    def outputs(self) -> Outputs:
        def collect(into):
            async def send(key, value):
                into.append((key, orjson.loads(value)))
            return send
        return Outputs(collect(self.offers), collect(self.dead_letters), collect(self.baskets))

    async def put(self, agent, topic: str, value, key: str | None = "u1", partition: int = 0):
        """Put one message as if read from ``topic`` (test_context names it '<internal>')."""
        original = agent.to_message

        def to_message(k, v, **kw):
            message = original(k, v, **kw)
            message.topic = topic
            return message
        agent.to_message = to_message
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        await agent.put(raw, key=key.encode() if key is not None else None, partition=partition)
        await agents.publish_pending()   # what the publisher task does every batch_wait seconds


@pytest.fixture
def harness(monkeypatch):
    h = Harness()
    monkeypatch.setattr(agents.pipeline, "engine", OfferEngine(agents.settings.rules))
    monkeypatch.setattr(agents.pipeline, "writer", OfferWriter(h.store))
    monkeypatch.setattr(agents.pipeline, "outputs", h.outputs())
    monkeypatch.setattr(agents.pipeline, "dead_lettered", DeadLettered({}))   # its table's changelog stays out

    async def save(partition, user_id, state):
        # the table's value as CompactTable.save keeps it; its changelog record stays in the process
        agents.shoppers.data[user_id] = state
        h.saved.append((partition, user_id))
    monkeypatch.setattr(agents.pipeline, "save", save)

    async def exit_for_restart(why):
        raise AssertionError(f"the worker would stop: {why}")
    monkeypatch.setattr(agents, "exit_for_restart", exit_for_restart)
    agents.shoppers.data.clear()
    return h


def run(coro):
    return asyncio.run(coro)
