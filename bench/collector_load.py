"""Load test of ``kpistream collector`` on loopback: requests/s, events/s, latency.

    .venv/bin/python -m bench.collector_load                       # 20,000 events
    .venv/bin/python -m bench.collector_load --events 4000 --concurrency 16 --json out.json

Starts a local broker and one collector process, then sends a bounded number of
requests with an aiohttp client: half the events one per request, half in batches.
Every answer must be 202, and every event must be on its topic afterwards.
Exit status: 0 measured and complete, 1 answers or counts wrong, 2 could not measure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from streams.kafka.tansu import LocalBroker, create_topics, free_port

__all__ = ["PhaseResult", "main"]

TOKEN: Final = "bench-token-0123456789abcdef"
TOPICS: Final = ("views", "engagements", "clicks", "orders", "spend")
_TYPES: Final = ("view", "engagement", "click", "order", "spend")
_READY_TIMEOUT_S: Final = 30.0
_REQUEST_TIMEOUT_S: Final = 30.0
_READ_BACK_S: Final = 60.0


@dataclass(slots=True)
class PhaseResult:
    name: str
    requests: int
    events: int
    seconds: float
    requests_per_s: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    not_202: int


def _event(i: int, now_ms: int) -> dict[str, Any]:
    kind = _TYPES[i % len(_TYPES)]
    event: dict[str, Any] = {"type": kind, "event_id": f"load-{i}", "ts": now_ms,
                             "campaign_id": f"camp-{i % 20}", "channel": "tiktok"}
    if kind == "view":
        event.update(user_id=f"u{i % 500}", completed=i % 3 == 0, watch_ms=9000)
    elif kind == "engagement":
        event["action"] = "like"
    elif kind == "click":
        event["click_id"] = f"ttclid-{i}"
    elif kind == "order":
        event.update(order_id=f"A{i}", customer_id=f"c{i % 900}", revenue="19.90",
                     currency="USD")
    else:
        event.update(amount="2.5", currency="USD")
    return event


def _percentile(sorted_values: list[float], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


async def _phase(name: str, url: str, bodies: list[bytes], events: int, concurrency: int
                 ) -> PhaseResult:
    import aiohttp

    latencies: list[float] = []
    not_202 = 0
    queue = iter(bodies)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal not_202
        for body in queue:  # the shared iterator hands each body to one client
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    not_202 += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return PhaseResult(
        name=name, requests=len(bodies), events=events, seconds=round(seconds, 3),
        requests_per_s=round(len(bodies) / seconds, 1), events_per_s=round(events / seconds, 1),
        p50_ms=round(_percentile(latencies, 0.50) * 1000, 2),
        p99_ms=round(_percentile(latencies, 0.99) * 1000, 2),
        max_ms=round(latencies[-1] * 1000, 2), not_202=not_202,
    )


def _events_in(batch: dict[Any, list[Any]]) -> int:
    """Events in fetched messages: an event object counts 1, a batch array its length."""
    count = 0
    for messages in batch.values():
        for message in messages:
            doc = orjson.loads(message.value)
            count += len(doc) if isinstance(doc, list) else 1
    return count


async def _events_on(bootstrap: str, topics: Sequence[str], expected: int) -> int:
    """Events on the topics, read back (Tansu's end offsets undercount record batches)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    count = 0
    try:
        deadline = time.monotonic() + _READ_BACK_S
        while count < expected and time.monotonic() < deadline:
            count += _events_in(await consumer.getmany(timeout_ms=500))
        return count + _events_in(await consumer.getmany(timeout_ms=500))  # nothing extra?
    finally:
        await consumer.stop()


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"collector exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"collector not ready within {_READY_TIMEOUT_S} s")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events in all (even)")
    parser.add_argument("--batch", type=int, default=100, help="events per batch request")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--json", default=None, help="write the results here too")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    singles = options.events // 2
    batched = options.events - singles
    now_ms = int(time.time() * 1000)
    events = [_event(i, now_ms) for i in range(options.events)]
    single_bodies = [orjson.dumps(e) for e in events[:singles]]
    rest = events[singles:]
    batch_bodies = [orjson.dumps(rest[i:i + options.batch])
                    for i in range(0, len(rest), options.batch)]
    with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
        topics = {key: f"load.{key}" for key in (*TOPICS, "deadletter")}
        create_topics(broker.bootstrap, topics.values(), options.partitions)
        config = Path(tmp) / "load.toml"
        config.write_text("[topics]\n" + "".join(f'{k} = "{v}"\n' for k, v in topics.items()),
                          encoding="utf-8")
        port = free_port()
        env = {**os.environ, "KPISTREAM_BROKER": broker.url, "KPISTREAM_CONFIG": str(config),
               "KPISTREAM_COLLECTOR_PORT": str(port), "KPISTREAM_COLLECTOR_HOST": "127.0.0.1",
               "KPISTREAM_COLLECTOR_TOKENS": f"bench={TOKEN}"}
        log = (Path(tmp) / "collector.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "streams", "collector"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, process)
            url = f"http://127.0.0.1:{port}/v1/events"
            results = [
                asyncio.run(_phase("single", url, single_bodies, singles, options.concurrency)),
                asyncio.run(_phase(f"batch{options.batch}", url, batch_bodies, batched,
                                   options.concurrency)),
            ]
            on_topics = asyncio.run(_events_on(
                broker.bootstrap, [topics[k] for k in TOPICS], options.events))
        except RuntimeError as exc:
            print(f"collector_load: could not measure: {exc}", file=sys.stderr)
            return 2
        finally:
            process.terminate()
            process.wait(timeout=20)
    print(f"{'phase':<10} {'requests':>9} {'events':>7} {'s':>7} {'req/s':>9} {'events/s':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'not 202':>8}")
    for r in results:
        print(f"{r.name:<10} {r.requests:>9} {r.events:>7} {r.seconds:>7.2f} "
              f"{r.requests_per_s:>9.0f} {r.events_per_s:>9.0f} {r.p50_ms:>8.2f} "
              f"{r.p99_ms:>8.2f} {r.max_ms:>8.2f} {r.not_202:>8}")
    print(f"events on the topics: {on_topics} (events sent: {options.events}), "
          f"concurrency {options.concurrency}")
    if options.json:
        Path(options.json).write_text(json.dumps(
            {"phases": [asdict(r) for r in results], "on_topics": on_topics,
             "concurrency": options.concurrency}, indent=2) + "\n", encoding="utf-8")
    complete = on_topics == options.events and not any(r.not_202 for r in results)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
