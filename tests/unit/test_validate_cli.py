"""``kpistream validate`` and the Checker that publish and the collector share (no Kafka)."""

from __future__ import annotations

import calendar
import io
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.commands.cli import main
from streams.commands.validate import Checker
from streams.events.validation import MAX_EVENT_BYTES, Rejection, ValidationRules, parse_message

TS_MS = calendar.timegm((2026, 11, 23, 10, 0, 0)) * 1000
RULES = ValidationRules({"USD": Decimal(1), "EUR": Decimal("1.08")})

VIEW = {"event_id": "v-1", "ts": TS_MS, "campaign_id": "summer-sale", "channel": "tiktok"}
ORDER = {"event_id": "o-1", "ts": "2026-11-23T17:03:10+07:00", "order_id": "A100",
         "customer_id": "cust-5", "revenue": "19.99", "currency": "EUR"}


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings with an EUR rate; no other KPISTREAM_* variable leaks in."""
    path = tmp_path / "kpistream.toml"
    path.write_text("[fx]\nEUR = 1.08\n", encoding="utf-8")
    for name in [n for n in os.environ if n.startswith("KPISTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KPISTREAM_CONFIG", str(path))
    return path


def ndjson(tmp_path: Path, *lines: Any, name: str = "events.ndjson") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(
        line if isinstance(line, bytes) else orjson.dumps(line) for line in lines) + b"\n")
    return path


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(["validate", *args])
    return status, capsys.readouterr().out.splitlines()


def worker_reason(event: dict[str, Any], event_type: str) -> str:
    (verdict,) = parse_message(orjson.dumps(event), event_type, RULES,  # type: ignore[arg-type]
                               TS_MS)
    assert isinstance(verdict, Rejection)
    return verdict.reason


def test_a_good_file_prints_only_the_summary_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ndjson(tmp_path, {**VIEW, "type": "view"}, {**ORDER, "type": "order"},
                  {**VIEW, "type": "click", "event_id": "c-1", "click_id": "ttclid-1"})
    status, out = validate(capsys, str(path))
    assert status == 0
    assert len(out) == 1
    assert "3 events: 3 valid, 0 invalid" in out[0]


def test_bad_lines_print_the_worker_s_own_reason_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    negative = {**ORDER, "revenue": "-3"}
    no_campaign = {k: v for k, v in VIEW.items() if k != "campaign_id"}
    yen = {**ORDER, "currency": "JPY"}
    path = ndjson(
        tmp_path,
        {**VIEW, "type": "view"},            # 1 good
        {**negative, "type": "order"},       # 2 negative revenue
        b"",                                 # 3 blank: skipped, still counted as a line
        {**no_campaign, "type": "view"},     # 4 no campaign
        b'{"event_id": "x",',                # 5 not JSON
        {**yen, "type": "order"},            # 6 no [fx] rate for JPY
    )
    status, out = validate(capsys, str(path))
    assert status == 1
    assert out[:-1] == [
        f"{path}:2: invalid order: {worker_reason(negative, 'order')}",
        f"{path}:4: invalid view: {worker_reason(no_campaign, 'view')}",
        f"{path}:5: invalid unknown: " + parse_message(
            b'{"event_id": "x",', "view", RULES, TS_MS)[0].reason,  # type: ignore[union-attr]
        f"{path}:6: invalid order: {worker_reason(yen, 'order')}",
    ]
    assert "JPY has no exchange rate in the [fx] settings (known: EUR, USD)" in out[3]
    assert "5 events: 1 valid, 4 invalid (order 2, unknown 1, view 1)" in out[-1]


def test_the_new_fields_are_checked_and_each_bad_one_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15's new fields: good ones pass, each bad one is refused with its field named."""
    line = {"product_id": "sku-1", "quantity": 2, "revenue": "9.99"}
    full_order = {**ORDER, "type": "order", "cost": "7.5", "items": [line, line]}
    path = ndjson(
        tmp_path,
        {**VIEW, "type": "view", "user_id": "u9", "watch_ms": 14000, "content_type": "live"},
        {**VIEW, "type": "engagement", "event_id": "e-1", "action": "follow",
         "content_type": "tutorial"},
        {**VIEW, "type": "click", "event_id": "c-1", "content_type": "unboxing"},
        full_order,                                                           # 4 good
        {**full_order, "cost": -2},                                           # 5
        {**full_order, "items": [line] * 101},                                # 6
        {**full_order, "items": [line, {"quantity": 1, "revenue": "1"}]},     # 7
        {**full_order, "items": [line, line, line, {**line, "quantity": 0}]},  # 8
        {**VIEW, "type": "view", "content_type": "Tutorial"},                 # 9
        [{**VIEW, "type": "click", "content_type": "LIVE"},                   # 10, a batch
         {**VIEW, "type": "click", "content_type": "live"}],
    )
    status, out = validate(capsys, str(path))
    assert status == 1
    assert out[:-1] == [
        f"{path}:5: invalid order: field 'cost' is -2; it cannot be negative",
        f"{path}:6: invalid order: field 'items' holds 101 items; an order may have at most 100",
        f"{path}:7: invalid order: missing required field 'items[1].product_id' "
        "(a string of 1-128 characters)",
        f"{path}:8: invalid order: field 'items[3].quantity' must be a whole number >= 1, got 0",
        f"{path}:9: invalid view: field 'content_type' is \"Tutorial\"; it must be lower-case, "
        "like \"tutorial\"",
        f"{path}:10[0]: invalid click: field 'content_type' is \"LIVE\"; it must be lower-case, "
        "like \"live\"",
    ]
    assert "11 events: 5 valid, 6 invalid (click 1, order 4, view 1)" in out[-1]


