"""A client that cannot connect is explained: a refused login names the credentials to check,
whichever way kafka-python reports it (log line of 2.x or 3.x, or the raised error)."""
import logging

import pytest
from kafka import errors

from nextoffer.streams.io.connecting import BrokerUnreachable, connecting, login_refusal
from nextoffer.streams.io.settings import Settings

SASL = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                          "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "shop",
                          "KAFKA_SASL_PASSWORD": "secret"})
REFUSED = "refused the credentials of user 'shop' (Invalid username or password)"


def failing(logged: list[tuple[str, int, str]], raised: Exception) -> str:
    with pytest.raises(BrokerUnreachable) as caught:
        with connecting(SASL):
            for name, level, text in logged:
                logging.getLogger(name).log(level, text)
            raise raised
    return str(caught.value)


@pytest.mark.parametrize("logged", [
    [("kafka.conn", logging.ERROR, "<BrokerConnection node_id=bootstrap-0>: Authentication failed: "
                                   "Invalid username or password")],
    [("kafka.net.manager", logging.WARNING, "Bootstrap connection to bootstrap-0 failed: [Error 58] "
      "SaslAuthenticationFailedError: SaslAuthenticationFailedError: Authentication failed: Invalid username "
      "or password (backoff 0.93 secs)"),
     ("kafka.net.connection", logging.ERROR, "<KafkaConnection node_id=bootstrap-0>: Connection lost: "
                                             "KafkaConnectionError: socket disconnected")],
], ids=["2.x", "3.x"])
def test_a_refused_login_in_the_log_names_the_user_and_the_settings(logged):
    message = failing(logged, errors.KafkaTimeoutError("Unable to bootstrap"))
    assert REFUSED in message and "KAFKA_SASL_PASSWORD" in message


def test_a_refused_login_raised_as_the_cause_of_a_timeout_is_found():
    try:
        raise errors.SaslAuthenticationFailedError("Authentication failed: Invalid username or password")
    except errors.KafkaError as auth:
        timeout = errors.KafkaTimeoutError("Unable to bootstrap")
        timeout.__cause__ = auth
    assert REFUSED in failing([], timeout)


def test_a_broker_that_never_answers_is_told_apart_from_a_refused_login():
    message = failing([("kafka.net.manager", logging.WARNING, "Bootstrap connection to bootstrap-0 failed: "
                        "KafkaConnectionError: connection refused (backoff 0.05 secs)")],
                      errors.KafkaConnectionError("connection refused"))
    assert message.startswith("no Kafka broker answers at 127.0.0.1:1") and "refused the credentials" not in message


def test_the_watch_ends_with_the_block():
    before = list(logging.getLogger("kafka").handlers)
    with connecting(SASL):
        assert len(logging.getLogger("kafka").handlers) == len(before) + 1
    assert logging.getLogger("kafka").handlers == before


def test_without_sasl_there_is_no_login_to_refuse():
    assert login_refusal(Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})) == ""
