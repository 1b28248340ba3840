"""Whether the worker is ready (/ready, ``kpistream_ready``), and if not, why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.kafka.liveness import BrokerProbe
from streams.kafka.send_errors import transient
from streams.stages.delivery import InOrderAcks
from streams.worker.input_consumer import InputConsumer

__all__ = ["Readiness"]


@dataclass(eq=False)
class Readiness:
    """Tables recovered, both consumer groups joined, the broker answering, every stage
    consuming and delivering."""

    faust_app: Any
    probe: BrokerProbe | None = None
    input: InputConsumer | None = None
    acks: dict[str, InOrderAcks] = field(default_factory=dict)
    """Per stateful stage, its messages waiting for their sends before they are acked."""
    on_stage_stopped: Callable[[str], None] | None = None
    """Told why when a stateful stage stops for a failed send that a restart may mend
    (``transient``): the worker command exits then, to be restarted
    (streams.commands.cli). Otherwise, or when None, the stage stays stopped and /ready
    says why: a failure no restart mends would stop every worker that took the
    partition in turn."""

    def stage_acks(self, stage: str) -> InOrderAcks:
        return self.acks.setdefault(stage, InOrderAcks(stage, self._stage_stopped))

    def stopped_stages(self) -> list[str]:
        """Why each stateful stage that stopped did (empty: none has)."""
        return [acks.failure for acks in self.acks.values() if acks.failure is not None]

    def _stage_stopped(self, reason: str, error: BaseException) -> None:
        """The hook is looked up when a stage stops: the acks are made with the app, before
        the worker command sets it."""
        if self.on_stage_stopped is not None and transient(error):
            self.on_stage_stopped(reason)

    def is_ready(self) -> bool:
        return not self.not_ready_because()

    def not_ready_because(self) -> list[str]:
        """Why /ready answers 503 now (empty: it answers 200)."""
        app = self.faust_app
        recovery = app.tables.recovery
        reasons = []
        if not recovery.completed.is_set() or app.rebalancing or app.in_recovery:
            reasons.append("recovering tables or rebalancing")
        if self.probe is not None and not self.probe.reachable:
            reasons.append("the broker does not answer")
        if self.input is not None and (problem := self.input.problem()) is not None:
            reasons.append(problem)
        return reasons + self.stopped_stages()
