"""Prometheus text exposition of request counts and latency histograms, hand-written (a few
dozen lines instead of a dependency). Routes are labelled by their template
(``/users/{user_id}/recommendations``), never the raw path, so labels stay few."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the latency histogram buckets; +Inf is implied."""


class Metrics:
    """Counters and histograms updated by the app's middleware; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self.gauges: dict[str, tuple[str, object]] = {}
        """name -> (help, zero-argument callable giving the value), read at scrape time."""

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[method, route, status] += 1
            self._buckets[method, route][bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sums[method, route] += seconds

    def render(self) -> str:
        lines = [
            "# HELP facetrec_requests_total HTTP requests by method, route and status.",
            "# TYPE facetrec_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self._requests.items())
            buckets = sorted((k, list(v)) for k, v in self._buckets.items())
            sums = dict(self._sums)
        for (method, route, status), count in requests:
            lines.append(
                f'facetrec_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP facetrec_request_duration_seconds Time from request to response.",
            "# TYPE facetrec_request_duration_seconds histogram",
        ]
        for (method, route), counts in buckets:
            labels = f'method="{method}",route="{_esc(route)}"'
            total = 0
            for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=True):
                total += count
                lines.append(f'facetrec_request_duration_seconds_bucket{{{labels},le="{bound}"}} {total}')
            lines.append(f"facetrec_request_duration_seconds_sum{{{labels}}} {sums[method, route]:.6f}")
            lines.append(f"facetrec_request_duration_seconds_count{{{labels}}} {total}")
        for name, (text, read) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {read()}"]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
