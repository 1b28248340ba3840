"""The Faust app of a worker: Faust's own, configured from the settings.

Faust's consumer fetches through kpistream's transport (streams.kafka.stream_consumer), and
kpistream's services and topic creation start with the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust

from streams.config.settings import Settings
from streams.kafka.clients import faust_credentials
from streams.kafka.stream_consumer import stream_consumer_urls

__all__ = ["FaustApp", "faust_app"]


class FaustApp(faust.App):
    """faust.App that also starts ``started_with_app`` services with its own.

    Services added with ``app.service`` start only after table recovery; the input
    consumer joins its own consumer group, which takes seconds, so it starts beside
    Faust's consumer and both groups are joined at about the same time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started_with_app: list[Any] = []
        self.before_start: list[Callable[[], Awaitable[None]]] = []
        """Run before any of Faust's services start (topic creation, streams.kafka.topics)."""

    def on_init_dependencies(self) -> Any:
        return [*super().on_init_dependencies(), *self.started_with_app]

    async def on_first_start(self) -> None:
        for step in self.before_start:
            await step()
        await super().on_first_start()


def faust_app(settings: Settings) -> FaustApp:
    replicas = settings.kafka.replication_factor
    return FaustApp(
        settings.app_id,
        broker=settings.broker,
        # Faust's own Kafka transport, but its consumer's fetch wait and end offsets ours.
        broker_consumer=stream_consumer_urls(settings.broker),
        broker_credentials=faust_credentials(settings.kafka),
        # Faust's own small topics (the assignor's leader topic) when a count is given; with
        # the broker's default (-1, below Faust's floor of 0) they keep Faust's 1.
        topic_replication_factor=max(replicas, 1),
        store="memory://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        # Tansu holds a JoinGroup for half the session timeout: keep it short.
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        producer_acks=-1,
        # A topic Faust has just created may be missing from the first metadata Kafka
        # answers (its brokers learn of new topics a moment after the controller); the
        # group is assigned its partitions at the next refresh, so refresh often.
        consumer_metadata_max_age_ms=5_000,
        # Let internal and changelog messages share produce requests.
        producer_linger_ms=5,
        # Table keys are (campaign, channel, minute) tuples: JSON in the changelog.
        key_serializer="json",
        value_serializer="json",
    )
