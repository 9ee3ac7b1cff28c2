"""The Faust application, configured from :class:`~nextoffer.streams.io.settings.Settings`.

The worker's runtime starts here: importing this module reads the environment once and builds
the app (Faust declares agents, topics and tables on an app at import). Only the worker command
and the worker's own modules import it; ``nextoffer worker`` runs it.
"""
from __future__ import annotations

from pathlib import Path

import faust

from nextoffer.streams.io import security
from nextoffer.streams.io.settings import Settings


def broker_url(servers: str) -> str:
    """``host1:9092,host2:9092`` -> Faust's ``kafka://host1:9092;kafka://host2:9092``.

    >>> broker_url("a:9092, b:9092")
    'kafka://a:9092;kafka://b:9092'
    """
    return ";".join(f"kafka://{s.strip()}" for s in servers.split(",") if s.strip())


def faust_credentials(settings: Settings):
    """Faust's ``broker_credentials`` for the settings, or None for PLAINTEXT."""
    security.check(settings)
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                     password=settings.kafka_sasl_password,
                                     mechanism=settings.kafka_sasl_mechanism,
                                     ssl_context=security.ssl_context(settings))
    if protocol == "SSL":
        return faust.SSLCredentials(security.ssl_context(settings))
    return None


def datadir(settings: Settings, name: str) -> Path:
    """Where Faust keeps the files of app ``name`` (after the prefix).

    >>> str(datadir(Settings(data_dir="/var/lib/nextoffer", topic_prefix="shop1."), "nextoffer"))
    '/var/lib/nextoffer/shop1.nextoffer'
    """
    return Path(settings.data_dir) / settings.topic(name)


def prepare_datadir(settings: Settings, name: str = "") -> None:
    """Create the app's data folder; the worker command calls it once it starts."""
    datadir(settings, name or settings.app_id).mkdir(parents=True, exist_ok=True)


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.topic(settings.app_id),
        broker=broker_url(settings.kafka_bootstrap_servers),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        # Offers must reflect the latest event at once; batching is left to Kafka's linger.
        producer_linger_ms=1,
        stream_buffer_maxsize=4096,
        broker_commit_every=2000,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout,
        # A standby partition turned active is sometimes never recovered by faust-streaming
        # 0.15 (its seek back races the running standby fetch): standbys are opt-in.
        table_standby_replicas=settings.standby_replicas,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 5),
        datadir=str(datadir(settings, settings.app_id)),
    )


settings = Settings.from_env()
app = create_app(settings)
