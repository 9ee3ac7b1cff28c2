"""The offer lookup storefronts read: ``HGET {prefix}nbo:{user_id} {placement}``.

Behind a small interface so agent tests run on the in-memory twin and the worker
on Redis; both keep the latest offer per user and placement and expire quiet users. The lookup
never goes back in time: an offer whose event is older than the stored one's (an event read
again after a rebalance, a re-read of a partition) does not replace it.
"""
from __future__ import annotations

import abc
import logging
import re
import time
from typing import Optional, Sequence

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

log = logging.getLogger("nextoffer")

#: (redis key, placement, offer JSON[, the event's time]): without a time, it always replaces.
OfferWrite = tuple

#: The stored offer's event time, as it stands in its JSON (orjson writes it as a plain number).
EVENT_TS = re.compile(rb'"event_ts":(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)')


def event_ts(write: OfferWrite) -> Optional[float]:
    """The event time of a write, None when it has none."""
    return write[3] if len(write) > 3 else None


def stored_ts(value: Optional[bytes]) -> Optional[float]:
    """The event time of a stored offer.

    >>> stored_ts(b'{"offer_id":"x","event_ts":1700000000.5}'), stored_ts(b'{}'), stored_ts(None)
    (1700000000.5, None, None)
    """
    found = EVENT_TS.search(value) if value else None
    return float(found.group(1)) if found else None


def is_older(write: OfferWrite, stored: Optional[bytes]) -> bool:
    """Whether ``write`` comes from an event older than the one of the ``stored`` offer."""
    new, old = event_ts(write), stored_ts(stored)
    return new is not None and old is not None and new < old


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

    async def put_hashes(self, writes: Sequence[tuple[str, dict]], ttl: int) -> None:
        """Replace fields of hashes (the showcases), each key expiring after ``ttl`` seconds."""

    async def close(self) -> None:
        """Release connections."""


#: ``HSET`` and ``EXPIRE`` of every offer of a batch in one command with one reply: KEYS are the
#: users' keys, ARGV the TTL then placement, offer and event time ('' for none) of each key in
#: turn. An offer whose event is older than the stored offer's is not written; returns how many were.
PUT_OFFERS = """
local ttl = ARGV[1]
local written = 0
for i, key in ipairs(KEYS) do
  local placement, value, ts = ARGV[3 * i - 1], ARGV[3 * i], tonumber(ARGV[3 * i + 1])
  local older = false
  if ts then
    local stored = redis.call('HGET', key, placement)
    local was = nil
    if stored then was = tonumber(string.match(stored, '"event_ts":(%-?[%d%.]+[eE]?[-+]?%d*)')) end
    older = was ~= nil and ts < was
  end
  if not older then
    redis.call('HSET', key, placement, value)
    written = written + 1
  end
  redis.call('EXPIRE', key, ttl)
end
return written
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
            for write in writes:
                ts = event_ts(write)
                args += (write[1], write[2], "" if ts is None else repr(ts))
            try:
                await self._put_offers(keys=[write[0] for write in writes], args=args)
                return
            except ResponseError as exc:
                if not isinstance(exc, NoPermissionError) and "unknown command" not in str(exc).lower():
                    raise       # OOM, BUSY...: the writer keeps the offers and tries again
                self.scripted = False
                log.warning("Redis refused the offer-writing script (%s); writing offers with "
                            "HSET and EXPIRE instead. Allow +evalsha +eval +script|load to the "
                            "worker's user for the faster path.", exc)
        # Without the script the event-time check is made here (one worker owns each shopper).
        timed = [w for w in writes if event_ts(w) is not None]
        stored = dict(zip(((w[0], w[1]) for w in timed), await _hget_all(self.client, timed))) if timed else {}
        pipe = self.client.pipeline(transaction=False)
        for write in writes:
            if not is_older(write, stored.get((write[0], write[1]))):
                pipe.hset(write[0], write[1], write[2])
            pipe.expire(write[0], self.ttl)
        await pipe.execute()

    async def get(self, key: str, placement: str) -> Optional[bytes]:
        return await self.client.hget(key, placement)

    async def put_status(self, key: str, value: bytes, ttl: int) -> None:
        await self.client.set(key, value, ex=ttl)

    async def put_hashes(self, writes: Sequence[tuple[str, dict]], ttl: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, fields in writes:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, ttl)
        await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()


async def _hget_all(client, writes: Sequence[OfferWrite]) -> list:
    pipe = client.pipeline(transaction=False)
    for write in writes:
        pipe.hget(write[0], write[1])
    return await pipe.execute()


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
        for write in writes:
            key, placement, value = write[:3]
            offers = self.hashes.setdefault(key, {})
            if not is_older(write, offers.get(placement)):
                offers[placement] = value
            self.expires[key] = self.clock() + self.ttl

    async def put_hashes(self, writes: Sequence[tuple[str, dict]], ttl: int) -> None:
        for key, fields in writes:
            self.hashes.setdefault(key, {}).update(fields)
            self.expires[key] = self.clock() + ttl

    async def get(self, key: str, placement: str) -> Optional[bytes]:
        if self.expires.get(key, float("inf")) <= self.clock():
            self.hashes.pop(key, None)
        return self.hashes.get(key, {}).get(placement)
