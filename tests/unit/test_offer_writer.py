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


def test_the_lookup_never_goes_back_in_time():
    store = MemoryOfferStore(ttl=60)
    newer = ("nbo:u1", "cart", b'{"offer_id":"b","event_ts":200.0}', 200.0)
    older = ("nbo:u1", "cart", b'{"offer_id":"a","event_ts":100.0}', 100.0)
    run(store.put_many([newer]))
    run(store.put_many([older]))                    # an event read again after a later one
    assert run(store.get("nbo:u1", "cart")) == newer[2]
    run(store.put_many([("nbo:u1", "cart", b'{"offer_id":"c","event_ts":300.0}', 300.0)]))
    assert b'"c"' in run(store.get("nbo:u1", "cart"))
    run(store.put_many([("nbo:u1", "cart", b'{"offer_id":"d"}')]))      # no event time: it replaces
    assert run(store.get("nbo:u1", "cart")) == b'{"offer_id":"d"}'


def test_a_pending_offer_is_not_replaced_by_an_older_one_while_the_lookup_is_away():
    store = FlakyStore()
    store.down = True
    writer = OfferWriter(store)
    run(writer.write([("nbo:u1", "cart", b"new", 200.0)]))
    run(writer.write([("nbo:u1", "cart", b"old", 100.0)]))
    store.down = False
    assert run(writer.flush()) is True and run(store.get("nbo:u1", "cart")) == b"new"
