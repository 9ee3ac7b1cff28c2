"""The ceiling: a Faust agent that does nothing, on the same broker, topics and partitions.

It reads the three shopper input topics exactly like nextoffer's worker (one agent,
concurrency 1, the same consumer and commit settings) and only counts. Run by the benchmark
as ``python -m nextoffer.streams.worker.ceiling worker --without-web``.
"""
from __future__ import annotations

import faust

from nextoffer.streams.worker.app import broker_url, datadir, faust_credentials, prepare_datadir
from nextoffer.streams.io.topics import SHOPPER_INPUTS
from nextoffer.streams.io.settings import Settings

settings = Settings.from_env()
app = faust.App(
    settings.topic("ceiling"),
    broker=broker_url(settings.kafka_bootstrap_servers),
    broker_credentials=faust_credentials(settings),
    store="memory://",
    topic_partitions=settings.partitions,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    stream_buffer_maxsize=4096,
    broker_commit_every=2000,
    broker_commit_interval=1.0,
    web_enabled=False,
    datadir=str(datadir(settings, "ceiling")),
)
inputs = app.topic(*(settings.topic(n) for n in SHOPPER_INPUTS), partitions=settings.partitions)


@app.agent(inputs, concurrency=1)
async def do_nothing(stream):
    async for _ in stream.events():
        pass


if __name__ == "__main__":
    prepare_datadir(settings, "ceiling")
    app.main()