def test_the_type_comes_from_the_field_or_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ndjson(tmp_path, VIEW, {**ORDER, "type": "order"}, {**VIEW, "type": "impression"})
    status, out = validate(capsys, str(path))
    assert status == 1
    assert out[0].startswith(f"{path}:1: invalid unknown: no event type: give the event a "
                             "'type' field (view engagement click order spend) or pass --type")
    assert out[1] == (f'{path}:3: invalid unknown: field \'type\' is "impression"; it must be '
                      "one of: view engagement click order spend")
    status, out = validate(capsys, "--type", "view", str(path))
    assert out[0].startswith(f"{path}:3: invalid unknown: field 'type'")
    assert "3 events: 2 valid, 1 invalid" in out[-1]


def test_the_type_field_is_not_part_of_the_event_the_worker_sees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exact = {**VIEW, "pad": ""}
    exact["pad"] = "x" * (MAX_EVENT_BYTES - len(orjson.dumps(exact)))
    assert len(orjson.dumps(exact)) == MAX_EVENT_BYTES  # at the limit: valid
    status, out = validate(capsys, str(ndjson(tmp_path, {**exact, "type": "view"})))
    assert status == 0, out


def test_a_batch_line_gets_a_verdict_per_element(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = [{**VIEW, "type": "view"}, {**VIEW, "type": "view", "ts": "yesterday"}, 42,
             {**ORDER, "type": "order", "currency": "usd"}]
    # a second line: a file that is one JSON array and nothing else is an array file
    path = ndjson(tmp_path, batch, {**VIEW, "type": "view", "event_id": "v-9"})
    status, out = validate(capsys, "-v", str(path))
    assert status == 1
    assert out[0] == f"{path}:1[0]: ok view v-1"
    assert out[1].startswith(f"{path}:1[1]: invalid view: field 'ts' is \"yesterday\"")
    assert out[2] == f"{path}:1[2]: invalid unknown: event must be a JSON object, got number"
    assert out[3] == f"{path}:1[3]: ok order o-1"
    assert out[4] == f"{path}:2: ok view v-9"


def test_a_json_array_file_is_a_list_of_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.json"
    events = [{**VIEW, "event_id": f"v-{i}"} for i in range(3)] + [{**VIEW, "ts": -1}]
    path.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    status, out = validate(capsys, "--type", "view", str(path))
    assert status == 1
    assert out[0] == f"{path}[3]: invalid view: {worker_reason({**VIEW, 'ts': -1}, 'view')}"
    assert "4 messages, 4 events: 3 valid, 1 invalid" in out[-1]


def test_currencies_come_from_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: Path,
) -> None:
    path = ndjson(tmp_path, {**ORDER, "type": "order"})
    assert validate(capsys, str(path))[0] == 0
    config.write_text("[kpi]\nreporting_currency = \"USD\"\n", encoding="utf-8")
    status, out = validate(capsys, str(path))
    assert status == 1
    assert "currency EUR has no exchange rate in the [fx] settings (known: USD)" in out[0]


