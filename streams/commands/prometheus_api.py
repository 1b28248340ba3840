"""Reading a Prometheus server's HTTP API: range queries and its retention.

Plain urllib, no client library: two endpoints are all ``kpistream suggest-targets``
needs. Every failure is a PrometheusError saying what went wrong and where.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from streams.config.errors import KpistreamError

__all__ = ["PrometheusApi", "PrometheusError", "Series", "parse_prometheus_duration_s"]

_UNITS_S: Final[dict[str, Fraction]] = {
    "y": Fraction(365 * 86_400), "w": Fraction(7 * 86_400), "d": Fraction(86_400),
    "h": Fraction(3_600), "m": Fraction(60), "s": Fraction(1), "ms": Fraction(1, 1000)}
_PART: Final = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")


class PrometheusError(KpistreamError):
    """Prometheus could not be asked, or refused the question."""


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a range query: its labels and (epoch seconds, value) samples."""

    labels: dict[str, str]
    samples: tuple[tuple[int, Fraction], ...]


def parse_prometheus_duration_s(text: str) -> Fraction | None:
    """Seconds in a duration as Prometheus writes it ("60d", "8w4d", "15d or 10GiB");
    None when it holds no time (a size limit only)."""
    head = text.split(" or ")[0].strip()
    if not head or _PART.sub("", head):
        return None
    return sum((int(n) * _UNITS_S[u] for n, u in _PART.findall(head)), Fraction(0))


class PrometheusApi:
    """The HTTP API of one Prometheus server."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_s

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}",
                                        timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise PrometheusError(f"Prometheus at {self.url} answered {exc.code} to "
                                  f"{path}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        except ValueError:
            raise PrometheusError(f"{self.url}{path} did not answer JSON: is it "
                                  "Prometheus?") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.url} refused {path}: {answer}")
        return answer["data"]

    def retention_s(self) -> Fraction | None:
        """How far back the server keeps samples; None when it limits size only."""
        info = self._get("/api/v1/status/runtimeinfo")
        return parse_prometheus_duration_s(str(info.get("storageRetention", "")))

    def query_range(self, expr: str, start_s: int, end_s: int, step_s: int) -> list[Series]:
        """The matrix of ``expr`` from ``start_s`` to ``end_s`` every ``step_s`` seconds."""
        data = self._get("/api/v1/query_range", {"query": expr, "start": str(start_s),
                                                 "end": str(end_s), "step": str(step_s)})
        return [Series(dict(r["metric"]),
                       tuple((int(float(t)), Fraction(v)) for t, v in r["values"]
                             if v not in ("NaN", "+Inf", "-Inf")))
                for r in data["result"]]
