"""Settings: the TOML file of KPISTREAM_CONFIG, KPISTREAM_* overrides, errors naming the setting."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.config.durations import parse_duration_ms
from streams.config.errors import SettingsError
from streams.config.settings import Topics, Window, load_settings, settings_from

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS

SPEC_TOML = """
[kpi]
windows = ["5m", "1h", "24h"]
reporting_currency = "USD"
attribution_window = "7d"

[fx]            # units of the reporting currency for one unit of each currency
EUR = 1.08
IDR = 0.000063

[promo_codes]   # promo code -> campaign
SUMMER10 = "summer-sale"

[topics]        # any of: views engagements clicks orders spend deadletter
views = "marketing.views"
"""


def write(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "kpistream.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_are_the_spec_defaults() -> None:
    settings = load_settings({})
    assert settings.broker == "kafka://localhost:9092"
    assert settings.app_id == "kpistream"
    assert settings.web_port == 6066
    assert settings.data_dir == Path("./kpistream-data")
    assert [(w.label, w.minutes) for w in settings.windows] == [
        ("5m", 5), ("1h", 60), ("24h", 1440)]
    assert settings.reporting_currency == "USD"
    assert settings.attribution_window_ms == 7 * DAY_MS
    assert dict(settings.fx) == {"USD": Decimal(1)}
    assert dict(settings.promo_codes) == {}
    assert settings.topics == Topics()
    assert settings.topics.deadletter == "marketing.deadletter"
    assert settings.event_topics == {
        "marketing.views": "view", "marketing.engagements": "engagement",
        "marketing.clicks": "click", "marketing.orders": "order", "marketing.spend": "spend",
    }
    assert settings.retention_minutes == 1440


def test_load_settings_reads_the_process_environment_when_given_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KPISTREAM_WEB_PORT", "7077")
    monkeypatch.delenv("KPISTREAM_CONFIG", raising=False)
    assert load_settings().web_port == 7077


def test_the_spec_toml_example_loads(tmp_path: Path) -> None:
    settings = load_settings({"KPISTREAM_CONFIG": write(tmp_path, SPEC_TOML)})
    assert [w.label for w in settings.windows] == ["5m", "1h", "24h"]
    # rates are exact decimals, not the binary floats TOML parses them to
    assert dict(settings.fx) == {
        "USD": Decimal(1), "EUR": Decimal("1.08"), "IDR": Decimal("0.000063")}
    assert dict(settings.promo_codes) == {"SUMMER10": "summer-sale"}
    assert settings.topics.views == "marketing.views"


def test_toml_tables_are_applied(tmp_path: Path) -> None:
    toml = """
    [kpi]
    windows = ["1m", "15m", "2h", "7d"]
    reporting_currency = "EUR"
    attribution_window = "30d"

    [fx]
    USD = "0.93"
    EUR = 1

    [promo_codes]
    BLACKFRIDAY = "bf-2026"
    "welcome:10" = "onboarding"

    [topics]
    views = "acme.views"
    deadletter = "acme.dlq"
    """
    settings = load_settings({"KPISTREAM_CONFIG": write(tmp_path, toml)})
    assert settings.windows == (
        Window("1m", 1), Window("15m", 15), Window("2h", 120), Window("7d", 7 * 1440))
    assert settings.retention_minutes == 7 * 1440
    assert settings.reporting_currency == "EUR"
    assert settings.attribution_window_ms == 30 * DAY_MS
    assert dict(settings.fx) == {"EUR": Decimal(1), "USD": Decimal("0.93")}
    assert dict(settings.promo_codes) == {"BLACKFRIDAY": "bf-2026", "welcome:10": "onboarding"}
    assert settings.topics == Topics(views="acme.views", deadletter="acme.dlq")
    assert settings.event_topics["acme.views"] == "view"
    assert settings.event_topics["marketing.orders"] == "order"


def test_environment_overrides_win_over_the_toml_file(tmp_path: Path) -> None:
    config = write(tmp_path, "[kafka]\npartitions = 4\n")
    assert load_settings({"KPISTREAM_CONFIG": config}).partitions == 4
    settings = load_settings({
        "KPISTREAM_CONFIG": config,
        "KPISTREAM_PARTITIONS": "6",
        "KPISTREAM_BROKER": "kafka://k1:9092;k2:9092",
        "KPISTREAM_APP_ID": "kpi-eu",
        "KPISTREAM_WEB_PORT": "9100",
        "KPISTREAM_DATA_DIR": "/var/lib/kpistream",
    })
    assert settings.partitions == 6
    assert settings.broker == "kafka://k1:9092;k2:9092"
    assert settings.app_id == "kpi-eu"
    assert settings.web_port == 9100
    assert settings.data_dir == Path("/var/lib/kpistream")


def test_reporting_currency_always_has_rate_one() -> None:
    settings = settings_from({"kpi": {"reporting_currency": "EUR"}, "fx": {"USD": 0.93}}, {})
    assert settings.fx["EUR"] == Decimal(1)


# ---------------------------------------------------------------------------------------
# Each bad setting raises SettingsError whose message names the setting (and the value).
# ---------------------------------------------------------------------------------------
BAD = [
    # web port: not a number, 0, above 65535, negative
    pytest.param({}, {"KPISTREAM_WEB_PORT": "http"}, "KPISTREAM_WEB_PORT", "http", id="port-text"),
    pytest.param({}, {"KPISTREAM_WEB_PORT": "0"}, "KPISTREAM_WEB_PORT", "1-65535", id="port-0"),
    pytest.param({}, {"KPISTREAM_WEB_PORT": "70000"}, "KPISTREAM_WEB_PORT", "70000",
                 id="port-too-big"),
    pytest.param({}, {"KPISTREAM_WEB_PORT": "-1"}, "KPISTREAM_WEB_PORT", "-1",
                 id="port-negative"),
    # broker: no scheme, empty, scheme without host, spaces
    pytest.param({}, {"KPISTREAM_BROKER": "localhost:9092"}, "KPISTREAM_BROKER",
                 "localhost:9092", id="broker-no-scheme"),
    pytest.param({}, {"KPISTREAM_BROKER": ""}, "KPISTREAM_BROKER", "broker URL", id="broker-empty"),
    pytest.param({}, {"KPISTREAM_BROKER": "kafka://"}, "KPISTREAM_BROKER", "kafka://",
                 id="broker-no-host"),
    pytest.param({}, {"KPISTREAM_BROKER": "kafka://a b:9092"}, "KPISTREAM_BROKER", "a b",
                 id="broker-space"),
    # app id and partitions
    pytest.param({}, {"KPISTREAM_APP_ID": "kpi stream"}, "KPISTREAM_APP_ID", "kpi stream",
                 id="app-id-space"),
    pytest.param({}, {"KPISTREAM_PARTITIONS": "0"}, "KPISTREAM_PARTITIONS", "1-1024",
                 id="partitions-0"),
    # windows: not whole minutes, duplicated, empty, not a list, not durations, 'total'
    pytest.param({"kpi": {"windows": ["90s"]}}, {}, "[kpi] windows", "90s", id="window-90s"),
    pytest.param({"kpi": {"windows": ["5m", "5m"]}}, {}, "[kpi] windows", "5m",
                 id="window-duplicate"),
    pytest.param({"kpi": {"windows": []}}, {}, "[kpi] windows", "list", id="windows-empty"),
    pytest.param({"kpi": {"windows": "5m"}}, {}, "[kpi] windows", "list", id="windows-string"),
    pytest.param({"kpi": {"windows": ["5 minutes"]}}, {}, "[kpi] windows", "5 minutes",
                 id="window-words"),
    pytest.param({"kpi": {"windows": [5]}}, {}, "[kpi] windows", "5", id="window-number"),
    pytest.param({"kpi": {"windows": ["0m"]}}, {}, "[kpi] windows", "0m", id="window-zero"),
    pytest.param({"kpi": {"windows": ["91d"]}}, {}, "[kpi] windows", "91d",
                 id="window-over-90d"),
    # other [kpi] keys
    pytest.param({"kpi": {"reporting_currency": "usd"}}, {}, "[kpi] reporting_currency", "usd",
                 id="reporting-lowercase"),
    pytest.param({"kpi": {"reporting_currency": "DOLLAR"}}, {}, "[kpi] reporting_currency",
                 "DOLLAR", id="reporting-not-a-code"),
    pytest.param({"kpi": {"attribution_window": "a week"}}, {}, "[kpi] attribution_window",
                 "a week", id="attribution-words"),
    pytest.param({"kpi": {"attribution_window": 7}}, {}, "[kpi] attribution_window", "7",
                 id="attribution-number"),
    pytest.param({"kpi": ["5m"]}, {}, "[kpi]", "table", id="kpi-not-a-table"),
    # fx: zero, negative, text, bool, NaN, the reporting currency not at 1, a bad code
    pytest.param({"fx": {"EUR": 0}}, {}, "[fx] EUR", "positive", id="fx-zero"),
    pytest.param({"fx": {"EUR": -1.08}}, {}, "[fx] EUR", "-1.08", id="fx-negative"),
    pytest.param({"fx": {"EUR": "one"}}, {}, "[fx] EUR", "one", id="fx-text"),
    pytest.param({"fx": {"EUR": True}}, {}, "[fx] EUR", "True", id="fx-bool"),
    pytest.param({"fx": {"EUR": float("nan")}}, {}, "[fx] EUR", "nan", id="fx-nan"),
    pytest.param({"fx": {"USD": 2}}, {}, "[fx] USD", "must be 1", id="fx-reporting-not-1"),
    pytest.param({"kpi": {"reporting_currency": "EUR"}, "fx": {"EUR": 1.08}}, {}, "[fx] EUR",
                 "1.08", id="fx-reporting-eur-not-1"),
    pytest.param({"fx": {"euro": 1.08}}, {}, "[fx] euro", "euro", id="fx-bad-code"),
    # promo code naming something that cannot be a campaign id
    pytest.param({"promo_codes": {"X": "summer sale!"}}, {}, "[promo_codes] X", "summer sale!",
                 id="promo-bad-campaign"),
    # topics: unknown key, two topics with one name, a name Kafka refuses
    pytest.param({"topics": {"impressions": "marketing.impressions"}}, {},
                 "[topics] impressions", "views", id="topics-unknown-key"),
    pytest.param({"topics": {"views": "marketing.clicks"}}, {}, "[topics]", "marketing.clicks",
                 id="topics-same-as-default"),
    pytest.param({"topics": {"views": "shared", "spend": "shared"}}, {}, "[topics]", "shared",
                 id="topics-two-same"),
    pytest.param({"topics": {"views": "my views"}}, {}, "[topics] views", "my views",
                 id="topics-bad-name"),
]


@pytest.mark.parametrize(("doc", "env", "setting", "value"), BAD)
def test_bad_setting_raises_an_error_naming_it(
    doc: dict[str, Any], env: dict[str, str], setting: str, value: str
) -> None:
    with pytest.raises(SettingsError) as info:
        settings_from(doc, env)
    message = str(info.value)
    assert setting in message
    assert value in message
    assert info.value.setting == setting


def test_bad_setting_in_a_toml_file_is_reported_by_name(tmp_path: Path) -> None:
    config = write(tmp_path, '[kpi]\nwindows = ["5m", "90s"]\n')
    with pytest.raises(SettingsError, match=r"\[kpi\] windows.*90s"):
        load_settings({"KPISTREAM_CONFIG": config})


def test_missing_config_file_names_kpistream_config_and_the_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(SettingsError) as info:
        load_settings({"KPISTREAM_CONFIG": missing})
    assert "KPISTREAM_CONFIG" in str(info.value)
    assert missing in str(info.value)


def test_config_path_that_is_a_directory_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="KPISTREAM_CONFIG"):
        load_settings({"KPISTREAM_CONFIG": str(tmp_path)})


def test_invalid_toml_names_kpistream_config(tmp_path: Path) -> None:
    config = write(tmp_path, "[kpi\nwindows = 5m\n")
    with pytest.raises(SettingsError) as info:
        load_settings({"KPISTREAM_CONFIG": config})
    assert "KPISTREAM_CONFIG" in str(info.value)
    assert "TOML" in str(info.value)


# Found by these tests and fixed since: UnicodeDecodeError escaped load_settings.
def test_config_file_that_is_not_utf8_is_a_settings_error(tmp_path: Path) -> None:
    config = write(tmp_path, b'[kpi]\nreporting_currency = "\xff"\n')
    with pytest.raises(SettingsError, match="KPISTREAM_CONFIG"):
        load_settings({"KPISTREAM_CONFIG": config})


# Found by these tests and fixed since: re.match with '$' also matched before a trailing
# newline, so these values were accepted.
@pytest.mark.parametrize(("doc", "env"), [
    ({"kpi": {"reporting_currency": "USD\n"}}, {}),
    ({}, {"KPISTREAM_BROKER": "kafka://localhost:9092\n"}),
    ({}, {"KPISTREAM_APP_ID": "kpistream\n"}),
    ({"topics": {"views": "marketing.views\n"}}, {}),
    ({"promo_codes": {"SUMMER10": "summer-sale\n"}}, {}),
])
def test_values_with_a_trailing_newline_are_refused(
    doc: dict[str, Any], env: dict[str, str]
) -> None:
    with pytest.raises(SettingsError):
        settings_from(doc, env)


# ---------------------------------------------------------------------------------------
# Durations as written in the settings file.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "ms"), [
    ("30s", 30_000),
    ("1m", 60_000),
    ("5m", 5 * 60_000),
    ("1h", 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    (" 5m ", 5 * 60_000),  # surrounding blanks are forgiven
])
def test_duration_is_parsed_to_milliseconds(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "m", "0m", "-5m", "1.5h", "5 m", "5min", "5w", "05m"])
def test_bad_duration_says_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="whole number and a unit s, m, h or d"):
        parse_duration_ms(text)


# --- [kafka]: the SPEC's security and topic settings ------------------------------------

SPEC_KAFKA = """
[kafka]
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "kpistream"
ssl_cafile = "{ca}"
replication_factor = 3
"""


def test_the_spec_kafka_table_with_the_password_from_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here, only read\n")
    config = write(tmp_path, SPEC_KAFKA.format(ca=ca))
    kafka = load_settings({"KPISTREAM_CONFIG": config,
                           "KPISTREAM_KAFKA_SASL_PASSWORD": "s3cret-pw"}).kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username,
            kafka.sasl_password, kafka.ssl_cafile, kafka.replication_factor) == (
        "SASL_SSL", "SCRAM-SHA-512", "kpistream", "s3cret-pw", ca, 3)
    assert "s3cret-pw" not in repr(kafka)
    assert kafka.uses_sasl and kafka.uses_tls


def test_kafka_defaults_are_plaintext_and_the_broker_replication_factor() -> None:
    kafka = settings_from({}, {}).kafka
    assert (kafka.security_protocol, kafka.replication_factor, kafka.sasl_username) == (
        "PLAINTEXT", -1, None)
    assert not kafka.uses_sasl and not kafka.uses_tls


def test_every_kafka_key_also_from_the_environment(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("from-a-file\n")
    kafka = settings_from({"kafka": {"security_protocol": "SSL"}}, {
        "KPISTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
        "KPISTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KPISTREAM_KAFKA_SASL_USERNAME": "svc",
        "KPISTREAM_KAFKA_SASL_PASSWORD_FILE": str(password),
        "KPISTREAM_KAFKA_REPLICATION_FACTOR": "2",
    }).kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username,
            kafka.sasl_password, kafka.replication_factor) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-256", "svc", "from-a-file", 2)


@pytest.mark.parametrize(("table", "env", "setting"), [
    ({"sasl_password": "SECRET-x"}, {}, "[kafka] sasl_password"),
    ({"security_protocol": "TLS"}, {}, "[kafka] security_protocol"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u"},
     {"KPISTREAM_KAFKA_SASL_PASSWORD": "SECRET-p"}, "[kafka] sasl_mechanism"),
    ({"security_protocol": "SASL_SSL"}, {"KPISTREAM_KAFKA_SASL_PASSWORD": "SECRET-p"},
     "[kafka] sasl_username"),
    ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, {},
     "KPISTREAM_KAFKA_SASL_PASSWORD"),
    ({"sasl_username": "u"}, {"KPISTREAM_KAFKA_SASL_PASSWORD": "SECRET-p"},
     "[kafka] sasl_username"),
    ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"}, {},
     "[kafka] ssl_cafile"),
    ({"replication_factor": 0}, {}, "[kafka] replication_factor"),
    ({}, {"KPISTREAM_KAFKA_REPLICATION_FACTOR": "three"}, "KPISTREAM_KAFKA_REPLICATION_FACTOR"),
    ({"replicas": 3}, {}, "[kafka] replicas"),
])
def test_bad_kafka_settings_name_the_setting_and_never_the_password(
    table: dict[str, Any], env: dict[str, str], setting: str,
) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from({"kafka": table}, env)
    assert raised.value.setting == setting
    assert "SECRET" not in str(raised.value)


def test_tls_files_need_a_tls_protocol_and_certfile_goes_with_keyfile(tmp_path: Path) -> None:
    pem = tmp_path / "a.pem"
    pem.write_text("x")
    with pytest.raises(SettingsError, match="mutual TLS needs both"):
        settings_from({"kafka": {"security_protocol": "SSL", "ssl_certfile": str(pem)}}, {})
    with pytest.raises(SettingsError, match="use SSL or SASL_SSL"):
        settings_from({"kafka": {"ssl_cafile": str(pem)}}, {})
