"""``kpistream validate``: event files in, the worker's verdict on every event out.

Also the checking that ``publish`` and the collector share. Each event is routed by its
``type`` field (or a default type), that field is removed, and parse_message, the
worker's own validator, judges exactly the bytes that would be sent: the reasons are the
ones the worker would dead-letter the event with.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

import orjson

from streams.config.settings import Settings
from streams.events.validation import (
    EVENT_TYPES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    Event,
    EventType,
    Rejection,
    ValidationRules,
    parse_message,
)

__all__ = [
    "TYPE_FIELD",
    "Checked",
    "Checker",
    "Outgoing",
    "Record",
    "Verdict",
    "add_parser",
    "read_records",
    "run",
    "wall_clock_ms",
]

TYPE_FIELD = "type"
"""The routing field: which topic an event goes to. The worker never sees it."""
_UNKNOWN = "unknown"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """One event's verdict: ``reason`` is None when it is valid."""

    index: int | None
    """Position in its batch array; None for a single event."""
    type: str
    reason: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A Kafka message of valid events only, without their ``type`` fields."""

    type: EventType
    value: bytes
    key: bytes | None
    events: int


@dataclass(slots=True)
class Checked:
    """What one message (a line, or an element of a JSON array file) turned into."""

    verdicts: list[Verdict] = field(default_factory=list)
    messages: list[Outgoing] = field(default_factory=list)


class Record(NamedTuple):
    """One message read from a file: an event object or a batch array, as bytes."""

    source: str
    line: int | None
    """Line number in an NDJSON file; None for an element of a JSON array file."""
    item: int | None
    """Position in a JSON array file; None for an NDJSON line."""
    raw: bytes

    def where(self, index: int | None = None) -> str:
        place = f"{self.source}:{self.line}" if self.line is not None else \
            f"{self.source}[{self.item}]"
        return place if index is None else f"{place}[{index}]"


class Checker:
    """Routes and validates messages the way the worker will see them."""

    def __init__(
        self, rules: ValidationRules, default_type: EventType | None, *,
        validate: bool = True, type_hint: str = "pass --type",
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._rules = rules
        self._default = default_type
        self._validate = validate
        self._clock_ms = clock_ms
        self._no_type = (f"no event type: give the event a '{TYPE_FIELD}' field "
                         f"({' '.join(EVENT_TYPES)}) or {type_hint}")

    def check(self, raw: bytes) -> Checked:
        """Verdicts for one message, and the messages of its valid events to send."""
        if len(raw) > MAX_BATCH_BYTES:
            return self._whole(raw)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._whole(raw)
        if isinstance(doc, dict):
            return self._single(doc, raw)
        if isinstance(doc, list) and doc and (len(doc) <= MAX_BATCH_EVENTS
                                              or not self._validate):
            return self._batch(doc, raw)
        return self._whole(raw)

    def check_event(self, doc: object) -> Checked:
        """One event of a collector request: always sent as its own message."""
        if isinstance(doc, dict):
            return self._single(doc, None)
        return Checked([Verdict(None, self._default or _UNKNOWN, self._not_an_object(doc))])

    def _not_an_object(self, element: object) -> str:
        """The worker's reason for a batch element that is no JSON object."""
        (rejection,) = self._verdicts(orjson.dumps([element]), self._default or "view")
        assert isinstance(rejection, Rejection)
        return rejection.reason

    def _whole(self, raw: bytes) -> Checked:
        """A message refused whole: not JSON, too big, empty or oversized batch, a scalar."""
        if not self._validate:
            if self._default is None:
                return Checked([Verdict(None, _UNKNOWN, self._no_type)])
            return Checked([Verdict(None, self._default)],
                           [Outgoing(self._default, raw, None, 1)])
        (rejection,) = self._verdicts(raw, self._default or "view")
        assert isinstance(rejection, Rejection)
        return Checked([Verdict(None, self._default or _UNKNOWN, rejection.reason)])

    def _route(self, doc: dict[str, Any]) -> tuple[EventType | None, str | None, bool]:
        """(type, problem, whether a type field was removed) of one event object."""
        had_field = TYPE_FIELD in doc
        value = doc.pop(TYPE_FIELD) if had_field else None
        if value is None:
            if self._default is None:
                return None, self._no_type, had_field
            return self._default, None, had_field
        for event_type in EVENT_TYPES:
            if value == event_type:
                return event_type, None, had_field
        return None, (f"field '{TYPE_FIELD}' is {orjson.dumps(value).decode()[:80]}; "
                      f"it must be one of: {' '.join(EVENT_TYPES)}"), had_field

    def _single(self, doc: dict[str, Any], raw: bytes | None) -> Checked:
        event_type, problem, had_field = self._route(doc)
        event_id = doc.get("event_id")
        shown_id = event_id if isinstance(event_id, str) else None
        if event_type is None:
            return Checked([Verdict(None, _UNKNOWN, problem, shown_id)])
        value = orjson.dumps(doc) if had_field or raw is None else raw
        campaign = doc.get("campaign_id")
        key = campaign.encode() if isinstance(campaign, str) else None
        if not self._validate:
            return Checked([Verdict(None, event_type, None, shown_id)],
                           [Outgoing(event_type, value, key, 1)])
        (verdict,) = self._verdicts(value, event_type)
        if isinstance(verdict, Rejection):
            return Checked([Verdict(None, event_type, verdict.reason, shown_id)])
        return Checked([Verdict(None, event_type, None, verdict.event_id)],
                       [Outgoing(event_type, value, key, 1)])

    def _batch(self, doc: list[Any], raw: bytes) -> Checked:
        verdicts: dict[int, Verdict] = {}
        groups: dict[EventType, list[tuple[int, Any]]] = {}
        stripped = False
        for i, element in enumerate(doc):
            if isinstance(element, dict):
                event_type, problem, had_field = self._route(element)
                stripped |= had_field
            else:
                event_type = self._default
                problem = None if event_type else self._not_an_object(element)
            if event_type is None:
                verdicts[i] = Verdict(i, _UNKNOWN, problem)
            else:
                groups.setdefault(event_type, []).append((i, element))
        checked = Checked()
        for event_type, items in groups.items():
            untouched = not stripped and len(items) == len(doc)
            value = raw if untouched else orjson.dumps([element for _, element in items])
            if not self._validate:
                verdicts.update((i, Verdict(i, event_type)) for i, _ in items)
                checked.messages.append(Outgoing(event_type, value, None, len(items)))
                continue
            results = self._verdicts(value, event_type)
            if len(results) != len(items):  # the whole message was refused
                results = results * len(items)
            good = []
            for (i, element), result in zip(items, results, strict=True):
                if isinstance(result, Event):
                    verdicts[i] = Verdict(i, event_type, None, result.event_id)
                    good.append(element)
                else:
                    verdicts[i] = Verdict(i, event_type, result.reason)
            if good:
                sent = value if len(good) == len(items) else orjson.dumps(good)
                checked.messages.append(Outgoing(event_type, sent, None, len(good)))
        checked.verdicts = [verdicts[i] for i in range(len(doc))]
        return checked

    def _verdicts(self, raw: bytes, event_type: EventType) -> list[Event | Rejection]:
        try:
            return parse_message(raw, event_type, self._rules, self._clock_ms())
        except Exception as exc:  # a validator bug must not stop the check
            reason = (f"the worker's validator fails on this message ({type(exc).__name__}: "
                      f"{exc}); a kpistream bug, the worker cannot take it")
            return [Rejection(event_type, reason, "")]


