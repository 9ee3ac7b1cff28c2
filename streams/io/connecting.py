"""Telling a refused login from an absent broker when a kafka-python client cannot connect.

kafka-python reports both as a bootstrap failure (a timeout); the broker's answer to a failed
SASL authentication shows up only in its log records, or as the exception's type. Both
places are read, so the operator is told which setting to fix. kafka-python 3.0 may also
drop that answer when the broker closes the connection right after it (it then logs only
"socket disconnected"), so a failed SASL connection is tried once more with aiokafka, the
worker's own client, which reads the answer before the close.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
from typing import Iterator, Optional

from aiokafka.client import AIOKafkaClient
from kafka import errors as kafka_errors

from nextoffer.streams.io.security import aiokafka_client
from nextoffer.streams.io.settings import Settings

_AUTH_TEXTS = ("AuthenticationFailed", "Authentication failed")
_BACKOFF = re.compile(r"\s*\(backoff [^)]*\)$")


class BrokerUnreachable(RuntimeError):
    """No broker could be used with the settings; the message says which setting to check."""


def auth_reason(text: str) -> str:
    """The broker's reason in a kafka-python log line about a failed authentication, or "".

    >>> auth_reason("Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: "
    ...             "SaslAuthenticationFailedError: Authentication failed: Invalid username or password (backoff 0.93 secs)")
    'Invalid username or password'
    >>> auth_reason("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket disconnected")
    ''
    """
    if not any(marker in text for marker in _AUTH_TEXTS):
        return ""
    return _BACKOFF.sub("", text.rsplit(": ", 1)[-1]).strip()


def explain(settings: Settings, refusal: str) -> str:
    """What to tell the operator when a client could not connect: a login the broker refused
    (its reason, ``refusal``) names the user and the credential settings; else the bootstrap
    servers.

    >>> s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9094", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    ...                        "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "shop", "KAFKA_SASL_PASSWORD": "x"})
    >>> print(explain(s, "Invalid username or password"))
    Kafka at kafka:9094 refused the credentials of user 'shop' (Invalid username or password); check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM
    >>> print(explain(s, ""))
    no Kafka broker answers at kafka:9094; start one (deploy/kafka.sh start) or set KAFKA_BOOTSTRAP_SERVERS
    """
    if refusal:
        return (f"Kafka at {settings.kafka_bootstrap_servers} refused the credentials of user "
                f"{settings.kafka_sasl_username!r} ({refusal}); check KAFKA_SASL_USERNAME, "
                "KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM")
    return (f"no Kafka broker answers at {settings.kafka_bootstrap_servers}; start one "
            "(deploy/kafka.sh start) or set KAFKA_BOOTSTRAP_SERVERS")


def raised_reason(error: Optional[BaseException]) -> str:
    """The reason of an authentication error in ``error`` or the errors that caused it, or ""."""
    seen = 0
    while error is not None and seen < 5:     # the auth error may be the cause of a timeout
        if isinstance(error, kafka_errors.SaslAuthenticationFailedError):
            return auth_reason(str(error)) or str(error) or type(error).__name__
        error, seen = error.__cause__ or error.__context__, seen + 1
    return ""


class _AuthFailures(logging.Handler):
    """Remembers the reason of the last failed authentication kafka-python logged."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reason = ""

    def emit(self, record: logging.LogRecord) -> None:
        reason = auth_reason(record.getMessage())
        if reason:
            self.reason = reason


@contextlib.contextmanager
def connecting(settings: Settings) -> Iterator[None]:
    """Raise :class:`BrokerUnreachable`, with what to check, when the block's kafka-python
    client cannot connect."""
    failures, watched = _AuthFailures(), logging.getLogger("kafka")
    watched.addHandler(failures)
    try:
        yield
    except kafka_errors.KafkaError as exc:
        reason = failures.reason or raised_reason(exc) or login_refusal(settings)
        raise BrokerUnreachable(explain(settings, reason)) from None
    finally:
        watched.removeHandler(failures)


def login_refusal(settings: Settings, timeout_s: float = 20.0) -> str:
    """The broker's reason for refusing the SASL login of ``settings``, as aiokafka hears it,
    or "" (no SASL, the login is accepted, or no broker answers)."""
    if not settings.kafka_security_protocol.startswith("SASL"):
        return ""
    failures, watched = _AuthFailures(), logging.getLogger("aiokafka")
    watched.addHandler(failures)
    try:
        # A thread of its own: the caller may be inside a running event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _bootstrap(settings, timeout_s)).result(timeout=timeout_s + 10)
    except Exception:       # the second opinion is best effort: without it, the first one stands
        pass
    finally:
        watched.removeHandler(failures)
    return failures.reason


async def _bootstrap(settings: Settings, timeout_s: float) -> None:
    client = AIOKafkaClient(**aiokafka_client(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
    except Exception:       # aiokafka logs the broker's reason; the error itself is generic
        pass
    finally:
        await client.close()
