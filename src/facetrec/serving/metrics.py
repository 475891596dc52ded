"""Prometheus metrics of one worker, with the Prometheus client library: request counts and a
latency histogram per route, and gauges read at scrape time. Routes are labelled by their
template (``/users/{user_id}/recommendations``), never the raw path, so labels stay few."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the latency histogram buckets; +Inf is implied."""


class Metrics:
    """Counters and histograms updated by the app's middleware (thread-safe), in a registry of
    their own so that several apps in one process never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "facetrec_requests", "HTTP requests by method, route and status.", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self._latency = Histogram(
            "facetrec_request_duration_seconds", "Time from request to response.", ["method", "route"],
            buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        """name -> (help, zero-argument callable giving the value), read at scrape time."""
        self.registry.register(_Gauges(self.gauges))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(method, route).observe(seconds)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry).decode()


class _Gauges(Collector):
    """The gauges of :attr:`Metrics.gauges`, each read when scraped."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (text, read) in sorted(self.gauges.items()):
            yield GaugeMetricFamily(name, text, value=float(read()))
