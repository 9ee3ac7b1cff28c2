"""OfferWriter: nothing lost while the lookup is unreachable, newest offer wins, no stalls."""
from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError

from nextoffer.streams.worker.pipeline import OfferWriter
from nextoffer.streams.io.store import MemoryOfferStore


class FlakyStore(MemoryOfferStore):
    def __init__(self) -> None:
        super().__init__(ttl=60, clock=lambda: 0.0)
        self.down = False
        self.attempts = 0

    async def put_many(self, writes):
        self.attempts += 1
        if self.down:
            raise RedisConnectionError("connection refused")
        await super().put_many(writes)


def run(coro):
    return asyncio.run(coro)


def test_offers_written_during_an_outage_reach_the_store_once_it_is_back_newest_first():
    store, now = FlakyStore(), [0.0]
    writer = OfferWriter(store, retry_every=1.0, clock=lambda: now[0])
    store.down = True
    assert run(writer.write([("nbo:u1", "cart", b"old")])) is False
    assert run(writer.write([("nbo:u1", "cart", b"new"), ("nbo:u2", "cart", b"x")])) is False
    assert store.attempts == 1, "while failing, writes only queue until the retry interval passes"
    now[0] = 2.0
    assert run(writer.flush()) is False and store.attempts == 2
    store.down = False
    now[0] = 4.0
    assert run(writer.flush()) is True
    assert run(store.get("nbo:u1", "cart")) == b"new" and run(store.get("nbo:u2", "cart")) == b"x"
    assert writer.pending == {} and not writer.failing


def test_a_healthy_store_is_written_at_once():
    store = FlakyStore()
    writer = OfferWriter(store)
    assert run(writer.write([("nbo:u1", "cart", b"a")])) is True
    assert run(store.get("nbo:u1", "cart")) == b"a" and writer.pending == {}
