"""``Metrics.child``: the labelled child the hot path counts into is the one ``labels()`` gives, so
what is scraped is unchanged."""

from __future__ import annotations

from prometheus_client import generate_latest

from extender.http.metrics import Metrics


def test_child_is_the_labelled_child_and_is_reused() -> None:
    m = Metrics()
    a = m.child(m.requests, "filter", "200")
    assert a is m.child(m.requests, "filter", "200")
    assert a is m.requests.labels("filter", "200")
    assert m.child(m.requests, "filter", "400") is not a
    assert m.child(m.verdicts, "compatible") is not m.child(m.skipped, "compatible")
    a.inc(3)
    m.child(m.latency, "filter").observe(0.004)
    text = generate_latest(m.registry).decode()
    assert 'compat_extender_requests_total{code="200",verb="filter"} 3.0' in text
    assert 'compat_extender_request_duration_seconds_count{verb="filter"} 1.0' in text
