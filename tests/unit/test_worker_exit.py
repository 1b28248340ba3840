"""A worker whose stage stopped for a failure a restart may mend exits at once with 75."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streams.commands.cli import EX_TEMPFAIL

ROOT = Path(__file__).resolve().parents[2]

REASON = ("count: a send failed (KafkaTimeoutError); stopped so nothing past it is "
          "committed, restart to resume from the last committed offset")


def test_the_exit_hook_logs_the_reason_and_ends_the_process_with_status_75() -> None:
    """What ``kpistream worker`` sets as ``Readiness.on_stage_stopped``, run in a process
    of its own: no clean stop (Faust's would wait for the failed message's ack for good),
    the log line flushed, exit status 75 (sysexits' EX_TEMPFAIL) for its supervisor."""
    script = (
        "import logging, threading, time\n"
        "from streams.commands import cli\n"
        "logging.basicConfig(format='%(levelname)s %(message)s')\n"
        "threading.Thread(target=time.sleep, args=(60,)).start()  # not joined: _exit\n"
        f"cli._exit_to_be_restarted({REASON!r})\n"
        "print('not reached')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert EX_TEMPFAIL == 75
    assert run.returncode == EX_TEMPFAIL, run.stderr
    assert "not reached" not in run.stdout
    assert run.stderr.strip() == (f"CRITICAL kpistream: {REASON}; the worker exits with "
                                  "status 75, to be restarted")
