"""The offer lookup storefronts read: ``HGET {prefix}nbo:{user_id} {placement}``.

Behind a small interface so agent tests run on the in-memory twin and the worker
on Redis; both keep the latest offer per user and placement and expire quiet users.
"""
from __future__ import annotations

import abc
import logging
import time
from typing import Optional, Sequence

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

log = logging.getLogger("nextoffer")

#: (redis key, placement, offer JSON)
OfferWrite = tuple[str, str, bytes]


class OfferStore(abc.ABC):
    """Where offers are written before they are published."""

    @abc.abstractmethod
    async def put_many(self, writes: Sequence[OfferWrite]) -> None:
        """Store offers; each replaces the previous one of its user and placement."""

    @abc.abstractmethod
    async def get(self, key: str, placement: str) -> Optional[bytes]:
        """The latest offer of one user and placement, or None."""

    async def put_status(self, key: str, value: bytes, ttl: int) -> None:
        """Keep a worker's status snapshot (expiring) for the dashboard."""

    async def close(self) -> None:
        """Release connections."""


#: ``HSET`` and ``EXPIRE`` of every offer of a batch in one command with one reply: KEYS are the
#: users' keys, ARGV the TTL then placement and offer of each key in turn.
PUT_OFFERS = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[2 * i], ARGV[2 * i + 1])
  redis.call('EXPIRE', key, ttl)
end
return #KEYS
"""


class RedisOfferStore(OfferStore):
    """Hashes in Redis with a TTL per user. A batch of offers is written by one server-side
    script call (``EVALSHA``): one round trip and one reply for the batch, where a pipeline of
    ``HSET`` and ``EXPIRE`` costs the worker two replies to parse per offer. A server that does
    not let the worker run scripts (an ACL without ``+evalsha``, scripting renamed away) gets the
    pipeline instead, with a warning in the log."""

    def __init__(self, url: str, ttl: int) -> None:
        self.ttl = ttl
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                              health_check_interval=30)
        self._put_offers = self.client.register_script(PUT_OFFERS)
        self.scripted = True

    async def put_many(self, writes: Sequence[OfferWrite]) -> None:
        if not writes:
            return
        if self.scripted:
            args: list = [self.ttl]
            for _, placement, value in writes:
                args += (placement, value)
            try:
                await self._put_offers(keys=[key for key, _, _ in writes], args=args)
                return
            except ResponseError as exc:
                if not isinstance(exc, NoPermissionError) and "unknown command" not in str(exc).lower():
                    raise       # OOM, BUSY...: the writer keeps the offers and tries again
                self.scripted = False
                log.warning("Redis refused the offer-writing script (%s); writing offers with "
                            "HSET and EXPIRE instead. Allow +evalsha +eval +script|load to the "
                            "worker's user for the faster path.", exc)
        pipe = self.client.pipeline(transaction=False)
        for key, placement, value in writes:
            pipe.hset(key, placement, value)
            pipe.expire(key, self.ttl)
        await pipe.execute()

    async def get(self, key: str, placement: str) -> Optional[bytes]:
        return await self.client.hget(key, placement)

    async def put_status(self, key: str, value: bytes, ttl: int) -> None:
        await self.client.set(key, value, ex=ttl)

    async def close(self) -> None:
        await self.client.aclose()


class MemoryOfferStore(OfferStore):
    """The same behaviour in a dict, for tests and the offline evaluation.

    >>> import asyncio
    >>> store = MemoryOfferStore(ttl=60, clock=lambda: 0.0)
    >>> asyncio.run(store.put_many([("nbo:u1", "cart", b"{}")]))
    >>> asyncio.run(store.get("nbo:u1", "cart"))
    b'{}'
    """

    def __init__(self, ttl: int, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.expires: dict[str, float] = {}

    async def put_many(self, writes: Sequence[OfferWrite]) -> None:
        for key, placement, value in writes:
            self.hashes.setdefault(key, {})[placement] = value
            self.expires[key] = self.clock() + self.ttl

    async def get(self, key: str, placement: str) -> Optional[bytes]:
        if self.expires.get(key, float("inf")) <= self.clock():
            self.hashes.pop(key, None)
        return self.hashes.get(key, {}).get(placement)
