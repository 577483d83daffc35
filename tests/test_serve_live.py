"""The real server as a subprocess on 127.0.0.1: kill -9 durability, slow client, /healthz under load,
no key values in logs. Slow-marked (about 30 s), still run in CI."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")

from actionpose.data.importers import convert  # noqa: E402
from serve.storage import add_key, open_db  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "fall"
MODEL = os.environ.get("ACTIONPOSE_FALL_MODEL", "fall")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db_url: str, log: Path, workers: int = 1):
        self.port, self.db_url, self.log, self.workers = free_port(), db_url, log, workers
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        env = dict(os.environ, ACTIONPOSE_DB_URL=self.db_url, ACTIONPOSE_FALL_MODEL=MODEL,
                   ACTIONPOSE_BODY_TIMEOUT_S="1", ACTIONPOSE_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--workers", str(self.workers)],
                                     cwd=ROOT, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)  # its own process group: kill9 takes the workers too
        for _ in range(300):
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def kill9(self) -> None:
        """SIGKILL to the whole process group, as a container kill or an OOM kill of the service does (with
        --workers N, killing only the parent would leave its workers serving)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture()
def env(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    key = add_key(open_db(url), "live")
    srv = Server(url, tmp_path / "server.log").start()
    yield srv, key
    srv.stop()


def fall_frames() -> list[dict]:
    """URFD fall-01 (MoveNet fixture) as coco13 pixel frames at 30 fps."""
    ds = convert("urfd_movenet", FIX / "urfd_movenet13_mini.tar.gz")
    ann = next(a for a in ds.annotations if a["video"] == "fall-01")
    kp = ann["keypoint"][0] * np.array([640, 480], np.float32)
    sc = ann["keypoint_score"][0]
    return [{"timestamp": round(i / 30, 4), "persons": [{"track_id": 1, "keypoints": kp[i].round(2).tolist(),
                                                         "scores": sc[i].tolist()}]} for i in range(len(kp))]


def send_session(url: str, key: str, sid: str, frames: list[dict], acked: list, stop: threading.Event,
                 chunk: int = 20) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as c:
        for lo in range(0, len(frames), chunk):
            if stop.is_set():
                return
            try:
                r = c.post(f"/v1/fall/stream/{sid}", json={"layout": "coco13", "frames": frames[lo:lo + chunk]})
            except httpx.HTTPError:
                return  # server died mid-request: nothing acknowledged
            if r.status_code == 409:  # processed before a crash but the reply was lost: resume after it
                continue
            if r.status_code != 200:
                return
            acked.extend(r.json()["events"])


def test_kill9_keeps_every_acknowledged_event_once(env, tmp_path):
    check_kill9(*env)


def test_kill9_with_two_workers_keeps_every_acknowledged_event_once(tmp_path):
    """The same with `--workers 2`: 12 sessions spread over both workers, saved state and events shared
    through the database, the whole server killed at once and restarted."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    key = add_key(open_db(url), "live")
    srv = Server(url, tmp_path / "server.log", workers=2).start()
    try:
        check_kill9(srv, key)
    finally:
        srv.stop()


def check_kill9(srv: Server, key: str) -> None:
    """Kill -9 while 12 sessions stream, restart: every acknowledged event is stored once (also run
    against PostgreSQL by test_serve_postgres.py)."""
    frames = fall_frames()
    # the fixture fall must produce an event, or this test would prove nothing
    one: list = []
    send_session(srv.url, key, "probe", frames, one, threading.Event())
    assert len(one) == 1, "the model found no fall in the fixture sequence"

    acked: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=send_session, args=(srv.url, key, f"load-{i}", frames, acked, stop))
               for i in range(12)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(acked) < 3 and time.time() < deadline:
        time.sleep(0.01)
    srv.kill9()  # while the other sessions are still streaming
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 3
    srv.start()
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": key}) as c:
        stored = c.get("/v1/events", params={"limit": 1000}).json()["events"]
        by_id = {e["id"]: e for e in stored}
        for e in acked + one:
            assert e["id"] in by_id and by_id[e["id"]] == e
        keys = [(e["session_id"], e["track_id"], round(e["start_time"], 3)) for e in stored]
        assert len(keys) == len(set(keys)), "duplicate events stored"
        # the client re-sends a whole interrupted session after the restart: the frames processed before
        # the kill are refused (409, their state was saved), the rest continue that state: one event per fall
        again: list = []
        send_session(srv.url, key, "load-0", frames, again, threading.Event())
        after = c.get("/v1/events", params={"session_id": "load-0"}).json()["events"]
        assert len(after) == 1 and all(e["id"] == after[0]["id"] for e in again)


def test_slow_client_gets_408_and_health_stays_up(env):
    srv, key = env
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"POST /v1/fall/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
              f"Content-Length: 5000\r\n\r\n{{\"layout\":".encode())
    t0 = time.monotonic()
    assert httpx.get(srv.url + "/healthz", timeout=5).status_code == 200  # others are served meanwhile
    s.settimeout(15)
    reply = s.recv(4096).decode(errors="replace")
    waited = time.monotonic() - t0
    while not reply.endswith("}"):  # the body may come in a second segment
        more = s.recv(4096).decode(errors="replace")
        if not more:
            break
        reply += more
    s.close()
    assert " 408 " in reply.split("\r\n")[0] and "within 1 s" in reply
    assert waited < 1.9  # ACTIONPOSE_BODY_TIMEOUT_S=1; the fast lane handed on to FastAPI, which waited again


def test_healthz_answers_under_load_and_logs_hold_no_key(env):
    srv, key = env
    window = {"layout": "coco17", "fps": 30,
              "keypoints": (np.random.default_rng(0).normal(300, 50, (1, 17, 2)) + np.zeros((64, 1, 1))).round(1).tolist()}
    stop = threading.Event()
    codes: list[int] = []

    def hammer():
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": key}, timeout=30) as c:
            while not stop.is_set():
                codes.append(c.post("/v1/fall/predict", json=window).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        health = [httpx.get(srv.url + "/healthz", timeout=10).status_code for _ in range(10)]
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert health == [200] * 10 and codes and set(codes) == {200}
    assert "server" not in httpx.get(srv.url + "/healthz").headers  # the server software is not advertised
    httpx.get(srv.url + "/v1/events", headers={"X-API-Key": "wrong-key-value-123"})
    httpx.get(srv.url + f"/v1/events?api_key={key}&token=tok-value-456")  # a key in the URL: refused, and ...
    log = srv.log.read_text()
    assert "POST /v1/fall/predict" in log  # the access log is on ...
    assert key not in log and "wrong-key-value-123" not in log  # ... and never carries key values
    assert "tok-value-456" not in log and "api_key=***" in log  # ... not even one put in the URL


def test_two_workers_share_stream_sessions(tmp_path):
    """`--workers 2`: the session's requests go round-robin over 16 connections, which the kernel spreads
    over both workers (checked by the X-Worker header); the state lives in the database, so the
    fixture fall is still found exactly once."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    key = add_key(open_db(url), "live")
    srv = Server(url, tmp_path / "server.log", workers=2).start()
    clients = [httpx.Client(base_url=srv.url, headers={"X-API-Key": key}, timeout=30) for _ in range(16)]
    try:
        openers = [threading.Thread(target=c.get, args=("/healthz",)) for c in clients]
        for t in openers:  # open all 16 connections at once: the kernel spreads them over the workers
            t.start()
        for t in openers:
            t.join(30)
        frames = fall_frames()
        events, workers = [], set()
        for i, lo in enumerate(range(0, len(frames), 10)):
            r = clients[i % 16].post("/v1/fall/stream/two-workers", json={"layout": "coco13", "frames": frames[lo:lo + 10]})
            assert r.status_code == 200, r.text
            events += r.json()["events"]
            workers.add(r.headers["x-worker"])
        assert len(workers) == 2, "all requests went to one worker: this run proves nothing"
        assert len(events) == 1
    finally:
        for c in clients:
            c.close()
        srv.stop()


def test_client_example_runs_against_the_server(env):
    """serve/client_example.py as a user copies it: predict (JSON and binary), a stream, and the same
    frames re-sent (the server refuses them with 409; the client resumes without error or duplicates)."""
    srv, key = env
    r = subprocess.run([sys.executable, "serve/client_example.py"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "ACTIONPOSE_URL": srv.url, "ACTIONPOSE_KEY": key}, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("{'prob'") and lines[1].startswith("{'prob'")
    assert "events: []" in lines and "re-sent: []" in lines
    # a camera clock set back an hour: the client used to take the 409 for "already sent" and drop the frames
    assert "clock went back" in _second_send_refused(srv, key, "jumpy", "t - 3600")
    # two requests of one session out of order: the older one got 409 and the client took it for a re-send,
    # returning [] - its frames (a fall among them) were never processed
    assert "in time order" in _second_send_refused(srv, key, "late", "t - 1")


def _second_send_refused(srv, key: str, session: str, second_start: str) -> str:
    """``send_frames`` of 5 frames from now, then of 5 from ``second_start``; the second call's refusal text."""
    code = ("import time, client_example as c; t = time.time(); pose = [[320.0 + j, 100.0 + 22 * j] for j in range(17)]\n"
            "f = lambda t0: [{'timestamp': t0 + i / 30, 'persons': [{'track_id': 1, 'keypoints': pose}]} for i in range(5)]\n"
            f"c.send_frames({session!r}, f(t))\n"
            f"try:\n    c.send_frames({session!r}, f({second_start}))\nexcept RuntimeError as e:\n    print('refused:', e)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "serve", capture_output=True, text=True,
                       env={**os.environ, "ACTIONPOSE_URL": srv.url, "ACTIONPOSE_KEY": key}, timeout=120)
    assert r.returncode == 0 and "refused:" in r.stdout, r.stdout + r.stderr[-2000:]
    return r.stdout


@pytest.mark.parametrize("mode", [["--body", "binary"], ["--stream"]])
def test_load_benchmark_runs_and_reports_no_errors(mode):
    """`actionpose bench service` (predict, and --stream) end to end, briefly: it starts the documented
    server, every request is answered 200, and the report's table has a row per client level."""
    r = subprocess.run([sys.executable, "-m", "actionpose", "bench", "service", "--seconds", "0.5", "--clients", "1", "2",
                        "--rounds", "2", "--round-seconds", "0.3", *mode], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [line.split("|") for line in r.stdout.splitlines() if line.startswith("| ") and line[2].isalnum()]
    rows = [c for c in rows if c[1].strip() not in ("body", "cameras")]
    assert len(rows) == 2, r.stdout
    errors_col = 3 if "--stream" in mode else 4
    assert all(c[errors_col].strip() == "0" for c in rows), r.stdout
    if "--stream" not in mode:  # the goal is judged on interleaved (in-process, service) pairs
        goal = [line for line in r.stdout.splitlines() if line.startswith("goal throughput, binary: 2 interleaved pairs")]
        assert len(goal) == 1 and "median" in goal[0], r.stdout


def _children(pid: int) -> list[int]:
    """The server's worker processes (multiprocessing's resource tracker, also a child, left out)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for c in (task / "children").read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                    out.append(int(c))
            except OSError:
                pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT workers and /proc are Linux only")
def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(tmp_path):
    """`--workers 2` (one SO_REUSEPORT socket per worker): SIGKILL one worker; the other keeps answering and
    the parent starts a replacement."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    key = add_key(open_db(url), "live")
    srv = Server(url, tmp_path / "server.log", workers=2).start()
    try:
        workers = _children(srv.proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        window = {"layout": "coco17", "keypoints": (np.random.default_rng(0).normal(300, 50, (1, 17, 2))
                                                     + np.zeros((40, 1, 1))).tolist()}
        codes = []
        for _ in range(20):  # new connections: some would hash to the dead worker's socket if it were kept
            with httpx.Client(base_url=srv.url, headers={"X-API-Key": key}, timeout=30) as c:
                codes.append(c.post("/v1/fall/predict", json=window).status_code)
        assert set(codes) == {200}
        deadline = time.time() + 60
        while time.time() < deadline:
            now = _children(srv.proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no replacement worker: {_children(srv.proc.pid)}")
        assert "starting another" in srv.log.read_text()
    finally:
        srv.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT workers are Linux only")
def test_a_second_server_on_the_same_port_is_refused(tmp_path):
    """Per-worker SO_REUSEPORT sockets must not let a second copy of the service join the first one's
    port (traffic would be split between two servers without anyone noticing)."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    srv = Server(url, tmp_path / "server.log", workers=2).start()
    try:
        r = subprocess.run([sys.executable, "-m", "serve", "--port", str(srv.port), "--workers", "2"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "ACTIONPOSE_DB_URL": f"sqlite:///{tmp_path / 'other.db'}"})
        assert r.returncode == 2 and "Address already in use" in r.stderr
    finally:
        srv.stop()


def test_workers_refuse_a_taken_port_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "serve", "--port", str(port), "--workers", "2"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "ACTIONPOSE_DB_URL": f"sqlite:///{tmp_path / 'e.db'}"})
    assert r.returncode == 2 and r.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
