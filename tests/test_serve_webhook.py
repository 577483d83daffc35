"""Webhook delivery of stored fall events: signed, in order, retried until the receiver takes them, carried
across restarts, and sent by one worker at a time."""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from serve.app import create_app  # noqa: E402
from serve.settings import Settings  # noqa: E402
from serve.storage import add_key, open_db, store_events  # noqa: E402
from serve.webhook import WebhookSender, verify  # noqa: E402
from test_serve_live import fall_frames  # noqa: E402

MODEL = os.environ.get("ACTIONPOSE_FALL_MODEL", "fall")
SECRET = "test-secret-0123456789"


class Receiver:
    """A real HTTP endpoint on loopback that records every request and answers ``status()`` (200 unless set)."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes, int]] = []
        self.status = lambda n: 200  # n: the request's index
        self.refuse = lambda event: False  # an event this receiver answers 500 for (a bug in the receiver)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = 500 if outer.refuse(json.loads(body)) else outer.status(len(outer.requests))
                outer.requests.append((dict(self.headers), body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://user:tok@127.0.0.1:{self.server.server_port}/hooks/s3cret-path?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict]:
        return [json.loads(b) for _, b, code in self.requests if code < 300]

    def wait(self, n: int, timeout: float = 15.0) -> list[dict]:
        end = time.time() + timeout
        while len(self.delivered()) < n and time.time() < end:
            time.sleep(0.05)
        return self.delivered()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def stream_fall(client, key: str, sid: str, extra_lying_s: float = 0.0) -> list[dict]:
    frames = fall_frames()
    last = frames[-1]
    frames += [{**last, "timestamp": round(last["timestamp"] + (i + 1) / 30, 4)} for i in range(int(extra_lying_s * 30))]
    return post_frames(client, key, sid, frames)


def post_frames(client, key: str, sid: str, frames: list[dict]) -> list[dict]:
    """Stream coco13 frames to a session 40 at a time; every answer must be 200; the events in order."""
    got = []
    for lo in range(0, len(frames), 40):
        r = client.post(f"/v1/fall/stream/{sid}", json={"layout": "coco13", "frames": frames[lo:lo + 40]},
                        headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        got += r.json()["events"]
    return got


def make(url: str, receiver: Receiver, **kw) -> TestClient:
    return TestClient(create_app(Settings(db_url=url, model=MODEL, threads=1, webhook_url=receiver.url,
                                          webhook_secret=SECRET, **kw)), raise_server_exceptions=False)


def test_a_stored_fall_is_pushed_signed_with_the_events_fields(tmp_path, receiver):
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    key = add_key(open_db(url), "k")
    with make(url, receiver) as client:
        events = stream_fall(client, key, "ward-3")
        assert [e["kind"] for e in events] == ["fall"]
        got = receiver.wait(1)
        assert got == [{"type": "fall_event", **events[0]}]
        headers, body, _ = receiver.requests[0]
        assert verify(SECRET, headers, body) and not verify("another-secret-0000", headers, body)
        assert not verify(SECRET, headers, body, now=float(headers["X-Actionpose-Timestamp"]) + 3600)  # a replay
        assert headers["X-Actionpose-Event-Id"] == str(events[0]["id"])
        # the receiver has the body before the sender has read its 2xx and recorded it: poll (a loaded CI machine
        # read the status in between once)
        end = time.time() + 15
        while (status := client.get("/v1/webhook", headers={"X-API-Key": key}).json())["delivered"] < 1 \
                and time.time() < end:
            time.sleep(0.05)
        assert status["enabled"] and status["pending"] == 0 and status["delivered"] == 1
        assert status["last_delivered_id"] == events[0]["id"] and status["failed_attempts"] == 0
        assert status["parked_count"] == 0 and status["parked"] == []
        # who holds the delivery lease, and until when (events held after a kill -9 showed no reason; probe),
        # without the host or pid
        assert len(status["delivery_worker"]) == 8 and status["lease_until"] > time.time()
        # the URL's user info, path (Slack-style secret) and query never show
        assert status["url"] == f"http://127.0.0.1:{receiver.server.server_port}/..."
        assert client.get("/v1/webhook").status_code == 401


def test_a_failing_receiver_gets_every_event_in_order_once_it_answers(tmp_path, receiver):
    """503 twice, then 200: the fall is retried (0.5 s, then 1 s), and the still_down behind it waits its
    turn; each reaches the receiver exactly once with a 2xx, in order."""
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    key = add_key(open_db(url), "k")
    receiver.status = lambda n: 503 if n < 2 else 200
    with make(url, receiver, long_lie_s=2.0) as client:
        events = stream_fall(client, key, "ward-4", extra_lying_s=4.0)
        assert [e["kind"] for e in events] == ["fall", "still_down"]
        got = receiver.wait(2)
        assert [g["id"] for g in got] == [e["id"] for e in events]
        assert [json.loads(b)["id"] for _, b, c in receiver.requests if c == 503] == [events[0]["id"]] * 2
        assert len(receiver.requests) == 4


def test_undelivered_events_survive_a_restart_and_earlier_history_is_not_sent(tmp_path, receiver):
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    engine = open_db(url)
    key = add_key(engine, "k")
    store_events(engine, "before", [{"track_id": 1, "start_time": 1.0, "detected_time": 2.0, "confidence": 0.9}])
    receiver.status = lambda n: 500  # down for the whole first run
    with make(url, receiver) as client:
        events = stream_fall(client, key, "ward-5")
        deadline = time.time() + 10  # until the sender has recorded the receiver's 500, not just sent the request
        while not (status := client.get("/v1/webhook", headers={"X-API-Key": key}).json())["last_error"] \
                and time.time() < deadline:
            time.sleep(0.05)
        assert status["pending"] == 1 and status["last_error"] == "HTTP 500" and status["failed_attempts"] >= 1
    receiver.status = lambda n: 200
    with make(url, receiver):  # the restarted server (the lease was handed back at shutdown)
        got = receiver.wait(1)
    assert [g["id"] for g in got] == [events[0]["id"]]  # not the event stored before the webhook existed


def test_metrics_follow_this_services_webhook_setting_not_a_row_left_in_the_database(tmp_path):
    """A webhook configured once leaves its delivery row in the database. A service started without one
    reported actionpose_webhook_configured 1 and a pending backlog growing with every event (a false "fall not
    delivered" alert) while GET /v1/webhook said enabled: false (probe)."""
    from prometheus_client.parser import text_string_to_metric_families

    from serve.storage import webhook_claim

    url = f"sqlite:///{tmp_path / 'ev.db'}"
    engine = open_db(url)
    assert webhook_claim(engine, "an-earlier-run", 15.0) is not None  # the row a webhook run leaves behind
    store_events(engine, "ward-1", [{"track_id": 1, "start_time": 1.0, "detected_time": 2.0, "confidence": 0.9}])
    key = add_key(engine, "k")
    with TestClient(create_app(Settings(db_url=url, model=MODEL, threads=1)), raise_server_exceptions=False) as client:
        assert client.get("/v1/webhook", headers={"X-API-Key": key}).json()["enabled"] is False
        got = {s.name: s.value for f in text_string_to_metric_families(client.get("/metrics").text) for s in f.samples}
    assert got["actionpose_webhook_configured"] == 0
    assert not [name for name in got if name.startswith("actionpose_webhook_") and name != "actionpose_webhook_configured"]


def test_one_sender_at_a_time_and_another_takes_over_a_dead_ones_lease(tmp_path, receiver, monkeypatch):
    lease_scenario(f"sqlite:///{tmp_path / 'ev.db'}", receiver, monkeypatch)


def lease_scenario(url: str, receiver: Receiver, monkeypatch) -> None:
    """Two senders on one database (two workers): only the lease holder sends; a lapsed lease is taken over;
    every event reaches the receiver once, in order. Also run on PostgreSQL (test_serve_postgres)."""
    import serve.webhook as wh

    engine = open_db(url)
    monkeypatch.setattr(wh, "LEASE_S", 0.5)
    row = {"track_id": 1, "detected_time": 2.0, "confidence": 0.9}

    async def scenario():
        # timeout 0.1 s: the lease is max(LEASE_S, 3 x the timeout), here the patched 0.5 s
        a, b = (WebhookSender(engine, receiver.url, SECRET, timeout_s=0.1),
                WebhookSender(engine, receiver.url, SECRET, timeout_s=0.1))
        for s in (a, b):
            import httpx

            s._client = httpx.AsyncClient(timeout=5)
        assert await a.step() == 0  # the first claim records the newest event (none yet): history is not sent
        store_events(engine, "s", [{**row, "start_time": 1.0}, {**row, "start_time": 5.0}])
        assert await b.step() == 0  # a holds the lease
        assert await a.step() == 2
        store_events(engine, "s", [{**row, "start_time": 9.0}])
        await asyncio.sleep(0.6)  # a "dies" without handing the lease back; it lapses
        assert await b.step() == 1
        assert await a.step() == 0  # and a, back, finds b holding it
        for s in (a, b):
            await s._client.aclose()

    asyncio.run(scenario())
    assert [g["start_time"] for g in receiver.delivered()] == [1.0, 5.0, 9.0]  # each once, in order


def sender_steps(url: str, receiver: Receiver, monkeypatch):
    """A sender stepped by hand with no backoff waits (every step tries what is due), and its database."""
    import httpx

    import serve.webhook as wh

    monkeypatch.setattr(wh, "backoff", lambda attempts: 0.0)
    engine = open_db(url)
    sender = WebhookSender(engine, receiver.url, SECRET)
    sender._client = httpx.AsyncClient(timeout=5)
    return engine, sender


def store(engine, *starts: float) -> list[int]:
    from serve.storage import store_events

    rows = store_events(engine, "s", [{"track_id": 1, "start_time": t, "detected_time": t + 1, "confidence": 0.9}
                                      for t in starts])
    return [int(r["id"]) for r in rows]


def test_an_event_the_receiver_keeps_failing_does_not_hold_back_later_alerts(tmp_path, receiver, monkeypatch):
    """A receiver that fails one event (a 500 from a bug in its handler) while it takes others used to hold back
    every later alert for as long as it kept failing. After PROBE_AFTER failures in a row the next event is
    tried; the receiver takes it, so the failing event is parked and retried on its own, never dropped."""
    parked_scenario(f"sqlite:///{tmp_path / 'ev.db'}", receiver, monkeypatch)


def parked_scenario(url: str, receiver: Receiver, monkeypatch) -> None:
    """The parking of test_an_event_the_receiver_keeps_failing_...; also run on PostgreSQL (test_serve_postgres)."""
    from serve.storage import webhook_status
    from serve.webhook import PROBE_AFTER

    engine, sender = sender_steps(url, receiver, monkeypatch)
    poison = {"on": True}

    async def scenario():
        assert await sender.step() == 0  # the first claim: history before the webhook is not sent
        bad, fine = store(engine, 1.0, 5.0)
        receiver.refuse = lambda ev: poison["on"] and ev["id"] == bad
        for _ in range(PROBE_AFTER - 1):  # short failures keep the order: the later event waits
            assert await sender.step() == 0
        assert [json.loads(b)["id"] for _, b, _ in receiver.requests] == [bad] * (PROBE_AFTER - 1)
        assert await sender.step() == 1  # the third failure: the next event is asked, and taken
        st = webhook_status(engine)
        assert st["pending"] == 1 and st["attempts"] == 0 and st["parked_count"] == 1
        assert st["parked"][0]["id"] == bad and st["parked"][0]["attempts"] == PROBE_AFTER
        assert st["parked"][0]["last_error"] == "HTTP 500"
        later, = store(engine, 9.0)
        assert await sender.step() == 1  # the parked event is retried (due: no backoff here), fails, the new one goes
        assert webhook_status(engine)["parked"][0]["attempts"] == PROBE_AFTER + 1
        poison["on"] = False  # the receiver is fixed
        assert await sender.step() == 1
        st = webhook_status(engine)
        assert st["pending"] == 0 and st["parked_count"] == 0 and st["parked"] == []
        await sender._client.aclose()
        return bad, fine, later

    bad, fine, later = asyncio.run(scenario())
    assert [g["id"] for g in receiver.delivered()] == [fine, later, bad]  # each once


def test_a_receiver_that_is_down_parks_nothing_and_gets_every_event_in_order(tmp_path, receiver, monkeypatch):
    """The probe asks the next event; while the receiver fails that one too, nothing is parked: order is kept."""
    from serve.storage import webhook_status

    engine, sender = sender_steps(f"sqlite:///{tmp_path / 'ev.db'}", receiver, monkeypatch)
    receiver.status = lambda n: 503 if n < 12 else 200

    async def scenario():
        assert await sender.step() == 0
        ids = store(engine, 1.0, 5.0, 9.0)
        while len(receiver.requests) < 12:
            assert await sender.step() == 0
            assert webhook_status(engine)["parked_count"] == 0
        assert webhook_status(engine)["attempts"] >= 6  # the receiver's failures back off together
        assert await sender.step() == 3
        await sender._client.aclose()
        return ids

    ids = asyncio.run(scenario())
    assert [g["id"] for g in receiver.delivered()] == ids


@pytest.mark.parametrize("kw, message", [
    ({"webhook_url": "ftp://example.org/x", "webhook_secret": SECRET}, "ACTIONPOSE_WEBHOOK_URL: must be an http"),
    ({"webhook_url": "https://example.org/hook"}, "ACTIONPOSE_WEBHOOK_SECRET: set at least 16 characters"),
    ({"webhook_secret": SECRET}, "ACTIONPOSE_WEBHOOK_URL is not"),
    # started a server that failed every send, "healthy" in the status (probe)
    ({"webhook_url": "http://127.0.0.1:9/hook\n", "webhook_secret": SECRET}, "newline or other control character"),
    ({"webhook_url": " http://127.0.0.1:9/hook", "webhook_secret": SECRET}, "holds a space"),
    ({"webhook_url": "http://127.0.0.1:0/hook", "webhook_secret": SECRET}, "port 0"),
])
def test_webhook_settings_are_checked(kw, message):
    from actionpose.errors import ActionposeError

    with pytest.raises(ActionposeError, match=message):
        Settings(**kw)
    shown = repr(Settings(webhook_url="https://u:p@example.org/T0/B0/XYZ?k=1", webhook_secret=SECRET))
    assert SECRET not in shown and "XYZ" not in shown and "u:p" not in shown and "example.org" in shown


def out_of_order_scenario(url: str, receiver: Receiver) -> None:
    """An event whose transaction commits after a later-numbered one was sent (PostgreSQL hands out ids at
    insert, rows appear at commit): a cursor past the sent one skipped it for good (probe). Each is sent now."""
    import time as _time

    from serve.storage import _store_events

    engine = open_db(url)
    row = {"track_id": 1, "start_time": 1.0, "detected_time": 2.0, "confidence": 0.9}
    sender = WebhookSender(engine, receiver.url, SECRET)

    async def go(step_between):
        import httpx

        sender._client = httpx.AsyncClient(timeout=5)
        assert await sender.step() == 0  # the webhook starts here
        with engine.connect() as slow:
            tx = slow.begin()
            _store_events(slow, "camA", [row], _time.time())  # id N, not committed yet
            store_events(engine, "camB", [row])                # id N + 1, committed
            assert await sender.step() == 1                    # camB is sent
            tx.commit()                                        # camA appears now, with the lower id
        assert await sender.step() == 1                        # and is sent too
        await sender._client.aclose()

    asyncio.run(go(None))
    assert sorted(g["session_id"] for g in receiver.delivered()) == ["camA", "camB"]


def test_the_lease_outlasts_a_slow_receivers_send(tmp_path):
    """With a 30-s timeout and a 15-s lease, two workers took the lease from each other during a 20-s send and
    sent one event every 15 s for ever (probe): the lease is at least 3 sends long."""
    engine = open_db(f"sqlite:///{tmp_path / 'ev.db'}")
    assert WebhookSender(engine, "http://127.0.0.1:9/h", SECRET, timeout_s=30).lease_s == 90
    assert WebhookSender(engine, "http://127.0.0.1:9/h", SECRET, timeout_s=1).lease_s == 15
