"""The metrics a worker exposes: counts and latency histograms per route, gauges read when scraped."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from facetrec.serving.metrics import Metrics


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counts_histograms_and_gauges_in_the_prometheus_format() -> None:
    metrics, applied = Metrics(), [7]
    metrics.gauges["facetrec_applied_event"] = ("Newest applied event.", lambda: applied[0])
    route = "/users/{user_id}/recommendations"
    for seconds in (0.0005, 0.003, 0.003, 0.2):
        metrics.observe("GET", route, 200, seconds)
    metrics.observe("POST", "/events", 422, 0.002)
    applied[0] = 9
    found = samples(metrics.render())
    get = (("method", "GET"), ("route", route))
    assert found["facetrec_requests_total", (*get, ("status", "200"))] == 4
    assert found["facetrec_requests_total", (("method", "POST"), ("route", "/events"), ("status", "422"))] == 1
    assert found["facetrec_request_duration_seconds_bucket", (("le", "0.001"), *get)] == 1
    assert found["facetrec_request_duration_seconds_bucket", (("le", "0.005"), *get)] == 3
    assert found["facetrec_request_duration_seconds_bucket", (("le", "+Inf"), *get)] == 4
    assert abs(found["facetrec_request_duration_seconds_sum", get] - 0.2065) < 1e-9
    assert found["facetrec_applied_event", ()] == 9  # read at scrape time


def test_two_apps_in_one_process_count_apart() -> None:
    a, b = Metrics(), Metrics()
    a.observe("GET", "/healthz", 200, 0.001)
    assert samples(a.render())["facetrec_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200"))]
    assert not [key for key in samples(b.render()) if key[0] == "facetrec_requests_total"]
