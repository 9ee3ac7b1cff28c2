"""Showcases in Redis: what the worker writes every ``showcase_interval`` seconds, and how a reader
personalises them.

Keys (with the deployment's prefix; each a hash, expiring after ``redis_ttl`` like the lookup):

- ``showcase:store``: fields ``best_sellers``, ``most_viewed``, ``trending``: the store's windows;
- ``showcase:product:{product_id}``: a field per window (the five of
  :data:`~nextoffer.models.showcases.KINDS`) for that product's page, and its ``category``;
  written for the products of the worker's events since the last round;
- ``showcase:user:{user_id}``: field ``profile``: the shopper's strongest category and brand
  affinities and what their showcases leave out (cart, just bought, declined).

Each window is a JSON list of ``{"product_id", "score", "category"?, "brand"?, "price"?}``, best
first. :func:`read_showcase` (``GET /showcases/{kind}`` of ``nextoffer serve``) puts them
together for a product and a shopper.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterable, Mapping, Optional

import orjson

from nextoffer.models import profile
from nextoffer.models.engine import OfferEngine
from nextoffer.models.profile import ProfileView
from nextoffer.models.showcases import KINDS, POPULARITY, ShowcaseItem, excluded, personalise
from nextoffer.streams.io.codecs import decode_state
from nextoffer.streams.io.settings import Settings

#: A hash to write: (key, {field: value}).
HashWrite = tuple[str, dict[str, bytes]]
#: Category and brand affinities kept in a shopper's showcase profile.
PROFILE_AFFINITIES = 8
#: Products (and shoppers) of one slice of a round: the event loop is given back between slices.
#: A slice holds the loop while its windows are made and its writes packed for Redis: 28 to 39
#: ms a slice of 100 on the benchmark's synthetic store at 1,000 events/s, under 25 ms a slice
#: of 25 (and 10 gained nothing more: each slice is a Redis round trip and a pause).
ROUND_SLICE = 25
#: Most of the event loop a round takes while it runs: after each slice, the loop is left to the
#: shoppers' events for (1 / ROUND_SHARE - 1) times as long as the slice held it.
ROUND_SHARE = 0.25


class ShowcaseWriter:
    """Builds one round of showcase writes from the engine's showcases.

    >>> from nextoffer.models.engine import Basket, OfferEngine
    >>> from nextoffer.models.events import LineItem, Product
    >>> from nextoffer.models.rules import OfferRules
    >>> engine = OfferEngine(OfferRules())
    >>> for pid in ("tea", "pot", "cup"):
    ...     engine.update_product(Product(pid, 10.0, category="tea"))
    >>> for n in range(4):
    ...     lines = (LineItem("tea", 1, 10.0), LineItem("pot", 1, 10.0)) if n else (LineItem("cup", 1, 10.0),)
    ...     engine.learn_basket(Basket(f"u{n}", 100.0 + n, lines))
    >>> writes = dict(ShowcaseWriter(Settings(), engine).round(["tea"], {}, now=110.0))
    >>> sorted(writes)
    ['showcase:product:tea', 'showcase:store']
    >>> [i["product_id"] for i in orjson.loads(writes["showcase:product:tea"]["frequently_bought_together"])]
    ['pot']
    """

    def __init__(self, settings: Settings, engine: OfferEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._written: dict[str, float] = {}    # product -> when its windows were last written
        # Products written with no "bought together" window, and those of them whose row has come
        # since from the worker that counts it (partitioned learning): written again next round.
        self._unpaired: set[str] = set()
        self._paired_since: set[str] = set()

    def row_adopted(self, anchor: str) -> None:
        """Another worker shared the anchor's "bought together" row. If this worker wrote the
        product's windows without one, they are written again in the next round (else they
        would wait for the product's next event after ``showcase_refresh``).

        >>> from nextoffer.models.rules import OfferRules
        >>> w = ShowcaseWriter(Settings(showcase_refresh=60.0), OfferEngine(OfferRules()))
        >>> _ = w.round(w.due(["tea"], 0.0), {}, now=0.0)
        >>> w.row_adopted("tea"), w.due([], 1.0)
        (None, ['tea'])
        """
        if anchor in self._unpaired:
            self._unpaired.discard(anchor)
            self._paired_since.add(anchor)

    def due(self, products: Iterable[str], clock: float) -> list[str]:
        """The ``products`` whose windows were not written in the last ``showcase_refresh``
        seconds (``clock``: a monotonic time); they count as written from now.

        >>> from nextoffer.models.rules import OfferRules
        >>> w = ShowcaseWriter(Settings(showcase_refresh=60.0), OfferEngine(OfferRules()))
        >>> w.due(["a", "b"], 0.0), w.due(["a", "c"], 30.0), w.due(["a"], 61.0)
        (['a', 'b'], ['c'], ['a'])
        """
        refresh, written = self.settings.showcase_refresh, self._written
        if len(written) > 100_000:       # forget what is past its refresh anyway
            self._written = written = {p: t for p, t in written.items() if clock - t < refresh}
            self._unpaired &= set(written)
        again, self._paired_since = self._paired_since, set()
        out = [p for p in products if clock - written.get(p, float("-inf")) >= refresh and p not in again]
        out += sorted(again)
        for p in out:
            written[p] = clock
        return out

    def round(self, products: Iterable[str], shoppers: Mapping[str, bytes], now: float,
              store_windows: bool = True, cache: Optional[dict] = None) -> list[HashWrite]:
        """The store's windows (unless ``store_windows`` is False), those of ``products`` and the
        profiles of ``shoppers`` (user id -> encoded state), as of event time ``now``. ``cache``
        keeps what the slices of one round read once (each category's products and counts):
        the round's windows are as of its first read of a category."""
        shows, s = self.engine.showcases, self.settings
        cache = {} if cache is None else cache
        writes: list[HashWrite] = ([(s.showcase_key("store"), {kind: _dump(shows.window(kind, None, now, cache=cache))
                                                               for kind in POPULARITY})] if store_windows else [])
        for pid in products:
            fields = {kind: _dump(shows.window(kind, pid, now, cache=cache)) for kind in KINDS}
            if fields["frequently_bought_together"] == b"[]":
                self._unpaired.add(pid)
            else:
                self._unpaired.discard(pid)
            product = self.engine.catalog.get(pid)
            if product is not None and product.category:
                fields["category"] = product.category.encode()
            writes.append((s.showcase_key("product", pid), fields))
        for user_id, raw in shoppers.items():
            writes.append((s.showcase_key("user", user_id), {"profile": self.profile(raw, now)}))
        return writes

    async def write_round(self, products: list[str], shoppers: Mapping[str, bytes], now: float,
                          put: Callable[[list[HashWrite]], Awaitable[None]],
                          clock: Callable[[], float] = time.monotonic,
                          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> int:
        """A :meth:`round` in slices of :data:`ROUND_SLICE` products and shoppers, each slice's
        writes handed to ``put``; returns how many hashes were written (an error of ``put`` ends
        the round). The slices share one event time and one read of each category, so the
        round's windows are as of its first read of a category.

        Shoppers' events come first: after each slice the event loop is theirs for three times
        as long as the slice held it (:data:`ROUND_SHARE`). A bare yield let the shopper agent,
        which yields after every event, apply one event per slice, so a round of thousands of
        shoppers (0.3 to 0.7 s of slices on the benchmark's 100,000-shopper store) held their
        events for its whole length."""
        users, cache, written = list(shoppers), {}, 0
        for start in range(0, max(len(products), len(users), 1), ROUND_SLICE):
            began = clock()
            part = {u: shoppers[u] for u in users[start:start + ROUND_SLICE]}
            writes = self.round(products[start:start + ROUND_SLICE], part, now, store_windows=start == 0,
                                cache=cache)
            held = clock() - began
            await put(writes)
            written += len(writes)
            await sleep(held * (1 / ROUND_SHARE - 1))
        return written

    def profile(self, raw: bytes, now: float) -> bytes:
        """A shopper's showcase profile: strongest affinities, and what to leave out."""
        shopper = decode_state(raw)
        seen = profile.view(shopper, now, self.engine.policy.profile_settings)
        strongest = sorted(seen.affinities.items(), key=lambda kv: kv[1], reverse=True)[:PROFILE_AFFINITIES]
        return orjson.dumps({"affinity": {k: round(w, 4) for k, w in strongest if w > 0},
                             "exclude": sorted(excluded(shopper, now, self.settings.showcases)), "ts": now})


def read_showcase(kind: str, product_fields: Mapping[bytes, bytes], store_fields: Mapping[bytes, bytes],
                  user_profile: Optional[bytes], weight: float, limit: Optional[int] = None) -> dict:
    """The ``kind`` window from the hashes read: the product's (else the store's), personalised
    with the shopper's profile when there is one.

    >>> store = {b"trending": orjson.dumps([{"product_id": "a", "score": 2.0, "category": "x"},
    ...                                    {"product_id": "b", "score": 1.5, "category": "y"}])}
    >>> user = orjson.dumps({"affinity": {"c:y": 1.0}, "exclude": ["c"]})
    >>> [i["product_id"] for i in read_showcase("trending", {}, store, user, weight=1.0)["items"]]
    ['b', 'a']
    """
    if kind not in KINDS:
        raise ValueError(f"unknown showcase {kind!r}; one of {', '.join(KINDS)}")
    raw = product_fields.get(kind.encode())
    source = "product"
    if raw is None:
        raw, source = (store_fields.get(kind.encode()), "store") if kind in POPULARITY else (None, "none")
    items = [ShowcaseItem.from_dict(d) for d in orjson.loads(raw)] if raw else []
    personal = orjson.loads(user_profile) if user_profile else None
    if personal is not None:
        view = ProfileView("", "", "", None, 0.5, personal.get("affinity", {}))
        items = personalise(items, view, set(personal.get("exclude", ())), weight)
    items = items[:limit] if limit else items
    return {"kind": kind, "source": source, "personalised": personal is not None,
            "items": [i.to_dict() for i in items]}


def _dump(items: list[ShowcaseItem]) -> bytes:
    return orjson.dumps([i.to_dict() for i in items])
