"""``kpistream collector``: an HTTP endpoint for trackers that cannot speak Kafka.

``POST /v1/events`` takes one event or a JSON array of up to 1,000, with a tracker's
bearer token. Each event is routed by its ``type`` field (or ``?type=``) and checked as
the worker would check it; the valid ones are produced to their topics (one event as a
message of its own, more as batch arrays per type), acknowledged by all in-sync
replicas, before the answer: 202 when every event was taken; 400 with the index
and reason of each refused event (the valid ones of the same request are taken all the
same); 401 without a valid token; 413 over the body limit; 503 while Kafka cannot take
them. Also ``/health``, ``/ready`` (the producer is connected) and ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from streams.commands.publish import bootstrap_servers, topic_of
from streams.commands.validate import TYPE_FIELD, Checker, Outgoing
from streams.config.errors import SettingsError
from streams.config.settings import Settings
from streams.events.validation import (
    EVENT_TYPES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    EventType,
    ValidationRules,
)

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry

# aiohttp, aiokafka and prometheus_client are imported where used: every other
# kpistream command imports this module to list its options, and should start fast.

__all__ = ["Collector", "CollectorMetrics", "add_parser", "run"]

log = logging.getLogger("kpistream.collector")

PATH = "/v1/events"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_OUTCOMES = ("accepted", "invalid", "failed")
_BATCH_BYTES = MAX_BATCH_BYTES - 64 * 1024
"""A batch message's size cap: under the worker's limit and aiokafka's 1 MiB request."""
_Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class CollectorMetrics:
    """The collector's own series, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry, trackers: list[str]) -> None:
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Histogram

        self.registry = registry
        self.requests = PromCounter(
            "kpistream_collector_requests", f"Requests to POST {PATH}, by HTTP status.",
            ["status"], registry=registry)
        self.events = PromCounter(
            "kpistream_collector_events", "Events received, by tracker, type and outcome "
            "(accepted: acknowledged by Kafka; invalid: refused with a reason; failed: "
            "valid but Kafka did not acknowledge them).",
            ["tracker", "type", "outcome"], registry=registry)
        self.latency = Histogram(
            "kpistream_collector_request_duration_seconds",
            f"Time to answer POST {PATH}, Kafka acknowledgement included.",
            buckets=_LATENCY_BUCKETS, registry=registry)
        for tracker in trackers:  # zeros from the start, so rate() sees the first event
            for event_type in EVENT_TYPES:
                for outcome in _OUTCOMES:
                    self.events.labels(tracker, event_type, outcome)


def _batched(events: list[Outgoing]) -> list[Outgoing]:
    """One event alone, with its key; more as batch arrays per type, under the batch limits.

    The worker counts a batch element exactly as a message of its own (SPEC 1); one Kafka
    message per event would cost the collector most of its time in the producer.
    """
    if len(events) == 1:
        return events
    out: list[Outgoing] = []
    by_type: dict[EventType, list[bytes]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event.value)
    for event_type, values in by_type.items():
        chunk: list[bytes] = []
        size = 2
        for value in [*values, None]:
            if chunk and (value is None or len(chunk) == MAX_BATCH_EVENTS
                          or size + len(value) + 1 > _BATCH_BYTES):
                out.append(Outgoing(event_type, b"[" + b",".join(chunk) + b"]", None,
                                    len(chunk)))
                chunk, size = [], 2
            if value is not None:
                chunk.append(value)
                size += len(value) + 1
    return out


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None
          ) -> web.Response:
    from aiohttp import web

    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


class Collector:
    """The aiohttp application and its Kafka producer."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry

        config = settings.collector
        if not config.tokens:
            raise SettingsError(
                "[collector.tokens] (or KPISTREAM_COLLECTOR_TOKENS)",
                "no tracker token is set, so every request would be refused; add one "
                'per tracker, like shop-backend = "<16+ characters>"')
        self.settings = settings
        self._tokens = [(token.encode(), tracker) for tracker, token in config.tokens.items()]
        self._topics = {t: topic_of(settings, t) for t in EVENT_TYPES}
        rules = ValidationRules(settings.fx)
        hint = "add ?type=<type> to the URL"
        self._checkers: dict[str | None, Checker] = {
            t: Checker(rules, t, type_hint=hint) for t in (None, *EVENT_TYPES)}
        self.metrics = CollectorMetrics(
            CollectorRegistry() if registry is None else registry, sorted(config.tokens))
        self.producer: Any = None
        self._connecting: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.producer is not None

    def app(self) -> web.Application:
        from aiohttp import web

        @web.middleware
        async def cors(request: web.Request, handler: _Handler) -> web.StreamResponse:
            return await self._cors(request, handler)

        app = web.Application(client_max_size=self.settings.collector.max_body_bytes,
                              middlewares=[cors])
        app.router.add_post(PATH, self._post)
        app.router.add_route("OPTIONS", PATH, self._preflight)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    # --- Kafka ------------------------------------------------------------------------

    async def _start(self, app: web.Application) -> None:
        self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        """Start the producer, retrying with backoff until Kafka answers."""
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        from streams.kafka.clients import aiokafka_options

        bootstrap = bootstrap_servers(self.settings.broker)
        backoff = 0.5
        while True:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                                        request_timeout_ms=10_000,
                                        **aiokafka_options(self.settings.kafka))
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                log.warning("Kafka at %s (KPISTREAM_BROKER) not reachable: %s; retrying in "
                            "%.1f s", bootstrap, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.producer = producer
            log.info("connected to Kafka at %s: ready", bootstrap)
            return

    async def _stop(self, app: web.Application) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self.producer is not None:
            await self.producer.stop()  # flushes what is in flight
            self.producer = None

    async def _produce(self, events: list[Outgoing]) -> None:
        futures = [await self.producer.send(self._topics[m.type], m.value, key=m.key)
                   for m in _batched(events)]
        await asyncio.gather(*futures)

    # --- HTTP -------------------------------------------------------------------------

    def _tracker(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = token.strip().encode()
        found = None
        for known, tracker in self._tokens:  # no early exit: time tells nothing
            if hmac.compare_digest(known, given):
                found = tracker
        return found

    async def _post(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = await self._receive(request)
        self.metrics.requests.labels(str(response.status)).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        return response

    async def _receive(self, request: web.Request) -> web.Response:
        from aiohttp import web

        tracker = self._tracker(request)
        if tracker is None:
            return _json(401, {"error": "a tracker token is required: send the header "
                                        "Authorization: Bearer <token>"},
                         {"WWW-Authenticate": 'Bearer realm="kpistream"'})
        limit = self.settings.collector.max_body_bytes
        too_large = {"error": f"the body may be at most {limit} bytes; send smaller batches"}
        if request.content_length is not None and request.content_length > limit:
            return _json(413, too_large)
        default = request.query.get("type")
        if default is not None and default not in EVENT_TYPES:
            return _json(400, {"error": f"query parameter type={default!r} is not an event "
                                        f"type; one of: {' '.join(EVENT_TYPES)}"})
        if not self.ready:
            return _json(503, {"error": "not connected to Kafka yet; retry shortly"},
                         {"Retry-After": "5"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(413, too_large)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _json(400, {"error": f"the body is not valid UTF-8 JSON: {exc}"})
        if isinstance(doc, dict):
            doc = [doc]
        if not isinstance(doc, list) or not doc:
            return _json(400, {"error": "the body must be one event object or a non-empty "
                                        "JSON array of them"})
        if len(doc) > MAX_BATCH_EVENTS:
            return _json(413, {"error": f"the batch holds {len(doc)} events; at most "
                                        f"{MAX_BATCH_EVENTS} are taken in one request"})
        return await self._take(tracker, doc, self._checkers[default])

    async def _take(self, tracker: str, events: list[Any], checker: Checker) -> web.Response:
        from aiokafka.errors import KafkaError

        errors: list[dict[str, Any]] = []
        good: list[Outgoing] = []
        for index, event in enumerate(events):
            checked = checker.check_event(event)
            (verdict,) = checked.verdicts
            if verdict.reason is not None:
                errors.append({"index": index, "type": verdict.type, "reason": verdict.reason})
            else:
                good.extend(checked.messages)
        self._count(tracker, "invalid", Counter(e["type"] for e in errors))
        taken: Counter[str] = Counter(m.type for m in good)
        try:
            await self._produce(good)
        except KafkaError as exc:
            self._count(tracker, "failed", taken)
            log.warning("Kafka did not acknowledge %d events: %s", len(good), exc)
            return _json(503, {
                "error": f"Kafka did not acknowledge the events ({type(exc).__name__}); "
                         "resend the request: events are deduplicated by event_id",
                "accepted": 0, "rejected": len(errors), "errors": errors,
            }, {"Retry-After": "5"})
        self._count(tracker, "accepted", taken)
        if not errors:
            return _json(202, {"accepted": len(good), "rejected": 0})
        return _json(400, {
            "accepted": len(good), "rejected": len(errors), "errors": errors,
            "message": f"{len(good)} valid events of this request were accepted and stored; "
                       f"the {len(errors)} listed in errors were refused and not stored: fix "
                       "and resend only those (by index).",
        })

    def _count(self, tracker: str, outcome: str, by_type: Counter[str]) -> None:
        for event_type, count in by_type.items():
            self.metrics.events.labels(tracker, event_type, outcome).inc(count)

    async def _preflight(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "86400",
        })

    async def _cors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Let browser pixels of the allowed origins read every answer, errors included."""
        from aiohttp import web

        origins = self.settings.collector.cors_origins
        origin = request.headers.get("Origin")
        allow = None
        if origin is not None:
            allow = "*" if "*" in origins else origin if origin in origins else None
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if allow is not None:
                exc.headers["Access-Control-Allow-Origin"] = allow
            raise
        if allow is not None:
            response.headers["Access-Control-Allow-Origin"] = allow
            if allow != "*":
                response.headers["Vary"] = "Origin"
        return response

    async def _health(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(text="ok\n")

    async def _ready(self, request: web.Request) -> web.Response:
        from aiohttp import web

        if self.ready:
            return web.Response(text="ready\n")
        return web.Response(text="not ready: not connected to Kafka yet\n", status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_parser(commands: Any) -> None:
    """Register ``kpistream collector``."""
    parser = commands.add_parser(
        "collector", help=f"HTTP endpoint for trackers: POST {PATH} -> Kafka",
        description=f"Take events over HTTP (POST {PATH}, bearer token per tracker) and "
                    "produce them to Kafka. Port KPISTREAM_COLLECTOR_PORT (default 6067); "
                    f"events routed by their '{TYPE_FIELD}' field or ?type=.",
    )
    parser.add_argument("--loglevel", default="info")
    parser.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 2 on bad settings or a port that cannot be bound."""
    from aiohttp import web
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # type: ignore[no-untyped-call]
    logging.basicConfig(level=str(args.loglevel).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        collector = Collector(settings)
    except SettingsError as exc:
        print(f"kpistream: {exc}", file=sys.stderr)
        return 2
    config = settings.collector
    log.info("kpistream collector on http://%s:%d%s for trackers %s", config.host,
             config.port, PATH, ", ".join(sorted(config.tokens)))
    try:
        web.run_app(collector.app(), host=config.host, port=config.port, print=None,
                    access_log=None)
    except OSError as exc:
        print(f"kpistream: cannot listen on {config.host}:{config.port} "
              f"(KPISTREAM_COLLECTOR_PORT): {exc.strerror}", file=sys.stderr)
        return 2
    return 0
