"""A camera that goes silent after a fall: the service raises still_down on its own clock."""
from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from serve.app import create_app  # noqa: E402
from serve.settings import Settings  # noqa: E402
from serve.storage import add_key, open_db, session_watch  # noqa: E402
from test_serve_live import fall_frames  # noqa: E402
from test_serve_webhook import post_frames as post  # noqa: E402

MODEL = os.environ.get("ACTIONPOSE_FALL_MODEL", "fall")


def events(client, key: str, sid: str) -> list[dict]:
    return client.get("/v1/events", params={"session_id": sid}, headers={"X-API-Key": key}).json()["events"]


def test_a_camera_silent_after_a_fall_gets_still_down_and_frames_after_it_are_taken(tmp_path):
    silent_scenario(f"sqlite:///{tmp_path / 'ev.db'}")


def silent_scenario(url: str) -> None:
    """Also run on PostgreSQL (test_serve_postgres)."""
    key = add_key(open_db(url), "k")
    app = create_app(Settings(db_url=url, model=MODEL, threads=1, long_lie_s=30.0, silent_grace_s=5.0))
    with TestClient(app, raise_server_exceptions=False) as client:
        frames = fall_frames()
        got = post(client, key, "ward-1", frames)
        assert [e["kind"] for e in got] == ["fall"]  # the camera stops right after the alert
        fall, last = got[0], frames[-1]["timestamp"]
        with app.state.engine.connect() as conn:
            due_at, = conn.execute(session_watch.select()).one()[1:]
        # due when long_lie_s has passed since the alert, counted on the server's clock from the last frames
        assert due_at == pytest.approx(time.time() + fall["detected_time"] + 30.0 - last, abs=2.0)
        silent = app.state.silent
        assert silent.check(now=due_at + 4.0) == []  # within the grace a live stream raises it itself
        raised = silent.check(now=due_at + 6.0)
        assert [(e["kind"], e["track_id"], e["start_time"]) for e in raised] == \
            [("still_down", "1", fall["detected_time"])]
        assert raised[0]["detected_time"] == pytest.approx(fall["detected_time"] + 30.0 + 6.0, abs=2.0)
        assert [e["kind"] for e in events(client, key, "ward-1")] == ["fall", "still_down"]
        assert silent.check(now=due_at + 60.0) == []  # once
        with app.state.engine.connect() as conn:
            assert conn.execute(session_watch.select()).all() == []
        # the camera comes back, the person still lying: frames are taken, no second escalation
        more = [{**frames[-1], "timestamp": round(last + (i + 1) / 30, 4)} for i in range(90)]
        assert post(client, key, "ward-1", more) == []
        assert [e["kind"] for e in events(client, key, "ward-1")] == ["fall", "still_down"]
        post(client, key, "ward-2", frames)
        with app.state.engine.connect() as conn:
            assert [r[0] for r in conn.execute(session_watch.select())] == ["ward-2"]
        assert client.delete("/v1/fall/stream/ward-2", headers={"X-API-Key": key}).status_code == 204
        with app.state.engine.connect() as conn:  # an ended session leaves no watch behind
            assert conn.execute(session_watch.select()).all() == []


def test_the_servers_own_check_runs_in_the_background(tmp_path):
    """The worker's loop, not a test's call: still_down reaches GET /v1/events with no frame after the fall."""
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    key = add_key(open_db(url), "k")
    with TestClient(create_app(Settings(db_url=url, model=MODEL, threads=1, long_lie_s=2.5, silent_grace_s=0.5)),
                    raise_server_exceptions=False) as client:
        assert [e["kind"] for e in post(client, key, "ward-3", fall_frames())] == ["fall"]
        end = time.time() + 15
        while [e["kind"] for e in events(client, key, "ward-3")] != ["fall", "still_down"] and time.time() < end:
            time.sleep(0.2)
        assert [e["kind"] for e in events(client, key, "ward-3")] == ["fall", "still_down"]


def test_an_idle_sweep_keeps_a_silent_session_until_its_still_down_is_raised(tmp_path):
    """ACTIONPOSE_SESSION_IDLE_S (at least 60) below ACTIONPOSE_LONG_LIE_S: the idle sweep deleted the state of a
    camera that went silent after a fall, and its pending still_down with it, so the fall never escalated (probe)."""
    from sqlalchemy import update

    from serve.storage import forget_sessions, sessions

    url = f"sqlite:///{tmp_path / 'ev.db'}"
    key = add_key(open_db(url), "k")
    app = create_app(Settings(db_url=url, model=MODEL, threads=1, session_idle_s=60.0, long_lie_s=120.0))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert [e["kind"] for e in post(client, key, "ward-4", fall_frames())] == ["fall"]
        engine = app.state.engine
        with engine.begin() as conn:  # the camera has been silent for 200 s: idle past 60 s, still_down overdue
            conn.execute(update(sessions).values(updated_at=sessions.c.updated_at - 200))
            conn.execute(update(session_watch).values(due_at=session_watch.c.due_at - 200))
        assert forget_sessions(engine, 60.0) == 0  # what a stream request's sweep runs
        assert [e["kind"] for e in app.state.silent.check()] == ["still_down"]
        assert [e["kind"] for e in events(client, key, "ward-4")] == ["fall", "still_down"]
        assert forget_sessions(engine, 60.0) == 1  # raised: now the idle state goes


def test_the_grace_setting_is_checked(monkeypatch):
    from actionpose.errors import ActionposeError

    monkeypatch.setenv("ACTIONPOSE_SILENT_GRACE_S", "0")
    with pytest.raises(ActionposeError, match="ACTIONPOSE_SILENT_GRACE_S='0': must be >= 0.5"):
        Settings.from_env()