def test_stdin_and_several_files(tmp_path: Path) -> None:
    first = ndjson(tmp_path, {**VIEW, "type": "view"}, name="a.ndjson")
    done = subprocess.run(
        [sys.executable, "-m", "streams", "validate", str(first), "-"],
        input=orjson.dumps({**VIEW, "type": "view", "ts": True}) + b"\n",
        capture_output=True, check=False,
    )
    out = done.stdout.decode().splitlines()
    assert done.returncode == 1, done.stderr
    assert out[0].startswith("<stdin>:1: invalid view: field 'ts' must be")
    assert out[-1].startswith("2 files, 2 messages, 2 events: 1 valid, 1 invalid")


def test_an_unreadable_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "missing.ndjson")]) == 2
    assert "cannot read" in capsys.readouterr().err


# --- the Checker: what publish and the collector send -----------------------------------

def checker(default: str | None = None, **kw: Any) -> Checker:
    return Checker(RULES, default, clock_ms=lambda: TS_MS, **kw)  # type: ignore[arg-type]


def test_a_line_without_a_type_field_is_sent_byte_for_byte() -> None:
    raw = b'{"event_id":"v-1", "ts":1795428000000, "campaign_id":"summer-sale"}'
    (message,) = checker("view").check(raw).messages
    assert message.value == raw and message.key == b"summer-sale" and message.events == 1


def test_the_type_field_is_stripped_before_sending() -> None:
    (message,) = checker().check(orjson.dumps({**VIEW, "type": "view"})).messages
    assert orjson.loads(message.value) == VIEW


def test_a_mixed_batch_goes_out_as_one_message_per_type_of_valid_events_only() -> None:
    batch = [{**VIEW, "type": "view"}, {**ORDER, "type": "order"},
             {**VIEW, "type": "view", "event_id": "v-2"}, {**VIEW, "type": "view", "ts": -1}]
    checked = checker().check(orjson.dumps(batch))
    assert [v.reason is None for v in checked.verdicts] == [True, True, True, False]
    sent = {m.type: (orjson.loads(m.value), m.events) for m in checked.messages}
    assert sent == {"view": ([VIEW, {**VIEW, "event_id": "v-2"}], 2), "order": ([ORDER], 1)}


def test_an_oversized_batch_is_refused_whole_as_the_worker_would() -> None:
    checked = checker("view").check(orjson.dumps([VIEW] * 1001))
    (verdict,) = checked.verdicts
    assert verdict.reason is not None and "1001" in verdict.reason and not checked.messages


def test_without_validation_everything_routable_is_sent() -> None:
    check = checker(validate=False).check
    assert check(orjson.dumps({**VIEW, "type": "view", "ts": -1})).messages
    assert check(b"{not json").verdicts[0].reason is not None  # no type to route it by
    (message,) = checker("spend", validate=False).check(b"{not json").messages
    assert message.value == b"{not json" and message.type == "spend"


def test_a_validator_crash_is_an_invalid_event_not_a_crash() -> None:
    def broken_clock() -> int:
        raise RuntimeError("clock gone")

    check = Checker(RULES, "view", clock_ms=broken_clock).check
    checked = check(orjson.dumps(VIEW))
    (verdict,) = checked.verdicts
    assert verdict.reason is not None and "validator fails" in verdict.reason
    assert "RuntimeError: clock gone" in verdict.reason and not checked.messages


def test_a_check_takes_microseconds() -> None:
    """Not a benchmark (a million lines take ~13 s): a guard against a slow path."""
    raw = orjson.dumps({**VIEW, "type": "view"})
    check = checker().check
    started = time.perf_counter()
    for _ in range(20_000):
        check(raw)
    per_event_s = (time.perf_counter() - started) / 20_000
    assert per_event_s < 200e-6, f"{per_event_s * 1e6:.0f} us per event"


def test_progress_stream_is_quiet_when_not_a_tty() -> None:
    from streams.commands.publish import _Progress

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.show(10, 1, final=True)
    assert stream.getvalue() == ""
