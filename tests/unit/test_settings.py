import pytest

from nextoffer.streams.io.settings import Settings, SettingsError, describe


def test_defaults_follow_the_contract():
    s = Settings.from_env({})
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.topic("offers") == "offers" and s.redis_key("u1") == "nbo:u1"
    assert s.redis_ttl == 86_400 and s.rules.max_items == 3


def test_prefix_applies_to_topics_and_keys():
    s = Settings.from_env({"NEXTOFFER_TOPIC_PREFIX": "eu."})
    assert s.topic("cart") == "eu.cart" and s.redis_key("u1") == "eu.nbo:u1"


def test_rules_and_learners_read_the_environment():
    s = Settings.from_env({"NEXTOFFER_PRICE_RULES": "off", "NEXTOFFER_HALF_LIFE": "3600",
                           "NEXTOFFER_UPSELL_MAX_STEP": "0.5", "NEXTOFFER_PARTITIONS": "4"})
    assert s.rules.price_rules is False and s.rules.upsell_max_step == 0.5
    assert s.learners.half_life == 3600.0 and s.partitions == 4


@pytest.mark.parametrize("env,message", [
    ({"NEXTOFFER_PARTITIONS": "many"}, "NEXTOFFER_PARTITIONS must be int, got 'many'"),
    ({"NEXTOFFER_PRICE_RULES": "maybe"}, "NEXTOFFER_PRICE_RULES must be bool"),
])
def test_bad_values_say_which_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_every_setting_is_documented():
    rows = list(describe())
    names = [name for name, _, _ in rows]
    assert "KAFKA_BOOTSTRAP_SERVERS" in names and "NEXTOFFER_DECLINE_COOLDOWN" in names
    assert len(names) == len(set(names))
    assert all(doc for _, _, doc in rows)


def test_the_settings_reference_is_up_to_date():
    from pathlib import Path
    from nextoffer.streams.io.settings import markdown_table
    doc = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    assert doc.endswith(markdown_table()), "regenerate with: nextoffer settings --markdown"
