"""Storage, the service and kill -9 durability against a real PostgreSQL server (``pgserver`` ships
the PostgreSQL binaries as a wheel; skipped with the reason when it or the psycopg driver is missing).
The same code paths run on SQLite in test_serve.py / test_serve_live.py."""
from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

pgserver = pytest.importorskip("pgserver", reason="pgserver not installed (pip install pgserver 'psycopg[binary]' "
                                                  "runs these tests against a real PostgreSQL)")
pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) not installed")
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from serve.app import create_app  # noqa: E402
from serve.settings import Settings  # noqa: E402
from serve.storage import add_key, open_db, query_events, revoke_key, store_events  # noqa: E402

MODEL = os.environ.get("ACTIONPOSE_FALL_MODEL", "fall")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """One PostgreSQL server for the module; each test gets its own fresh database from ``new_db()``."""
    try:
        srv = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    except Exception as e:  # noqa: BLE001 - e.g. a sandbox that cannot run the postgres binary
        pytest.skip(f"pgserver could not start PostgreSQL here: {str(e).splitlines()[0][:200]}")
    base = srv.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")

    def new_db() -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        return base.replace("/postgres?", f"/{name}?", 1)

    yield new_db
    admin.dispose()
    srv.cleanup()


def test_schema_on_postgres_and_idempotent_store(pg):
    url = pg()
    engine = open_db(url)
    assert engine.dialect.name == "postgresql"
    # stream times may be UNIX seconds: start_ms then needs 64 bits (an INTEGER column overflowed here)
    rows = [{"track_id": 3, "start_time": 1764000000.25, "detected_time": 1764000001.5, "confidence": 0.9}]
    first = store_events(engine, "cam-1", rows)
    again = store_events(engine, "cam-1", rows)  # the client re-sends after a crash
    assert first == again and first[0]["id"] and first[0]["track_id"] == "3"
    assert first[0]["start_time"] == pytest.approx(1764000000.25)
    assert [e["id"] for e in query_events(engine, "cam-1", None, None, 100)] == [first[0]["id"]]
    assert query_events(engine, "other", None, None, 100) == []
    t = first[0]["created_at"]
    assert len(query_events(engine, None, t, t + 1, 100)) == 1 and query_events(engine, None, None, t, 100) == []


def with_receiver(scenario, url: str, monkeypatch) -> None:
    pytest.importorskip("httpx")
    from test_serve_webhook import Receiver

    receiver = Receiver()
    try:
        scenario(url, receiver, monkeypatch)
    finally:
        receiver.close()


def test_webhook_lease_on_postgres(pg, monkeypatch):
    from test_serve_webhook import lease_scenario

    with_receiver(lease_scenario, pg(), monkeypatch)


def test_webhook_parks_an_event_the_receiver_keeps_failing_on_postgres(pg, monkeypatch):
    from test_serve_webhook import parked_scenario

    with_receiver(parked_scenario, pg(), monkeypatch)


def test_a_silent_camera_after_a_fall_escalates_on_postgres(pg):
    from test_serve_silent import silent_scenario

    silent_scenario(pg())


def test_webhook_sends_an_event_committed_after_a_later_numbered_one(pg):
    pytest.importorskip("httpx")
    from test_serve_webhook import Receiver, out_of_order_scenario

    receiver = Receiver()
    try:
        out_of_order_scenario(pg(), receiver)
    finally:
        receiver.close()


def test_concurrent_duplicate_stores_keep_one_row(pg):
    """Eight threads store the same fall at once: PostgreSQL's unique index rejects all but one insert
    (inside a savepoint, so the transaction goes on) and every caller gets the one stored row."""
    engine = open_db(pg())
    row = [{"track_id": "a", "start_time": 12.5, "detected_time": 13.0, "confidence": 0.95}]
    out: list = []
    barrier = threading.Barrier(8)

    def go():
        barrier.wait()
        out.append(store_events(engine, "race", row)[0]["id"])

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(out) == 8 and len(set(out)) == 1
    assert len(query_events(engine, "race", None, None, 100)) == 1


@pytest.fixture(scope="module")
def svc(pg):
    url = pg()
    engine = open_db(url)
    keys = {"a": add_key(engine, "a"), "old": add_key(engine, "old")}
    revoke_key(engine, "old")
    with TestClient(create_app(Settings(db_url=url, model=MODEL, threads=1)), raise_server_exceptions=False) as c:
        yield c, keys


def test_service_on_postgres_auth_ready_and_events(svc):
    client, keys = svc
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/events", headers={"X-API-Key": keys["old"]}).status_code == 401
    # a joint arrangement held still (windows of pure noise are refused: not one tracked person)
    window = (np.random.default_rng(0).normal(300, 40, (1, 17, 2)) + np.zeros((64, 1, 1))).round(2).tolist()
    r = client.post("/v1/fall/predict", json={"layout": "coco17", "keypoints": window}, headers={"X-API-Key": keys["a"]})
    assert r.status_code == 200 and 0 <= r.json()["prob"] <= 1
    assert client.get("/v1/events", headers={"X-API-Key": keys["a"]}).json() == {"events": []}


@pytest.mark.skipif(not (SHARED / "videos" / "fall_skeleton_1.npy").exists(), reason="../shared not present")
def test_stream_real_fall_on_postgres_stores_one_event(svc):
    client, keys = svc
    kp = np.load(SHARED / "videos" / "fall_skeleton_1.npy")
    h = {"X-API-Key": keys["a"]}
    t0 = 1764000000.0  # UNIX-time stream timestamps
    events = []
    for lo in range(0, 108, 27):
        frames = [{"timestamp": t0 + i / 18, "persons": [{"track_id": 7, "keypoints": kp[i].tolist()}]}
                  for i in range(lo, lo + 27)]
        r = client.post("/v1/fall/stream/pg-video", json={"layout": "coco17", "frames": frames}, headers=h)
        assert r.status_code == 200, r.text
        events += r.json()["events"]
    assert len(events) == 1 and 2.0 <= events[0]["start_time"] - t0 <= 3.6
    stored = client.get("/v1/events", params={"session_id": "pg-video"}, headers=h).json()["events"]
    assert stored == events
    info = client.get("/v1/fall/stream/pg-video", headers=h).json()  # session state saved in PostgreSQL
    assert info["last_timestamp"] == pytest.approx(t0 + 107 / 18) and info["persons"] == 1


@pytest.mark.slow
def test_kill9_durability_on_postgres(pg, tmp_path):
    """The kill -9 test of test_serve_live.py, with the server writing to PostgreSQL."""
    from test_serve_live import Server, check_kill9

    url = pg()
    key = add_key(open_db(url), "live")
    srv = Server(url, tmp_path / "server.log").start()
    try:
        check_kill9(srv, key)
    finally:
        srv.stop()
