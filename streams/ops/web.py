"""``nextoffer serve``: the dashboard, the HTTP offer lookup and the feedback endpoint.

For storefronts that cannot reach Redis or Kafka, and for people watching the pipeline:

* ``GET /offers/{user_id}`` (and ``?placement=``): the contract's offer JSON from the lookup;
* ``POST /feedback``: one ``offer-feedback`` event, validated, into the feedback topic;
* ``GET /showcases/{kind}?product=&user=``: a recommendation window (best sellers, most viewed,
  trending, similar, frequently bought together), personalised for the user;
* ``GET /`` the dashboard, fed by ``GET /api/summary`` (figures of every running worker);
* ``GET /openapi.json``, ``GET /healthz``.

Shopper data and feedback need ``Authorization: Bearer <token>`` (``NEXTOFFER_HTTP_TOKEN``);
the dashboard's aggregate figures do not show shopper data and need none.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
import uuid
from importlib import resources
from typing import Optional

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from nextoffer.models.offer import Placement
from nextoffer.models.showcases import KINDS
from nextoffer.streams.io.codecs import InvalidMessage, decode_event
from nextoffer.streams.io.topics import FEEDBACK
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.showcases import read_showcase
from nextoffer.streams.ops.summary import History, merge_snapshots

log = logging.getLogger("nextoffer")

PLACEMENTS = tuple(p.value for p in Placement)


class Service:
    """State shared by the handlers: settings, Redis, a Kafka producer (started on first use)."""

    def __init__(self, settings: Settings, token: str, sample_every: float = 2.0) -> None:
        self.settings = settings
        self.token = token
        self.redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.producer = None
        self.history = History()
        self.sample_every = sample_every
        self.latest: dict = {}

    async def produce(self, key: bytes, value: bytes) -> None:
        if self.producer is None:
            from aiokafka import AIOKafkaProducer
            from nextoffer.streams.io.security import aiokafka_client
            producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **aiokafka_client(self.settings))
            await producer.start()
            self.producer = producer
        await self.producer.send_and_wait(self.settings.topic(FEEDBACK), value, key=key)

    async def snapshots(self) -> list[dict]:
        keys = [k async for k in self.redis.scan_iter(match=self.settings.status_key("*"), count=500)]
        values = await self.redis.mget(keys) if keys else []
        return [orjson.loads(v) for v in values if v]

    async def store_showcases(self) -> dict:
        """The store's showcase windows as the workers last wrote them (product ids, best first)."""
        fields = await self.redis.hgetall(self.settings.showcase_key("store"))
        return {k.decode(): [i["product_id"] for i in orjson.loads(v)] for k, v in sorted(fields.items())}

    async def sample(self) -> None:
        """Every ``sample_every`` seconds: add up the workers' snapshots, keep the series."""
        while True:
            try:
                self.latest = merge_snapshots(await self.snapshots())
                self.latest["showcases"] = await self.store_showcases()
                self.history.add(self.latest)
            except Exception as exc:  # noqa: BLE001 - the dashboard shows what it last had
                log.warning("could not read the workers' status: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.sample_every)

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        await self.redis.aclose()


def _authorized(request: web.Request) -> bool:
    token = request.app["service"].token
    given = request.headers.get("Authorization", "")
    given = given[7:] if given.startswith("Bearer ") else request.query.get("token", "")
    return hmac.compare_digest(given.encode(), token.encode())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _needs_token(handler):
    async def checked(request: web.Request) -> web.StreamResponse:
        if not _authorized(request):
            return _error(401, "missing or wrong token: send 'Authorization: Bearer <NEXTOFFER_HTTP_TOKEN>'")
        return await handler(request)
    return checked


@_needs_token
async def get_offers(request: web.Request) -> web.Response:
    service: Service = request.app["service"]
    user_id, placement = request.match_info["user_id"], request.query.get("placement")
    key = service.settings.redis_key(user_id)
    if placement is not None:
        if placement not in PLACEMENTS:
            return _error(400, f"unknown placement {placement!r}; one of {', '.join(PLACEMENTS)}")
        raw = await service.redis.hget(key, placement)
        if raw is None:
            return _error(404, f"no current {placement} offer for user {user_id!r}")
        return web.Response(body=raw, content_type="application/json")
    offers = await service.redis.hgetall(key)
    if not offers:
        return _error(404, f"no current offer for user {user_id!r}")
    body = b"{" + b",".join(orjson.dumps(k.decode()) + b":" + v for k, v in sorted(offers.items())) + b"}"
    return web.Response(body=body, content_type="application/json")


@_needs_token
async def post_feedback(request: web.Request) -> web.Response:
    service: Service = request.app["service"]
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _error(400, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return _error(400, "the body must be one JSON object (an offer-feedback event)")
    data.setdefault("event_id", uuid.uuid4().hex)   # storefronts may leave these to the service
    data.setdefault("ts", time.time())
    body = orjson.dumps(data)
    try:
        event = decode_event(FEEDBACK, body, service.settings.limits())
    except InvalidMessage as exc:
        return _error(400, str(exc))
    try:
        await asyncio.wait_for(service.produce(event.user_id.encode(), body), timeout=15)
    except Exception as exc:  # noqa: BLE001 - the storefront should retry; say why
        log.warning("feedback not delivered: %s: %s", type(exc).__name__, exc)
        return _error(503, f"feedback not delivered to Kafka ({type(exc).__name__}); retry later")
    return web.json_response({"event_id": event.event_id, "topic": service.settings.topic(FEEDBACK)},
                             status=202)


async def get_showcase(request: web.Request) -> web.Response:
    """One showcase window from Redis (the worker writes them): the product's or the store's,
    personalised with the user's showcase profile when a user is named (that needs the token)."""
    service: Service = request.app["service"]
    kind, product, user = request.match_info["kind"], request.query.get("product"), request.query.get("user")
    if kind not in KINDS:
        return _error(400, f"unknown showcase {kind!r}; one of {', '.join(KINDS)}")
    try:
        limit = int(request.query.get("limit", service.settings.showcases.showcase_size))
        if not 1 <= limit <= 100:
            raise ValueError
    except ValueError:
        return _error(400, "limit must be a whole number from 1 to 100")
    if user is not None and not _authorized(request):
        return _error(401, "a personalised showcase needs 'Authorization: Bearer <NEXTOFFER_HTTP_TOKEN>'")
    s = service.settings
    pipe = service.redis.pipeline(transaction=False)
    pipe.hgetall(s.showcase_key("product", product or ""))      # one round trip, read or not
    pipe.hgetall(s.showcase_key("store"))
    pipe.hget(s.showcase_key("user", user or ""), "profile")
    product_fields, store_fields, profile = await pipe.execute()
    window = read_showcase(kind, product_fields if product else {}, store_fields,
                           profile if user else None, s.showcases.showcase_affinity_weight, limit)
    return web.json_response({**window, "product": product, "user": user})


async def summary(request: web.Request) -> web.Response:
    service: Service = request.app["service"]
    return web.Response(body=orjson.dumps({**service.latest, "history": service.history.points()}),
                        content_type="application/json")


async def health(request: web.Request) -> web.Response:
    service: Service = request.app["service"]
    try:
        redis_ok = bool(await asyncio.wait_for(service.redis.ping(), timeout=2))
    except Exception:  # noqa: BLE001 - reported, not raised
        redis_ok = False
    workers = len(service.latest.get("workers", []))
    return web.json_response({"status": "ok" if redis_ok else "degraded", "redis": redis_ok,
                              "workers": workers}, status=200 if redis_ok else 503)


async def dashboard(request: web.Request) -> web.Response:
    page = resources.files("nextoffer.streams.ops").joinpath("dashboard.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html")


async def openapi(request: web.Request) -> web.Response:
    from nextoffer.streams.ops.openapi import document
    return web.json_response(document(request.app["service"].settings))


def make_app(settings: Settings, token: str, sample_every: float = 2.0) -> web.Application:
    app = web.Application(client_max_size=settings.max_message_bytes)
    app["service"] = Service(settings, token, sample_every)
    app.router.add_get("/", dashboard)
    app.router.add_get("/healthz", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/api/summary", summary)
    app.router.add_get("/offers/{user_id}", get_offers)
    app.router.add_post("/feedback", post_feedback)
    app.router.add_get("/showcases/{kind}", get_showcase)

    async def lifecycle(app: web.Application):
        sampler = asyncio.create_task(app["service"].sample())
        yield
        sampler.cancel()
        await app["service"].close()
    app.cleanup_ctx.append(lifecycle)
    return app


def serve(settings: Settings, token: Optional[str] = None, print_=print) -> None:
    """Run the service until interrupted; prints where it is (with the token if it made one)."""
    token = token or settings.http_token
    made = not token
    token = token or secrets.token_urlsafe(24)
    base = f"http://{settings.http_host}:{settings.http_port}"
    print_(f"nextoffer serve: dashboard {base}/  lookup {base}/offers/{{user_id}}  "
           f"showcases {base}/showcases/{{kind}}?product=&user=  feedback POST {base}/feedback  "
           f"OpenAPI {base}/openapi.json")
    if made:
        print_(f"no NEXTOFFER_HTTP_TOKEN set; this run's token: {token}\n"
               f"open {base}/#token={token} to use the shopper lookup")
    web.run_app(make_app(settings, token), host=settings.http_host, port=settings.http_port,
                print=None, access_log=None)

