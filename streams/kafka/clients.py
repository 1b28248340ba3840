"""The ``[kafka]`` connection settings as each client library takes them.

Every client kpistream runs (Faust's, the input consumer, the broker probe, the end-offset
reader, the collector, publish, simulate) gets its security options here, so none can be
left on PLAINTEXT by mistake.
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.config.kafka import KafkaSettings

__all__ = ["aiokafka_options", "faust_credentials", "ssl_context"]


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """A TLS context checking the brokers' certificates (by ssl_cafile, else the system's)."""
    if not kafka.uses_tls:
        return None
    context = ssl.create_default_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.ssl_certfile and kafka.ssl_keyfile:
        context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile))
    return context


def aiokafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin, client)."""
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.uses_sasl:
        options.update(sasl_mechanism=kafka.sasl_mechanism,
                       sasl_plain_username=kafka.sasl_username,
                       sasl_plain_password=kafka.sasl_password)
    return options


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust's ``broker_credentials`` for these settings; None on PLAINTEXT."""
    import faust

    context = ssl_context(kafka)
    if kafka.uses_sasl:
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.sasl_password,
                                     ssl_context=context, mechanism=kafka.sasl_mechanism)
    if context is not None:
        return faust.SSLCredentials(context)
    return None
