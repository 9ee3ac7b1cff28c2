"""Kafka security (TLS, SASL) passed from the settings to every client, and secrets kept out of
output.

Three client libraries talk to Kafka here (Faust's aiokafka, aiokafka directly, kafka-python);
each gets the same security settings in its own form from this one module.
"""
from __future__ import annotations

import re
import ssl
from typing import Any, Optional

from nextoffer.streams.io.settings import Settings, SettingsError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def check(settings: Settings) -> None:
    """Fail early, naming the variable, when the Kafka security settings do not fit together.

    >>> check(Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}))
    Traceback (most recent call last):
    ...
    nextoffer.streams.io.settings.SettingsError: KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD
    """
    protocol = settings.kafka_security_protocol
    if protocol not in PROTOCOLS:
        raise SettingsError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism not in MECHANISMS:
            raise SettingsError(f"KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, "
                                f"got {settings.kafka_sasl_mechanism!r}")
        if not (settings.kafka_sasl_username and settings.kafka_sasl_password):
            raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                                "KAFKA_SASL_PASSWORD")


def ssl_context(settings: Settings) -> Optional[ssl.SSLContext]:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's producer, consumer and admin client.

    >>> kafka_python_options(Settings.from_env({}))
    {'security_protocol': 'PLAINTEXT'}
    """
    check(settings)
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password)
    if settings.kafka_security_protocol.endswith("SSL"):
        options["ssl_context"] = ssl_context(settings)
    return options


def kafka_python_client(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security, for any kafka-python client: ``KafkaConsumer(**...)``."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
            **kafka_python_options(settings)}


def aiokafka_client(settings: Settings) -> dict[str, Any]:
    """The same for aiokafka's clients (same option names; SSL as a context too)."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **kafka_python_options(settings)}


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@", re.I)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    >>> redact("cannot reach rediss://nextoffer:s3cret@cache:6380/0")
    'cannot reach rediss://nextoffer:***@cache:6380/0'
    >>> redact("redis://:s3cret@localhost:6379/0")
    'redis://:***@localhost:6379/0'
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
