"""The evaluation replay through Kafka, a worker and Redis gives the offline figure, within noise."""

import pytest

from nextoffer.streams.tools.evaluation import EngineMethod, evaluate, orders_from
from nextoffer.streams.tools.datasets import read_invoices
from nextoffer.streams.tools.live_eval import run_live
from nextoffer.streams.io.settings import Settings
from tests.integration.conftest import BOOTSTRAP, REDIS_URL
from tests.unit.test_datasets import RETAIL

pytestmark = pytest.mark.integration


def test_live_replay_matches_the_offline_engine(stack):
    orders = orders_from(read_invoices(RETAIL))[:2000]
    env = {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "REDIS_URL": REDIS_URL, "NEXTOFFER_PRICE_RULES": "off"}
    settings = Settings.from_env(env)
    (offline,), _ = evaluate(orders, [EngineMethod("offline", settings.rules)])
    live, info = run_live(settings, orders, env=env)
    assert live.scored == offline.scored > 300
    print(f"\nlive {live.hit_rate:.3f} vs offline {offline.hit_rate:.3f} on {live.scored} scored orders")
    # The live worker learns each order a few ms later (via the baskets topic); nothing else differs.
    assert abs(live.hit_rate - offline.hit_rate) <= 0.03
    assert abs(live.coverage - offline.coverage) <= 0.03
    assert not any(t.startswith(info["prefix"]) for t in _topics())


def _topics():
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        return admin.list_topics()
    finally:
        admin.close()
