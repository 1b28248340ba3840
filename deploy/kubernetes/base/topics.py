"""kpistream's Kafka topics on Kubernetes, run with the kpistream image's Python.

    python /etc/kpistream-topics/topics.py create   # the Job kpistream-topics
    python /etc/kpistream-topics/topics.py wait     # the workers' init container

It reads the settings the workers read (KPISTREAM_CONFIG's [topics], KPISTREAM_BROKER,
KPISTREAM_PARTITIONS), so it makes exactly the topics they consume, with the partition
count they expect. ``create`` makes the missing ones and fails when one exists with
another count; ``wait`` returns once all exist, so that no worker subscribes first and
has the broker auto-create a topic with its default count.

The connection: ``[kafka]`` security_protocol, sasl_mechanism, sasl_username and
ssl_cafile, each also as KPISTREAM_KAFKA_<KEY> (SPEC section 3), the password only from
KPISTREAM_KAFKA_SASL_PASSWORD; replication_factor (KPISTREAM_KAFKA_REPLICATION_FACTOR)
for the topics it creates, the broker's default without one.
Exit status: 0 done, 1 a topic has another partition count, 2 bad settings or Kafka
unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import tomllib
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from streams.commands.publish import bootstrap_servers
from streams.config.errors import SettingsError
from streams.config.settings import Settings, load_settings

WAIT_EVERY_S = 5.0
CONNECT_TIMEOUT_S = 60.0


def _kafka_option(key: str, env: Mapping[str, str]) -> str | None:
    """A [kafka] key, KPISTREAM_KAFKA_<KEY> winning over the settings file."""
    value = env.get(f"KPISTREAM_KAFKA_{key.upper()}")
    if value is not None:
        return value
    config = env.get("KPISTREAM_CONFIG")
    if not config:
        return None
    with open(config, "rb") as file:
        found = tomllib.load(file).get("kafka", {}).get(key)
    return None if found is None else str(found)


def _client_options(env: Mapping[str, str]) -> dict[str, Any]:
    protocol = (_kafka_option("security_protocol", env) or "PLAINTEXT").upper()
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        cafile = _kafka_option("ssl_cafile", env)
        options["ssl_context"] = ssl.create_default_context(cafile=cafile)
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = (_kafka_option("sasl_mechanism", env) or "PLAIN").upper()
        options["sasl_plain_username"] = _kafka_option("sasl_username", env)
        options["sasl_plain_password"] = env.get("KPISTREAM_KAFKA_SASL_PASSWORD")
    return options


def _topics(settings: Settings) -> list[str]:
    t = settings.topics
    return [t.views, t.engagements, t.clicks, t.orders, t.spend, t.deadletter]


async def _partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """Partition counts of those of ``topics`` that exist."""
    existing = set(await admin.list_topics())
    wanted = [t for t in topics if t in existing]
    if not wanted:
        return {}
    return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(wanted)}


async def _run(mode: str, settings: Settings, env: Mapping[str, str]) -> int:
    topics = _topics(settings)
    bootstrap = bootstrap_servers(settings.broker)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_client_options(env))
    await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
    try:
        found = await _partitions(admin, topics)
        if mode == "wait":
            while missing := [t for t in topics if t not in found]:
                print(f"topics: waiting for {', '.join(missing)} on {bootstrap}", flush=True)
                await asyncio.sleep(WAIT_EVERY_S)
                found = await _partitions(admin, topics)
            print(f"topics: all {len(topics)} exist", flush=True)
            return 0
        replication = _kafka_option("replication_factor", env)
        missing = [t for t in topics if t not in found]
        if missing:
            await admin.create_topics([
                NewTopic(t, settings.partitions, int(replication) if replication else -1)
                for t in missing])
            found = await _partitions(admin, topics)
        wrong = {t: found.get(t) for t in topics if found.get(t) != settings.partitions}
        for topic, count in wrong.items():
            print(f"topics: {topic} has {count} partitions; the workers expect "
                  f"{settings.partitions} (KPISTREAM_PARTITIONS)", file=sys.stderr)
        if not wrong:
            print(f"topics: {len(topics)} topics with {settings.partitions} partitions "
                  f"({len(missing)} created)", flush=True)
        return 1 if wrong else 0
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["create", "wait"])
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        return asyncio.run(_run(args.mode, settings, os.environ))
    except SettingsError as exc:
        print(f"topics: {exc}", file=sys.stderr)
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        print(f"topics: Kafka at {settings.broker} (KPISTREAM_BROKER): "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
