"""One typed, frozen settings object, read once from the environment.

Connection names follow the contract (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``);
everything else is ``NEXTOFFER_<FIELD>``, offer rules and learner settings included.
``nextoffer settings`` prints them all with their defaults and meaning.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from nextoffer.models.engine import LearnerSettings
from nextoffer.models.rules import OfferRules
from nextoffer.models.showcases import ShowcaseSettings
from nextoffer.streams.io.codecs import Limits


class SettingsError(ValueError):
    """A setting in the environment has a value that cannot be used."""


def _doc(text: str, env: str | None = None, **kw):
    return field(metadata={"doc": text, "env": env}, **kw)


@dataclass(frozen=True)
class Settings:
    """Everything a worker, the CLI and the demo read from the environment.

    >>> s = Settings.from_env({"NEXTOFFER_TOPIC_PREFIX": "shop1.", "NEXTOFFER_MAX_ITEMS": "2"})
    >>> s.topic("offers"), s.rules.max_items
    ('shop1.offers', 2)
    """

    kafka_bootstrap_servers: str = _doc("Kafka bootstrap servers, comma-separated.",
                                        "KAFKA_BOOTSTRAP_SERVERS", default="localhost:9092")
    kafka_security_protocol: str = _doc("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, for every Kafka "
                                        "client of nextoffer.", "KAFKA_SECURITY_PROTOCOL",
                                        default="PLAINTEXT")
    kafka_sasl_mechanism: str = _doc("SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
                                     "KAFKA_SASL_MECHANISM", default="PLAIN")
    kafka_sasl_username: str = _doc("SASL user name.", "KAFKA_SASL_USERNAME", default="")
    kafka_sasl_password: str = _doc("SASL password (a secret: never printed or logged).",
                                    "KAFKA_SASL_PASSWORD", default="", repr=False)
    kafka_ssl_cafile: str = _doc("CA certificates (PEM) that sign the brokers' TLS certificates; "
                                 "empty: the system's.", "KAFKA_SSL_CAFILE", default="")
    redis_url: str = _doc("Redis URL of the offer lookup: redis:// or rediss:// (TLS), with an ACL "
                          "user and password as in rediss://user:password@host:6380/0 and, for a "
                          "private CA, ?ssl_ca_certs=/path/ca.pem (a secret: never printed).",
                          "REDIS_URL", default="redis://localhost:6379/0", repr=False)
    topic_prefix: str = _doc("Prepended to every topic read or written, internal ones included, "
                             "and to the Redis keys.", default="")
    app_id: str = _doc("Faust application id: consumer group and table changelog names "
                       "(after the prefix).", default="nextoffer")
    partitions: int = _doc("Partitions of the topics nextoffer creates (workers share the partitions). "
                           "Not set, the partition count of the deployment's existing topics is used.",
                           default=8)
    replication_factor: int = _doc("Replication factor of the topics nextoffer creates.", default=1)
    redis_ttl: int = _doc("Seconds before a quiet shopper's nbo:{user_id} key expires.", default=86_400)
    baskets_retention: int = _doc("Seconds the internal baskets topic keeps orders; workers relearn "
                                  "'bought together' from it when they start.", default=30 * 86_400)
    changelog_segment: int = _doc("Seconds after which the shopper table's changelog starts a new "
                                  "segment (segment.ms of the changelog topics the worker creates): "
                                  "compaction drops superseded states only from closed segments, and a "
                                  "worker taking over partitions reads their changelog whole.",
                                  default=900)
    max_message_bytes: int = _doc("Larger input messages go to the dead-letter topic.",
                                  default=1_000_000)
    dead_letter_raw_bytes: int = _doc("Bytes of an unusable message copied into its dead-letter "
                                      "record (raw_truncated marks a cut).", default=65_536)
    max_order_items: int = _doc("Most lines in one purchase's items (real wholesale orders reach "
                                "~1,100; the message size limit bounds it too).", default=2000)
    max_id_length: int = _doc("Longest identifier (event, user, product, offer id) accepted.",
                              default=256)
    session_timeout: float = _doc("Seconds without a heartbeat before Kafka gives a worker's partitions "
                                  "to the others (how fast a crashed worker is replaced).", default=30.0)
    standby_replicas: int = _doc("Standby copies of each shopper-table partition kept by other workers "
                                 "(faster failover, more memory). 0 by default: faust-streaming 0.15 "
                                 "can stall recovering a partition that was a standby.", default=0)
    metrics_port: int = _doc("Port of the worker's Prometheus /metrics (0: off). A taken port is "
                             "logged and the worker runs on without metrics; give each worker on "
                             "one host its own port.", default=9464)
    http_host: str = _doc("Address `nextoffer serve` (dashboard, HTTP lookup, feedback) listens on.",
                          default="127.0.0.1")
    http_port: int = _doc("Port of `nextoffer serve`.", default=8080)
    http_token: str = _doc("Bearer token `nextoffer serve` requires for shopper data and feedback "
                           "(a secret: never printed). Empty: a random one is made and shown at start.",
                           default="", repr=False)
    web_enabled: bool = _doc("Run Faust's web server in the worker (off: it can expose tables).",
                             default=False)
    web_port: int = _doc("Port of the worker's web server when enabled.", default=6066)
    data_dir: str = _doc("Directory for the worker's local files (Faust's datadir).",
                         default=".run/faust")
    stall_timeout: float = _doc("Seconds the shopper agent may sit idle while an input partition still "
                                "has unprocessed events before the worker reads them again "
                                "(guards against records dropped around a rebalance).", default=15.0)
    stall_restart: float = _doc("Seconds a worker may stay stuck (a stream the consumer keeps paused, a "
                                "consumer that stops answering, or records it does not deliver after "
                                "re-reads) before it exits with code 75 to be started again by "
                                "`nextoffer worker`'s supervisor or by Kubernetes; 0: never.",
                                default=180.0)
    batch_max: int = _doc("Most shopper events applied before their offers are written to Redis in one "
                          "round trip and published.", default=500)
    batch_wait: float = _doc("Seconds the worker waits for more events before it publishes a smaller "
                             "batch (adds at most this to an offer's latency).", default=0.005)
    model_checkpoint_interval: float = _doc("Seconds between two checkpoints of the acceptance model (what is "
                                            "learned only from events) to the internal compacted "
                                            "nextoffer-models topic; a starting worker resumes from the "
                                            "latest; 0: never.", default=60.0)
    delivery_timeout: float = _doc("Seconds the worker sends again the records of a batch that Kafka "
                                   "refuses (a size limit, a denied write), with a growing pause, before it "
                                   "stops without acknowledging the batch's events (its supervisor starts "
                                   "it again, and the events are applied and published again).",
                                   default=300.0)
    gc_freeze_interval: float = _doc("Seconds between two freezes of the worker's long-lived objects, which "
                                     "keeps Python's garbage-collector pauses short (streams/worker/heap.py); "
                                     "0: only once, when the catalog and learners are loaded.",
                                     default=600.0)
    partitioned_learning: bool = _doc("Each worker counts the 'bought together' pairs of its own partitions' "
                                      "products only and shares them through the internal compacted "
                                      "nextoffer-complements topic, which every worker reads (with N workers "
                                      "each does about 1/N of that learning); off: every worker counts "
                                      "every pair.", default=True)
    complements_interval: float = _doc("Seconds between two publications of the 'bought together' rows a "
                                       "worker counts to nextoffer-complements: how long other workers' "
                                       "decisions may miss its latest orders' pairs.", default=2.0)
    showcase_interval: float = _doc("Seconds between two rounds of showcase writes to Redis (the store's "
                                    "windows, those of the products and shoppers of this worker's events "
                                    "since the last round) and of view counts to the internal "
                                    "nextoffer-activity topic; 0: no showcases.", default=5.0)
    showcase_max_writes: int = _doc("Products and shoppers whose showcases one round writes at most "
                                    "(the rest wait for their next event).", default=20_000)
    showcase_refresh: float = _doc("Seconds before a product's showcase windows are written again: a product "
                                   "in every round's events is rewritten at most this often (each costs about "
                                   "1 ms of the worker's time).", default=60.0)
    report_interval: float = _doc("Seconds between the worker's progress lines in its log.", default=10.0)
    log_level: str = _doc("Worker log level: crit, error, warn, info or debug.", default="info")
    rules: OfferRules = field(default_factory=OfferRules)
    learners: LearnerSettings = field(default_factory=LearnerSettings)
    showcases: ShowcaseSettings = field(default_factory=ShowcaseSettings)

    def topic(self, name: str) -> str:
        """A topic's full name, with the deployment's prefix."""
        return f"{self.topic_prefix}{name}"

    def limits(self) -> Limits:
        """The input size limits the decoders enforce."""
        return Limits(self.max_message_bytes, self.max_order_items, self.max_id_length,
                      self.dead_letter_raw_bytes)

    def redis_key(self, user_id: str) -> str:
        return f"{self.topic_prefix}nbo:{user_id}"

    def showcase_key(self, scope: str, name: str = "") -> str:
        """A showcase hash in Redis: ``store``, ``product`` (``name`` its id) or ``user`` (the
        shopper's showcase profile)."""
        return f"{self.topic_prefix}showcase:{scope}" + (f":{name}" if scope != "store" else "")

    def status_key(self, worker_id: str = "") -> str:
        """Where a worker keeps its status snapshot for the dashboard (``*`` for all of them)."""
        return f"{self.topic_prefix}nextoffer:worker:{worker_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        try:
            rules = OfferRules(**_read(OfferRules, env))
        except SettingsError:
            raise
        except ValueError as exc:   # a choice outside its list: the message names the variable
            raise SettingsError(str(exc)) from None
        return cls(**_read(cls, env, exclude=("rules", "learners", "showcases")), rules=rules,
                   learners=LearnerSettings(**_read(LearnerSettings, env)),
                   showcases=ShowcaseSettings(**_read(ShowcaseSettings, env)))


def describe() -> Iterator[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting, for the CLI and the docs."""
    for klass in (Settings, OfferRules, LearnerSettings, ShowcaseSettings):
        for f in dataclasses.fields(klass):
            if "doc" in f.metadata:
                yield env_name(f), str(_default(f)), f.metadata["doc"]


def markdown_table() -> str:
    """The settings reference as a Markdown table (docs/settings.md)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{env}` | {_code(default)} | {doc} |" for env, default, doc in describe()]
    return "\n".join(rows) + "\n"


def _code(text: str) -> str:
    return f"`{text}`" if text else "(empty)"


def env_name(f: dataclasses.Field) -> str:
    return f.metadata.get("env") or f"NEXTOFFER_{f.name.upper()}"


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def _read(klass: type, env: Mapping[str, str], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(klass):
        name = env_name(f)
        if f.name in exclude or name not in env:
            continue
        values[f.name] = _parse(name, env[name], type(_default(f)))
    return values


def _parse(name: str, raw: str, kind: type) -> Any:
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        return kind(text)
    except ValueError:
        raise SettingsError(f"{name} must be {kind.__name__}, got {raw!r}") from None
