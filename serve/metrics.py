"""``GET /metrics`` in the Prometheus text format, from a database snapshot (``storage.metrics_snapshot``).

Why from the database and not from counters in the process: the service runs several workers, and a scrape
lands on one of them, so per-process counters would each tell part of the story; the database is shared.
And counting nothing per request keeps the hot path as measured (docs/fall.md, load test).
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

EVENT_KINDS = ("fall", "still_down", "recovered")  # always listed, 0 when none is stored (alert rules need the series)


class _Snapshot:
    """A one-shot collector over a snapshot (prometheus_client calls ``collect`` once per ``generate_latest``)."""

    def __init__(self, snap: dict[str, Any], ready: bool, webhook: Optional[bool] = None):
        self.snap, self.ready, self.webhook = snap, ready, webhook

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily("actionpose_fall_events", "fall events stored, by kind", labels=["kind"])
        for kind in sorted(set(EVENT_KINDS) | set(self.snap["events"])):
            events.add_metric([kind], self.snap["events"].get(kind, 0))
        yield events
        yield GaugeMetricFamily("actionpose_stream_sessions", "stream sessions with saved state",
                                value=self.snap["sessions"])
        yield GaugeMetricFamily("actionpose_ready", "1 when the model is loaded (the database answered this scrape)",
                                value=1 if self.ready else 0)
        hook = self.snap.get("webhook")
        configured = hook is not None if self.webhook is None else self.webhook
        # this service's setting, not the database's: a webhook that was configured once leaves its delivery row
        # behind, and a service started without one reported "configured" and a growing backlog no one sends
        yield GaugeMetricFamily("actionpose_webhook_configured", "1 when events are pushed to a webhook",
                                value=1 if configured else 0)
        if configured:  # a backlog or failing attempts: a fall alert not delivered (the alert to set up)
            hook = hook or {"pending": 0, "delivered": 0, "attempts": 0}  # before the sender's first claim
            yield GaugeMetricFamily("actionpose_webhook_pending_events", "stored events not delivered yet",
                                    value=hook["pending"])
            yield CounterMetricFamily("actionpose_webhook_delivered", "events delivered to the webhook",
                                      value=hook["delivered"])
            yield GaugeMetricFamily("actionpose_webhook_failed_attempts",
                                    "failed tries in a row while the receiver fails every event", value=hook["attempts"])
            yield GaugeMetricFamily("actionpose_webhook_parked_events",
                                    "events the receiver keeps failing while it takes later ones",
                                    value=hook.get("parked_count", 0))


def prometheus_text(snap: dict[str, Any], ready: bool, webhook: Optional[bool] = None) -> str:
    """``webhook``: whether this service pushes events (ACTIONPOSE_WEBHOOK_URL); None: as the snapshot says."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snap, ready, webhook))
    return generate_latest(registry).decode()
