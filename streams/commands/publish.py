"""``kpistream publish``: event files to their Kafka topics, checked first as the worker would."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import Any, TextIO

from streams.commands.validate import TYPE_FIELD, Checker, Tally, invalid_line, read_records
from streams.config.settings import Settings
from streams.events.validation import EVENT_TYPES, MAX_BATCH_BYTES, EventType, ValidationRules

__all__ = ["add_parser", "bootstrap_servers", "run", "topic_of"]

_IN_FLIGHT = 5000
"""Messages sent before waiting for their acks: bounds memory, keeps the pipe full."""


def bootstrap_servers(broker_url: str) -> str:
    """``kafka://h1:9092;h2:9092`` (Faust URL form) -> ``h1:9092,h2:9092`` for aiokafka."""
    hosts = re.sub(r"^[a-z]+://", "", broker_url)
    return ",".join(h.strip() for h in re.split(r"[;,]", hosts) if h.strip())


def topic_of(settings: Settings, event_type: EventType) -> str:
    """The topic of an event type, from the settings' [topics]."""
    return next(name for name, t in settings.event_topics.items() if t == event_type)


class _Progress:
    """A one-line count on stderr, redrawn at most twice a second; silent if not a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.on = stream.isatty()
        self._started = self._drawn = time.monotonic()

    def clear(self) -> None:
        """Make room for a line of output on the same terminal."""
        if self.on:
            self._stream.write("\r\033[K")

    def show(self, sent: int, rejected: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (not final and now - self._drawn < 0.5):
            return
        self._drawn = now
        rate = sent / max(now - self._started, 1e-9)
        self._stream.write(f"\r{sent} sent, {rejected} rejected, {rate:,.0f} events/s ")
        if final:
            self._stream.write("\n")
        self._stream.flush()


async def _publish(settings: Settings, args: argparse.Namespace, tally: Tally) -> int:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from streams.kafka.clients import aiokafka_options

    checker = Checker(ValidationRules(settings.fx), args.type, validate=not args.no_validate)
    bootstrap = bootstrap_servers(settings.broker)
    # A batch line may be 1 MiB, the worker's limit: let the broker judge, not the client.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_request_size=2 * MAX_BATCH_BYTES,
                                **aiokafka_options(settings.kafka))
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        print(f"kpistream publish: cannot reach Kafka at {bootstrap} (KPISTREAM_BROKER, "
              f"[kafka] security settings): {exc}", file=sys.stderr)
        return 3
    topics = {event_type: topic_of(settings, event_type) for event_type in EVENT_TYPES}
    progress = _Progress(sys.stderr)
    pending: list[Any] = []
    sent = rejected = 0
    started = time.monotonic()
    try:
        for path in args.files:
            tally.files += 1
            for record in read_records(path):
                tally.messages += 1
                checked = checker.check(record.raw)
                for verdict in checked.verdicts:
                    tally.add(verdict)
                    if verdict.reason is not None:
                        rejected += 1
                        progress.clear()
                        print(invalid_line(record, verdict), flush=progress.on)
                for message in checked.messages:
                    if args.rate:  # hold the pace: the next event may leave at sent / rate
                        delay = started + sent / args.rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    pending.append(await producer.send(
                        topics[message.type], message.value, key=message.key))
                    sent += message.events
                if len(pending) >= _IN_FLIGHT:
                    await asyncio.gather(*pending)
                    pending.clear()
                progress.show(sent, rejected)
        await asyncio.gather(*pending)
    except KafkaError as exc:
        print(f"kpistream publish: Kafka did not take every message: {exc}; "
              "events are deduplicated by event_id, so publishing the file again is safe",
              file=sys.stderr)
        return 3
    finally:
        await producer.stop()
    progress.show(sent, rejected, final=True)
    return 1 if rejected else 0


def add_parser(commands: Any) -> None:
    """Register ``kpistream publish``."""
    parser = commands.add_parser(
        "publish", help="send event files to their Kafka topics, checked first",
        description="Send events to their topics (by the settings' [topics]; broker from "
                    "KPISTREAM_BROKER), acknowledged by all in-sync replicas. Invalid events "
                    "are reported with the worker's reason and not sent. Exit status: 0 all "
                    "sent, 1 some rejected (the rest sent), 2 unreadable file or settings, "
                    "3 Kafka unreachable or a send failed.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="NDJSON or a JSON array; - for stdin")
    parser.add_argument("--type", choices=EVENT_TYPES, default=None,
                        help=f"event type of events without a '{TYPE_FIELD}' field")
    parser.add_argument("--no-validate", action="store_true",
                        help="send without checking (the worker dead-letters what is bad)")
    parser.add_argument("--rate", type=_positive, default=None, metavar="N",
                        help="send at most N events per second")
    parser.set_defaults(run=run)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of events per second > 0, got {text}")
    return value


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Publish every file; see the exit statuses in the parser's description."""
    tally = Tally()
    started = time.perf_counter()
    try:
        status = asyncio.run(_publish(settings, args, tally))
    except OSError as exc:
        print(f"kpistream publish: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    print(tally.summary(time.perf_counter() - started,
                        "sent" if status != 3 else "valid (not all sent)"))
    return status
