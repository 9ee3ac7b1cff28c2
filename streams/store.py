"""The offer lookup storefronts read: ``HGET {prefix}nbo:{user_id} {placement}``.

Behind a small interface so agent tests run on the in-memory twin and the worker
on Redis; both keep the latest offer per user and placement and expire quiet users.
"""
from __future__ import annotations

import abc
import time
from typing import Optional, Sequence

import redis.asyncio as aioredis

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


class RedisOfferStore(OfferStore):
    """Hashes in Redis, written in one pipelined round trip per batch, with a TTL per user."""

    def __init__(self, url: str, ttl: int) -> None:
        self.ttl = ttl
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                              health_check_interval=30)

    async def put_many(self, writes: Sequence[OfferWrite]) -> None:
        if not writes:
            return
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