def read_records(path: str) -> Iterator[Record]:
    """The messages of one file ('-' for stdin): NDJSON lines, or a JSON array's elements.

    A file whose whole content is one JSON array is a list of events, each its own
    message; otherwise every non-blank line is a message: an event object or a batch.
    """
    source = "<stdin>" if path == "-" else path
    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    with stream if path != "-" else contextlib.nullcontext(stream):  # stdin stays open
        head: list[bytes] = []
        for line in stream:
            head.append(line)
            if line.strip():
                break
        if head and head[-1].lstrip().startswith(b"["):
            whole = b"".join(head) + stream.read()
            try:
                doc = orjson.loads(whole)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, list):
                for i, element in enumerate(doc):
                    yield Record(source, None, i, orjson.dumps(element))
                return
            yield from _lines(source, whole.splitlines())
            return
        yield from _lines(source, _chain(head, stream))


def _chain(head: list[bytes], rest: Iterable[bytes]) -> Iterator[bytes]:
    yield from head
    yield from rest


def _lines(source: str, lines: Iterable[bytes]) -> Iterator[Record]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text:
            yield Record(source, number, None, text)


@dataclass(slots=True)
class Tally:
    """Counts for the summary line."""

    files: int = 0
    messages: int = 0
    valid: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> None:
        (self.valid if verdict.reason is None else self.invalid)[verdict.type] += 1

    def summary(self, seconds: float, valid_word: str = "valid") -> str:
        valid, invalid = sum(self.valid.values()), sum(self.invalid.values())
        text = (f"{_count(self.files, 'file')}, {_count(self.messages, 'message')}, "
                f"{_count(valid + invalid, 'event')}: {valid} {valid_word}, {invalid} invalid")
        if invalid:
            text += " (" + ", ".join(f"{t} {n}" for t, n in sorted(self.invalid.items())) + ")"
        return f"{text}; {seconds:.1f} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def invalid_line(record: Record, verdict: Verdict) -> str:
    return f"{record.where(verdict.index)}: invalid {verdict.type}: {verdict.reason}"


def add_parser(commands: Any) -> None:
    """Register ``kpistream validate``."""
    parser = commands.add_parser(
        "validate", help="check event files (NDJSON or a JSON array) as the worker would",
        description="Check events as the worker would: one line per invalid event with "
                    "the reason it would be dead-lettered with, then a summary. Exit "
                    "status 1 when any event is invalid.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="NDJSON or a JSON array; - for stdin")
    parser.add_argument("--type", choices=EVENT_TYPES, default=None,
                        help=f"event type of events without a '{TYPE_FIELD}' field")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print a line for every valid event too")
    parser.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Validate every file; 0 when all events are valid, 1 when any is not, 2 on I/O errors."""
    checker = Checker(ValidationRules(settings.fx), args.type)
    tally = Tally()
    started = time.perf_counter()
    out = sys.stdout
    try:
        for path in args.files:
            tally.files += 1
            for record in read_records(path):
                tally.messages += 1
                for verdict in checker.check(record.raw).verdicts:
                    tally.add(verdict)
                    if verdict.reason is not None:
                        out.write(invalid_line(record, verdict) + "\n")
                    elif args.verbose:
                        out.write(f"{record.where(verdict.index)}: ok {verdict.type} "
                                  f"{verdict.event_id}\n")
    except OSError as exc:
        print(f"kpistream validate: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    out.write(tally.summary(time.perf_counter() - started) + "\n")
    return 1 if tally.invalid else 0
