"""The offer store against the real Redis: the batch script, and the pipeline it falls back to
when the worker's user may not run scripts."""
from __future__ import annotations

import asyncio
import uuid

from nextoffer.streams.io.store import RedisOfferStore
from tests.integration.conftest import REDIS_URL


def _write(url: str, prefix: str) -> RedisOfferStore:
    store = RedisOfferStore(url, ttl=120)

    async def put():
        await store.put_many([(f"{prefix}nbo:u1", "cart", b'{"n":1}'),
                              (f"{prefix}nbo:u1", "product_page", b'{"n":2}'),
                              (f"{prefix}nbo:u2", "cart", b'{"n":3}')])
        await store.close()
    asyncio.run(put())
    return store


def _never_back_in_time(url: str, prefix: str, client) -> None:
    """An offer of an older event (read again after a later one) leaves the newer one in place."""
    store = RedisOfferStore(url, ttl=120)
    key = f"{prefix}nbo:u3"

    async def put():
        await store.put_many([(key, "cart", b'{"n":"new","event_ts":1700000200.5}', 1700000200.5),
                              (key, "product_page", b'{"n":"page","event_ts":1700000100.0}', 1700000100.0)])
        await store.put_many([(key, "cart", b'{"n":"old","event_ts":1700000100.0}', 1700000100.0),
                              (key, "product_page", b'{"n":"later","event_ts":1700000300.0}', 1700000300.0)])
        await store.close()
    asyncio.run(put())
    assert client.hgetall(key) == {b"cart": b'{"n":"new","event_ts":1700000200.5}',
                                   b"product_page": b'{"n":"later","event_ts":1700000300.0}'}
    client.delete(key)


def _check(client, prefix: str) -> None:
    assert client.hgetall(f"{prefix}nbo:u1") == {b"cart": b'{"n":1}', b"product_page": b'{"n":2}'}
    assert client.hget(f"{prefix}nbo:u2", "cart") == b'{"n":3}'
    assert 0 < client.ttl(f"{prefix}nbo:u1") <= 120 and 0 < client.ttl(f"{prefix}nbo:u2") <= 120


def test_a_batch_of_offers_is_written_by_the_script_with_its_ttl(stack):
    prefix = f"t{uuid.uuid4().hex[:6]}."
    store = _write(REDIS_URL, prefix)
    assert store.scripted
    _check(stack, prefix)
    _never_back_in_time(REDIS_URL, prefix, stack)
    stack.delete(f"{prefix}nbo:u1", f"{prefix}nbo:u2")


def test_a_user_without_scripting_gets_the_same_offers_through_the_pipeline(stack, caplog):
    prefix = f"t{uuid.uuid4().hex[:6]}."
    user, password = f"noscript-{prefix[1:-1]}", uuid.uuid4().hex
    stack.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"],
                      commands=["-@all", "+@read", "+@write", "+@keyspace", "+@connection"])
    try:
        url = REDIS_URL.replace("redis://", f"redis://{user}:{password}@", 1)
        store = _write(url, prefix)
        assert not store.scripted, "the refused script is not tried again"
        assert "+evalsha" in caplog.text, "the log says what to allow"
        _check(stack, prefix)
        _never_back_in_time(url, prefix, stack)
    finally:
        stack.acl_deluser(user)
        stack.delete(f"{prefix}nbo:u1", f"{prefix}nbo:u2")
