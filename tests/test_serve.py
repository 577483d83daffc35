"""Service behaviour in-process: auth, validation (422 never 500), events, micro-batching, fuzzing."""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from serve.app import create_app  # noqa: E402
from serve.settings import Settings  # noqa: E402
from serve.storage import add_key, hash_key, open_db, revoke_key  # noqa: E402

MODEL = os.environ.get("ACTIONPOSE_FALL_MODEL", "fall")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RNG = np.random.default_rng(0)


def standing_window(t: int = 64, v: int = 17) -> list:
    """A plausible upright person (coco17 pixels) with small jitter."""
    base = np.array([[320, 100], [325, 95], [315, 95], [330, 98], [310, 98], [345, 150], [295, 150], [355, 210],
                     [285, 210], [360, 260], [280, 260], [335, 270], [305, 270], [338, 360], [302, 360],
                     [340, 450], [300, 450]], np.float32)[:v]
    return (base[None] + RNG.normal(0, 1.5, (t, v, 2))).round(2).tolist()


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    db = tmp_path_factory.mktemp("svc") / "ev.db"
    url = f"sqlite:///{db}"
    engine = open_db(url)
    keys = {"a": add_key(engine, "a"), "b": add_key(engine, "b"), "old": add_key(engine, "old")}
    revoke_key(engine, "old")
    app = create_app(Settings(db_url=url, model=MODEL, max_body_bytes=200_000, threads=1))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, keys, engine


def test_keys_are_hashed_at_rest(svc):
    client, keys, engine = svc
    from sqlalchemy import text

    with engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("select key_hash from api_keys"))]
    assert keys["a"] not in stored and hash_key(keys["a"]) in stored


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer nope"}, "old"])
def test_data_endpoints_refuse_missing_wrong_or_revoked_key(svc, headers):
    client, keys, _ = svc
    if headers == "old":
        headers = {"X-API-Key": keys["old"]}
    body = {"layout": "coco17", "keypoints": standing_window(8)}
    assert client.post("/v1/fall/predict", json=body, headers=headers).status_code == 401
    assert client.post("/v1/fall/stream/s", json={"layout": "coco17", "frames": [{"timestamp": 0}]},
                       headers=headers).status_code == 401
    assert client.get("/v1/events", headers=headers).status_code == 401
    assert client.get("/healthz").status_code == 200  # ops endpoints stay open


def test_several_keys_work_and_bearer_form(svc):
    client, keys, _ = svc
    body = {"layout": "coco17", "fps": 30, "keypoints": standing_window(64)}
    r1 = client.post("/v1/fall/predict", json=body, headers={"X-API-Key": keys["a"]})
    r2 = client.post("/v1/fall/predict", json=body, headers={"Authorization": f"Bearer {keys['b']}"})
    assert r1.status_code == r2.status_code == 200
    out = r1.json()
    assert 0 <= out["prob"] <= 1 and out["is_fall"] == (out["prob"] >= out["threshold"]) and out["frames"] == 64


@pytest.mark.parametrize("body,needle", [
    ({"layout": "coco17", "keypoints": [[[1, 2]] * 16]}, "16 joints"),
    ({"layout": "nope", "keypoints": [[[1, 2]] * 17]}, "layout"),
    ({"layout": "coco17", "keypoints": [[[1, 2, 3, 4]] * 17]}, "2 (x, y) or 3"),
    ({"layout": "coco17", "keypoints": []}, "0 frames"),
    ({"layout": "coco17", "keypoints": [[[1, 2]] * 17] * 600}, "600 frames"),
    ({"layout": "coco17", "keypoints": [[["a", 2]] * 17]}, "keypoints"),
    ({"layout": "coco17", "keypoints": [[[1e300, 2]] * 17]}, "finite"),
    ({"layout": "coco17", "fps": -1, "keypoints": [[[1, 2]] * 17]}, "fps"),
    ({"layout": "coco17", "keypoints": [[[1, 2]] * 17], "scores": [[0.5] * 3]}, "scores"),
    ({"layout": "coco17", "keypoints": [[[1, 2]] * 17], "extra": 1}, "extra"),
    ({"layout": "coco17", "keypoints": standing_window(8)}, "needs at least 1 s"),  # one frame lying: p = 0.99
    ({"layout": "coco17", "keypoints": [[[1, 2, 5]] * 17] * 40}, "third channel is a score"),  # a depth z
    ({"layout": "coco17", "keypoints": [[[1, 2, 0.5]] * 17] * 40, "scores": [[1] * 17] * 40}, "both given"),
    ({"layout": "coco17", "keypoints": [[[0, 0]] * 17] * 64}, "no body is visible"),  # was p = 0.94, a "fall"
    ({"layout": "coco17", "keypoints": [[[200, 200]] * 17] * 48}, "no body is visible"),  # collapsed: p = 0.94 too
    ({"layout": "coco17", "keypoints": [[[5, 9]] * 17] * 40, "scores": [[0.1] * 17] * 40}, "no body is visible"),
    ([1, 2, 3], "body"),
])
def test_bad_predict_input_is_422_with_a_clear_message(svc, body, needle):
    client, keys, _ = svc
    r = client.post("/v1/fall/predict", json=body, headers={"X-API-Key": keys["a"]})
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


def test_nan_malformed_json_and_oversized_body(svc):
    client, keys, _ = svc
    h = {"X-API-Key": keys["a"], "content-type": "application/json"}
    assert client.post("/v1/fall/predict", content=b'{"layout": "coco17", "keypoints": [[[NaN, 1]]]}',
                       headers=h).status_code == 422
    assert client.post("/v1/fall/predict", content=b'{"layout": "coco17", "keyp', headers=h).status_code == 422
    for overflow in (b"-9223372036854775809", b'{"layout": "coco17", "keypoints": [[[1, -9223372036854775809]]]}'):
        assert client.post("/v1/fall/predict", content=overflow, headers=h).status_code == 422  # was a 500
    big = json.dumps({"layout": "coco17", "keypoints": standing_window(800)}).encode()
    assert len(big) > 200_000
    r = client.post("/v1/fall/predict", content=big, headers=h)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


def test_stream_validation(svc):
    client, keys, _ = svc
    h = {"X-API-Key": keys["a"]}
    frame = {"timestamp": 1.0, "persons": [{"track_id": 1, "keypoints": [[1, 2]] * 17}]}
    bad_order = {"layout": "coco17", "frames": [frame, frame]}
    r = client.post("/v1/fall/stream/s-order", json=bad_order, headers=h)
    assert r.status_code == 422 and "timestamp" in r.json()["detail"]
    r = client.post("/v1/fall/stream/bad id!", json={"layout": "coco17", "frames": [frame]}, headers=h)
    assert r.status_code == 422
    two = {"layout": "coco17", "frames": [{"timestamp": 0, "persons": [frame["persons"][0]] * 2}]}
    assert "twice" in client.post("/v1/fall/stream/s2", json=two, headers=h).json()["detail"]
    # two persons without a track_id: both defaulted to 0 and were called "0 appears twice" (probe)
    anon = {"layout": "coco17", "frames": [{"timestamp": 0, "persons": [{"keypoints": [[1, 2]] * 17}] * 2}]}
    r = client.post("/v1/fall/stream/s2b", json=anon, headers=h)
    assert r.status_code == 422 and "frames[0].persons[1].track_id: missing; with several persons" in r.json()["detail"]
    # 1 and "1" are one track once stored as text: the second silently replaced the first
    p = frame["persons"][0]
    mixed = {"layout": "coco17", "frames": [{"timestamp": 0, "persons": [p, {**p, "track_id": "1"}]}]}
    assert "twice" in client.post("/v1/fall/stream/s3", json=mixed, headers=h).json()["detail"]
    # a depth z as the third channel: refused by /predict, but streamed it was read as a score (a fall missed)
    z = {"layout": "coco17", "frames": [{"timestamp": 0, "persons": [{"track_id": 1, "keypoints": [[1, 2, -0.3]] * 17}]}]}
    r = client.post("/v1/fall/stream/s-z", json=z, headers=h)
    assert r.status_code == 422 and "third channel is a score" in r.json()["detail"] and "track '1'" in r.json()["detail"]
    # AlphaPose's scores reach 1.04: taken as 1 by both paths (/predict refused them, streams took them)
    over = {"layout": "coco17", "frames": [{"timestamp": 0, "persons": [{"track_id": 1, "keypoints": [[1, 2, 1.04]] * 17}]}]}
    assert client.post("/v1/fall/stream/s-over", json=over, headers=h).status_code == 200
    win = {"layout": "coco17", "keypoints": [[[100 + j, 50 + 10 * j, 1.04] for j in range(17)]] * 40}
    assert client.post("/v1/fall/predict", json=win, headers=h).status_code == 200
    # text is not a number: "5" as a timestamp, "1" or true as a coordinate
    for bad in ({"layout": "coco17", "frames": [{**frame, "timestamp": "5"}]},
                {"layout": "coco17", "frames": [{"timestamp": 2, "persons": [{"keypoints": [["1", 2]] * 17}]}]}):
        assert client.post("/v1/fall/stream/s4", json=bad, headers=h).status_code == 422
    for bad in ({"layout": "coco17", "fps": "30", "keypoints": [[[1, 2]] * 17] * 8},
                {"layout": "coco17", "keypoints": [[[True, False]] * 17] * 8}):
        assert client.post("/v1/fall/predict", json=bad, headers=h).status_code == 422


def test_events_filters(svc):
    client, keys, engine = svc
    from serve.storage import store_events

    store_events(engine, "ward-1", [{"track_id": 3, "start_time": 1.5, "detected_time": 2.0, "confidence": 0.9}])
    store_events(engine, "ward-1", [{"track_id": 3, "start_time": 1.5, "detected_time": 2.0, "confidence": 0.9}])
    store_events(engine, "ward-2", [{"track_id": 1, "start_time": 4.0, "detected_time": 4.5, "confidence": 0.8}])
    h = {"X-API-Key": keys["b"]}
    one = client.get("/v1/events", params={"session_id": "ward-1"}, headers=h).json()["events"]
    assert len(one) == 1 and one[0]["track_id"] == "3"  # the duplicate insert was absorbed
    assert len(client.get("/v1/events", params={"since": 0}, headers=h).json()["events"]) >= 2
    assert client.get("/v1/events", params={"until": 1}, headers=h).json()["events"] == []
    assert client.get("/v1/events", params={"limit": 0}, headers=h).status_code == 422
    r = client.get("/v1/events", params={"since": 2_000_000_000, "until": 1_000_000_000}, headers=h)
    assert r.status_code == 422 and "before until" in r.json()["detail"]  # was 200 with nothing in it
    r = client.get("/v1/events", params={"track_id": 3}, headers=h)  # a filter that does not exist
    assert r.status_code == 422 and "track_id" in r.json()["detail"]  # was every event, as if it matched
    r = client.get("/v1/events?session_id=ward-1&session_id=ward-2", headers=h)  # the last one silently won
    assert r.status_code == 422 and "more than once" in r.json()["detail"]
    assert client.head("/healthz").status_code == 200  # load balancers probe with HEAD


def test_a_stream_frame_from_the_future_is_refused_not_stored(svc):
    """One frame stamped an hour ahead made every real frame after it a 409 'not after this session's last
    frame' (and the documented client took 409 for 'already sent'): detection stopped without an error."""
    client, keys, _ = svc
    h = {"X-API-Key": keys["a"]}
    now = time.time()
    pose = standing_window(1)[0]
    bad = {"layout": "coco17", "frames": [{"timestamp": now + 3600, "persons": [{"track_id": 1, "keypoints": pose}]}]}
    r = client.post("/v1/fall/stream/clock-jump", json=bad, headers=h)
    assert r.status_code == 422 and "ahead of the server's clock" in r.json()["detail"]
    ok = {"layout": "coco17", "frames": [{"timestamp": now + 1, "persons": [{"track_id": 1, "keypoints": pose}]}]}
    assert client.post("/v1/fall/stream/clock-jump", json=ok, headers=h).status_code == 200


def test_key_names_are_checked_and_the_database_file_is_private(tmp_path):
    from actionpose.errors import ActionposeError

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    engine = open_db(url)
    assert (tmp_path / "keys.db").stat().st_mode & 0o077 == 0  # health events: owner-only
    for bad in ("x" * 300, "two\nlines", "", "sp ace"):
        with pytest.raises(ActionposeError, match="key name"):
            add_key(engine, bad)
    assert add_key(engine, "clinic-app_2.b").startswith("ap_")


def test_concurrent_predicts_share_onnx_calls(svc):
    client, keys, _ = svc
    import httpx

    app = client.app
    batcher = app.state.batcher
    before_b, before_i = batcher.batches, batcher.items

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            body = {"layout": "coco17", "keypoints": standing_window(64)}
            rs = await asyncio.gather(*[ac.post("/v1/fall/predict", json=body, headers={"X-API-Key": keys["a"]})
                                        for _ in range(16)])
        return rs

    rs = client.portal.call(go)
    assert all(r.status_code == 200 for r in rs)
    items, batches = batcher.items - before_i, batcher.batches - before_b
    assert items == 16 and batches < 16  # at least some requests were scored together


def binary(window: list, layout: str = "coco17", fps: str = "30", shape: str | None = None) -> dict:
    arr = np.asarray(window, "<f4")
    return {"content": arr.tobytes(), "headers": {"content-type": "application/octet-stream", "X-Layout": layout,
                                                  "X-Fps": fps, "X-Shape": shape or ",".join(map(str, arr.shape))}}


def test_binary_body_gives_the_json_answer(svc):
    client, keys, _ = svc
    window = np.asarray(standing_window(64), np.float32).tolist()  # float32-exact numbers in both bodies
    h = {"X-API-Key": keys["a"]}
    j = client.post("/v1/fall/predict", json={"layout": "coco17", "fps": 30, "keypoints": window}, headers=h)
    b = binary(window)
    r = client.post("/v1/fall/predict", content=b["content"], headers={**h, **b["headers"]})
    assert j.status_code == r.status_code == 200, r.text
    assert r.json() == j.json()


@pytest.mark.parametrize("change,needle", [
    ({"layout": "nope"}, "X-Layout"),
    ({"fps": "fast"}, "X-Fps"),
    ({"fps": "inf"}, "X-Fps"),
    ({"fps": "1_8"}, "X-Fps"),  # Python's float() reads it as 18 (probe)
    ({"shape": "64,17"}, "X-Shape"),
    ({"shape": "64,17,x"}, "X-Shape"),
    ({"shape": "63,17,2"}, "bytes"),
    ({"shape": "128,17,1"}, "2 (x, y) or 3"),
    ({"layout": "body13", "shape": "136,8,2"}, "8 joints"),
    ({"nan": True}, "finite"),
])
def test_bad_binary_input_is_422(svc, change, needle):
    client, keys, _ = svc
    window = np.asarray(standing_window(64), np.float32)
    if change.pop("nan", False):
        window[3, 4, 0] = np.nan
    b = binary(window.tolist(), **change)
    r = client.post("/v1/fall/predict", content=b["content"], headers={"X-API-Key": keys["a"], **b["headers"]})
    assert r.status_code == 422 and needle in r.json()["detail"], r.text


def test_fast_lane_answers_exactly_like_the_fastapi_route(svc, tmp_path):
    """The predict fast lane (happy path outside FastAPI) and the plain FastAPI route give byte-identical
    answers, success or error; refusals and malformed bodies fall through to FastAPI's messages."""
    client, keys, _ = svc
    url = str(client.app.state.engine.url)
    plain_app = create_app(Settings(db_url=url, model=MODEL, max_body_bytes=200_000, threads=1, fast_lane=False))
    h = {"X-API-Key": keys["a"]}
    win = standing_window(64)
    w3 = np.concatenate([np.asarray(win), np.full((64, 17, 1), 0.9)], -1).round(3).tolist()
    nan_body = json.dumps({"layout": "coco17", "keypoints": win}).replace(str(win[2][3][0]), "NaN", 1)
    b = binary(win)
    cases = [
        dict(json={"layout": "coco17", "fps": 30, "keypoints": win}, headers=h),
        dict(json={"layout": "coco17", "fps": 25, "keypoints": w3}, headers=h),
        dict(json={"layout": "body13", "keypoints": [row[:1] + row[5:] for row in win]}, headers=h),
        dict(content=b["content"], headers={**h, **b["headers"]}),
        dict(json={"layout": "coco17", "keypoints": win}, headers={"X-API-Key": "wrong"}),
        dict(json={"layout": "coco17", "keypoints": win}, headers=[("X-API-Key", "wrong"), ("X-API-Key", keys["a"])]),
        dict(json={"layout": "coco17", "keypoints": win}),
        dict(json={"layout": "coco17", "keypoints": [[[1, 2]] * 16]}, headers=h),
        dict(content=b"{not json", headers={**h, "content-type": "application/json"}),
        dict(content=nan_body.encode(), headers={**h, "content-type": "application/json"}),
        dict(content=b"x" * 300_000, headers={**h, "content-type": "application/json"}),
        dict(content=b["content"][:-4], headers={**h, **b["headers"]}),
    ]
    lane = client.app.fast_lane
    assert lane is not None
    keys_cache = client.app.state.keys
    keys_cache.refresh()
    ttl = keys_cache.ttl_s
    keys_cache.ttl_s = 3600  # no reload in the middle: the comparison is not timing-dependent
    served = lane.served
    try:
        with TestClient(plain_app, raise_server_exceptions=False) as plain:
            assert plain.app.fast_lane is None
            for case in cases:
                fast, slow = client.post("/v1/fall/predict", **case), plain.post("/v1/fall/predict", **case)
                assert (fast.status_code, fast.content) == (slow.status_code, slow.content), case.get("json", "")
                assert fast.status_code in (200, 401, 413, 422)
    finally:
        keys_cache.ttl_s = ttl
    assert lane.served - served == 4  # the four valid requests took the lane, nothing else did


def test_a_key_revoked_after_use_stops_working_despite_its_cached_verdict(tmp_path):
    """KeyChecker keeps a verdict per key for speed; revoking must still take effect at the next reload."""
    from serve.auth import KeyChecker

    engine = open_db(f"sqlite:///{tmp_path / 'k.db'}")
    key, other = add_key(engine, "ward"), add_key(engine, "desk")
    checker = KeyChecker(engine, ttl_s=0.0)  # reload on every check
    assert checker.valid(key) and checker.valid(key) and checker.valid(other)
    assert not checker.valid(key + "x") and not checker.valid("")
    revoke_key(engine, "ward")
    assert not checker.valid(key) and checker.valid(other)
    for i in range(3000):  # random keys cannot grow the verdict cache without bound
        checker.valid(f"guess-{i}")
    assert len(checker._active()[1]) <= 1024


def test_fast_lane_body_deadline_answers_408_and_leaves_other_cancels_alone():
    """The lane's body deadline (a sweep, not a timer per request) answers a stalled body with 408; a
    cancel that is not the deadline's (client gone, server shutting down) still cancels the request."""
    from serve.fastlane import PredictFastLane, ServiceApp

    class Keys:
        async def ensure_fresh(self):
            return None

        def valid(self, key):
            return key == "k"

    app = ServiceApp()
    app.state.keys = Keys()
    lane = PredictFastLane(app, "/p", parse_json=None, parse_binary=None, max_bytes=1000, timeout_s=0.05)
    scope = {"type": "http", "method": "POST", "path": "/p", "app": app,
             "headers": [(b"content-length", b"10"), (b"x-api-key", b"k")]}

    async def stalled():
        await asyncio.sleep(3600)

    async def run():
        sent: list = []

        async def send(msg):
            sent.append(msg)

        t0 = time.monotonic()
        await lane(scope, stalled, send)
        waited = time.monotonic() - t0
        assert sent[0]["status"] == 408 and b"within 0.05 s" in sent[1]["body"] and 0.05 <= waited < 1.0
        other = asyncio.ensure_future(lane(scope, stalled, send))
        await asyncio.sleep(0.01)
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other
        assert not lane._reading and not lane._expired
        await asyncio.sleep(0.2)
        assert lane._sweep is None and lane._sweep_loop is None  # no request reading: the sweep has stopped
    asyncio.run(run())  # a second event loop (a restarted app): the sweep starts again there

    asyncio.run(run())


def test_mixed_micro_batch_matches_in_process(svc):
    """Concurrent requests of different layouts, lengths, rates and body formats share ONNX calls and
    each still gets exactly the in-process FallDetector's probability."""
    import httpx

    from actionpose.inference.fall import FallDetector

    client, keys, _ = svc
    det = FallDetector.from_pretrained(MODEL, threads=1)
    cases = [("coco17", 30, standing_window(64)), ("coco17", 15, standing_window(20)),
             ("body13", 30, standing_window(64, 13)), ("coco17", 30, standing_window(64))] * 3
    want = [det.predict(np.asarray(w, np.float32), layout=lay, fps=fps).prob for lay, fps, w in cases]
    app, h = client.app, {"X-API-Key": keys["a"]}
    before = app.state.batcher.batches

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ac:
            reqs = []
            for i, (lay, fps, w) in enumerate(cases):
                if i % 2:
                    b = binary(w, lay, str(fps))
                    reqs.append(ac.post("/v1/fall/predict", content=b["content"], headers={**h, **b["headers"]}))
                else:
                    reqs.append(ac.post("/v1/fall/predict", json={"layout": lay, "fps": fps, "keypoints": w}, headers=h))
            return await asyncio.gather(*reqs)

    rs = client.portal.call(go)
    assert [r.status_code for r in rs] == [200] * len(cases)
    got = [r.json()["prob"] for r in rs]
    assert got == pytest.approx(want, abs=1e-6)
    assert app.state.batcher.batches - before < len(cases)


json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
                           lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=8), ch, max_size=4),
                           max_leaves=30)
num = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12), st.text(max_size=2),
                st.none())
near_valid = st.fixed_dictionaries({
    "layout": st.sampled_from(["coco17", "body13", "blazepose33", "coco13", "x", ""]),
    "keypoints": st.lists(st.lists(st.lists(num, min_size=1, max_size=4), min_size=0, max_size=34), max_size=6),
}, optional={"fps": num, "scores": st.lists(st.lists(num, max_size=17), max_size=6)})
near_stream = st.fixed_dictionaries({
    "layout": st.sampled_from(["coco17", "body13", "q"]),
    "frames": st.lists(st.fixed_dictionaries({"timestamp": num, "persons": st.lists(st.fixed_dictionaries(
        {"track_id": st.one_of(st.integers(-5, 10**12), st.text(max_size=3), st.none()),
         "keypoints": st.lists(st.lists(num, max_size=3), max_size=18)}), max_size=2)}), max_size=3)})


_FUZZ_SESSIONS = itertools.count()


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(json_values, near_valid, near_stream), path=st.sampled_from(
    ["/v1/fall/predict", "/v1/fall/stream/fuzz", "/v1/fall/stream/fuzz-2"]))
def test_fuzz_never_500(svc, body, path):
    client, keys, _ = svc
    try:
        payload = json.dumps(body, allow_nan=True).encode()
    except (TypeError, ValueError):
        return
    if path.startswith("/v1/fall/stream/"):  # a session of its own per example: an earlier example's frame at the
        path += f"-{next(_FUZZ_SESSIONS)}"  # same time made a (correct) 409, failing the run by example order
    r = client.post(path, content=payload, headers={"X-API-Key": keys["a"], "content-type": "application/json"})
    assert r.status_code in (200, 413, 422), (r.status_code, r.text[:300])


header_text = st.one_of(st.text(max_size=12), st.sampled_from(["coco17", "body13", "64,17,2", "1,13,3", "30", "0",
                                                              "-1,17,2", "nan", "1e309", "2,17,2,1"]))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.one_of(st.binary(max_size=600), st.lists(st.floats(width=32), max_size=150).map(
           lambda xs: np.asarray(xs, "<f4").tobytes())),
       layout=header_text, shape=header_text, fps=header_text)
def test_fuzz_binary_body_never_500(svc, raw, layout, shape, fps):
    client, keys, _ = svc
    h = {"X-API-Key": keys["a"], "content-type": "application/octet-stream"}
    for name, value in (("X-Layout", layout), ("X-Shape", shape), ("X-Fps", fps)):
        if value.isprintable() and value.isascii():
            h[name] = value
    r = client.post("/v1/fall/predict", content=raw, headers=h)
    assert r.status_code in (200, 422), (r.status_code, r.text[:300])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=st.dictionaries(st.sampled_from(["session_id", "since", "until", "limit", "after_id"]),
                              st.one_of(st.text(max_size=6), st.integers(-10**20, 10**20), st.floats()), max_size=4))
def test_fuzz_events_query_never_500(svc, params):
    client, keys, _ = svc
    r = client.get("/v1/events", params={k: str(v) for k, v in params.items()}, headers={"X-API-Key": keys["a"]})
    assert r.status_code in (200, 422), (r.status_code, r.text[:300])


def test_openapi_documents_the_endpoints(svc):
    client, _, _ = svc
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/v1/fall/predict", "/v1/fall/stream/{session_id}", "/v1/events", "/healthz", "/readyz"} <= set(paths)
    page = client.get("/docs")  # Swagger UI from this process: an offline hospital network still gets the page
    assert page.status_code == 200 and "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in page.text and client.get(asset).status_code == 200
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "/docs-assets/redoc.standalone.js" in redoc.text and "https://" not in redoc.text
    # the key scheme is declared (Swagger's "Authorize", generated clients), and the refusals with their real shape
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    for path, method in [("/v1/fall/predict", "post"), ("/v1/fall/stream/{session_id}", "post"), ("/v1/events", "get")]:
        op = paths[path][method]
        assert {"APIKeyHeader": []} in op["security"] and {"401", "422"} <= set(op["responses"])
        assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert {"409", "503"} <= set(paths["/v1/fall/stream/{session_id}"]["post"]["responses"])
    assert "security" not in paths["/healthz"]["get"]


@pytest.mark.skipif(not (SHARED / "videos" / "fall_skeleton_1.npy").exists(), reason="../shared not present")
def test_stream_real_fall_skeleton_gives_one_event(svc):
    client, keys, _ = svc
    kp = np.load(SHARED / "videos" / "fall_skeleton_1.npy")
    h = {"X-API-Key": keys["a"]}
    events = []
    for lo in range(0, 108, 27):  # four requests, as a camera client would send them
        frames = [{"timestamp": i / 18, "persons": [{"track_id": 7, "keypoints": kp[i].tolist()}]}
                  for i in range(lo, lo + 27)]
        r = client.post("/v1/fall/stream/real-video", json={"layout": "coco17", "frames": frames}, headers=h)
        assert r.status_code == 200, r.text
        events += r.json()["events"]
    assert len(events) == 1
    assert 2.0 <= events[0]["start_time"] <= 3.6 and events[0]["track_id"] == "7"
    stored = client.get("/v1/events", params={"session_id": "real-video"}, headers=h).json()["events"]
    assert [e["id"] for e in stored] == [events[0]["id"]]
    # ending the session deletes its state (the person's last seconds of keypoints) now; the events stay
    assert client.delete("/v1/fall/stream/real-video").status_code == 401
    assert client.delete("/v1/fall/stream/real-video", headers=h).status_code == 204
    assert client.get("/v1/fall/stream/real-video", headers=h).status_code == 404
    assert client.delete("/v1/fall/stream/real-video", headers=h).status_code == 404
    assert client.get("/v1/events", params={"session_id": "real-video"}, headers=h).json()["events"] == stored
    frames = [{"timestamp": 0.5, "persons": [{"track_id": 7, "keypoints": kp[0].tolist()}]}]  # earlier than before:
    r = client.post("/v1/fall/stream/real-video", json={"layout": "coco17", "frames": frames}, headers=h)
    assert r.status_code == 200  # a new session, not a 409 against the old one's clock


def test_predict_reads_a_long_window_whole_as_in_process(svc):
    """A 5.3-s window holding a fall 2.6 s before its end: the service splits it like the in-process
    predictor (every 2.13-s window, one hop apart), through the fast lane and the micro-batcher alike."""
    from actionpose.inference.fall import FallDetector

    client, keys, _ = svc
    frames = _fixture_fall_frames()
    kp = np.array([f["persons"][0]["keypoints"] for f in frames], np.float32)
    sc = np.array([f["persons"][0]["scores"] for f in frames], np.float32)
    r = client.post("/v1/fall/predict", json={"layout": "coco13", "fps": 30, "keypoints": kp.tolist(),
                                              "scores": sc.tolist()}, headers={"X-API-Key": keys["a"]})
    assert r.status_code == 200, r.text
    here = FallDetector.from_pretrained(MODEL).predict(kp, sc, layout="coco13")
    got = r.json()
    assert (got["is_fall"], got["windows"], got["peak_time"], got["fall_start"]) == \
        (here.is_fall, here.windows, here.peak_time, here.fall_start) and got["fall_start"] is not None
    assert got["prob"] == pytest.approx(here.prob, abs=1e-6) and got["windows"] > 1 and got["is_fall"]
    short = client.post("/v1/fall/predict", json={"layout": "coco13", "fps": 30, "keypoints": kp[-64:].tolist()},
                        headers={"X-API-Key": keys["a"]}).json()
    assert short["windows"] == 1 and short["peak_time"] is None


def test_a_stream_person_with_a_score_channel_and_scores_is_422(svc):
    """predict refused keypoints with a third (score) channel plus ``scores``; a stream took them and dropped
    the third channel without a word (probe). Both are refused now, in the service and in process."""
    from actionpose.errors import ActionposeError
    from actionpose.inference.fall import FallDetector

    client, keys, _ = svc
    kp = [[100.0 + j, 50.0 + 10 * j, 0.9] for j in range(17)]
    r = client.post("/v1/fall/stream/both-scores", headers={"X-API-Key": keys["a"]}, json={
        "layout": "coco17", "frames": [{"timestamp": 1.0, "persons": [{"track_id": 1, "keypoints": kp,
                                                                       "scores": [0.5] * 17}]}]})
    assert r.status_code == 422 and "frames[0].persons[0]: a third (score) channel" in r.json()["detail"], r.text
    with pytest.raises(ActionposeError, match="track 1: a third .score. channel and separate scores"):
        FallDetector.from_pretrained(MODEL).update([{"track_id": 1, "keypoints": kp, "scores": [0.5] * 17}], 1.0)


def test_a_stream_in_milliseconds_gets_422_not_an_empty_200(svc):
    """A camera app stamping frames in milliseconds got 200 {"events": []} for a real fall: nothing was ever
    scored. Now the request is refused, naming the timestamp and the likely cause."""
    client, keys, _ = svc
    pose = [[320.0 + j, 100.0 + 22 * j] for j in range(17)]
    frames = [{"timestamp": 1000 + i * 55.5, "persons": [{"track_id": 1, "keypoints": pose}]} for i in range(20)]
    r = client.post("/v1/fall/stream/ms-clock", json={"layout": "coco17", "frames": frames},
                    headers={"X-API-Key": keys["a"]})
    assert r.status_code == 422 and "millisecond clock" in r.json()["detail"], r.text


def _fixture_fall_frames() -> list[dict]:
    from test_serve_live import fall_frames

    return fall_frames()


def test_stream_sessions_live_in_the_database_so_any_worker_or_a_restart_continues_them(svc, tmp_path):
    """Two app instances on one database stand in for two workers (or a restart): a session whose
    requests alternate between them finds the fixture fall exactly once, as one instance does; a
    re-sent request is refused with 409 and its event stays stored once."""
    _, keys, _ = svc
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    key = add_key(open_db(url), "w")
    h = {"X-API-Key": key}
    frames = _fixture_fall_frames()
    chunks = [frames[lo:lo + 20] for lo in range(0, len(frames), 20)]

    def run(clients: list, sid: str) -> list[dict]:
        events = []
        for i, chunk in enumerate(chunks):
            r = clients[i % len(clients)].post(f"/v1/fall/stream/{sid}", json={"layout": "coco13", "frames": chunk},
                                               headers=h)
            assert r.status_code == 200, r.text
            assert r.json()["last_timestamp"] == chunk[-1]["timestamp"]
            events += r.json()["events"]
        return events

    mk = lambda: TestClient(create_app(Settings(db_url=url, model=MODEL, threads=1)), raise_server_exceptions=False)  # noqa: E731
    with mk() as one, mk() as two:
        alone = run([one], "alone")
        shared = run([one, two], "shared")
        assert len(alone) == 1 and len(shared) == 1
        assert {k: shared[0][k] for k in ("track_id", "start_time", "detected_time", "confidence")} == \
               {k: alone[0][k] for k in ("track_id", "start_time", "detected_time", "confidence")}
        again = two.post("/v1/fall/stream/shared", json={"layout": "coco13", "frames": chunks[-1]}, headers=h)
        assert again.status_code == 409 and "last processed frame" in again.json()["detail"]
        assert "DELETE /v1/fall/stream/" in again.json()["detail"]  # a fixed clock: how to start again (probe)
        info = two.get("/v1/fall/stream/shared", headers=h).json()  # where a client resumes
        assert info["last_timestamp"] == frames[-1]["timestamp"] and info["persons"] == 1
        assert two.get("/v1/fall/stream/never-seen", headers=h).status_code == 404
        assert two.get("/v1/fall/stream/shared").status_code == 401
        stored = one.get("/v1/events", params={"session_id": "shared"}, headers=h).json()["events"]
        assert [e["id"] for e in stored] == [shared[0]["id"]]


@pytest.mark.parametrize("env, message", [
    ({"ACTIONPOSE_BATCH_MAX": "abc"}, "ACTIONPOSE_BATCH_MAX='abc': expected an integer"),
    ({"ACTIONPOSE_BATCH_MAX": "0"}, "ACTIONPOSE_BATCH_MAX='0': must be >= 1"),
    ({"ACTIONPOSE_FAST_LANE": "maybe"}, "ACTIONPOSE_FAST_LANE='maybe': expected 1/0"),
    ({"ACTIONPOSE_BODY_TIMEOUT_S": "nan"}, "ACTIONPOSE_BODY_TIMEOUT_S='nan': must be a finite number"),
    # past the detector's own bound these passed the check and every worker died with a traceback (probe)
    ({"ACTIONPOSE_LONG_LIE_S": "3601"}, "ACTIONPOSE_LONG_LIE_S='3601': must be <= 3600"),
    ({"ACTIONPOSE_LONG_LIE_S": "inf"}, "ACTIONPOSE_LONG_LIE_S='inf': must be a finite number"),
    ({"ACTIONPOSE_LONG_LIE_S": "0.5"}, "ACTIONPOSE_LONG_LIE_S='0.5': must be >= 1"),
    ({"ACTIONPOSE_FALL_MODEL": "/nope/fall.onnx"}, "/nope/fall.onnx: no such fall model"),
    # the database is opened before any worker starts (these were tracebacks at worker start-up, exit 3)
    ({"ACTIONPOSE_DB_URL": "sqlite:///{tmp}/afile/e.db"}, "afile is a file, not a folder"),
    ({"ACTIONPOSE_DB_URL": "mysql://u:s3cret@db/x"}, "ACTIONPOSE_DB_URL=mysql://u:***@db/x: no driver for this database"),
    ({"ACTIONPOSE_DB_URL": "no-url-s3cret"}, "ACTIONPOSE_DB_URL: not a database URL"),
    ({"ACTIONPOSE_WEBHOOK_URL": "https://hooks.example.org/T0/s3cret"}, "ACTIONPOSE_WEBHOOK_SECRET: set at least 16"),
    ({"ACTIONPOSE_WEBHOOK_URL": "hooks.example.org", "ACTIONPOSE_WEBHOOK_SECRET": "x" * 20},
     "ACTIONPOSE_WEBHOOK_URL: must be an http:// or https:// URL"),
    ({"ACTIONPOSE_WEBHOOK_TIMEOUT_S": "0"}, "ACTIONPOSE_WEBHOOK_TIMEOUT_S='0': must be >= 0.1"),
    ({"ACTIONPOSE_MAX_PERSONS": "1_0"}, "ACTIONPOSE_MAX_PERSONS='1_0': expected an integer"),  # was read as 10 (probe)
])
def test_bad_settings_stop_the_server_with_one_line(env, message, tmp_path):
    import subprocess
    import sys

    (tmp_path / "afile").write_text("x")
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "serve", "--port", "1"], cwd=root, capture_output=True, text=True,
                       env={**os.environ, "ACTIONPOSE_DB_URL": f"sqlite:///{tmp_path / 'e.db'}", **env}, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and message in r.stderr, r.stderr
    assert "s3cret" not in r.stderr  # a database password is never printed


def test_settings_from_env_reads_every_field(monkeypatch):
    monkeypatch.setenv("ACTIONPOSE_BATCH_MAX", "8")
    monkeypatch.setenv("ACTIONPOSE_FAST_LANE", "off")
    monkeypatch.setenv("ACTIONPOSE_FALL_MODEL", "fall_body13")
    monkeypatch.setenv("ACTIONPOSE_SESSION_IDLE_S", "60")
    s = Settings.from_env()
    assert (s.batch_max, s.fast_lane, s.model, s.session_idle_s, s.threads) == (8, False, "fall_body13", 60.0, 1)


def test_a_revoked_key_name_can_be_given_to_a_new_key(tmp_path):
    """Key rotation: `keys add NAME` after `keys revoke NAME` used to fail with 'already exists'."""
    from serve.storage import active_key_hashes, add_key, list_keys, open_db, revoke_key

    engine = open_db(f"sqlite:///{tmp_path / 'k.db'}")
    old = add_key(engine, "ward")
    with pytest.raises(Exception):
        add_key(engine, "ward")  # an active key of that name: still refused
    assert revoke_key(engine, "ward")
    new = add_key(engine, "ward")
    active = active_key_hashes(engine)
    assert hash_key(new) in active and hash_key(old) not in active
    names = [k["name"] for k in list_keys(engine)]
    assert "ward" in names and len(names) == 2  # the revoked one kept, under a suffixed name


def test_keys_list_and_start_name_the_database(tmp_path, monkeypatch, capsys):
    """`keys list` in another folder printed nothing (a new, empty database) and a mistyped
    ACTIONPOSE_DB_URL started a "ready" service that answered 401 to every key: both now name the database."""
    from serve.__main__ import main as serve_main

    monkeypatch.setenv("ACTIONPOSE_DB_URL", f"sqlite:///{tmp_path / 'typo.db'}")
    assert serve_main(["keys", "list"]) == 0
    err = capsys.readouterr().err
    assert "0 key(s) in sqlite:///" in err and "typo.db" in err
    assert serve_main(["keys", "add", "ward"]) == 0
    capsys.readouterr()
    assert serve_main(["keys", "list"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("ward\tactive") and "1 key(s)" in out.err


def test_keys_add_says_a_database_error_rather_than_already_exists(tmp_path, monkeypatch, capsys):
    """Any failure of `keys add` was reported as "key name ... already exists": a locked database (another
    process in a long write) sent an operator looking for a key that was never there (probe)."""
    from sqlalchemy.exc import OperationalError

    import serve.storage
    from serve.__main__ import main as serve_main

    monkeypatch.setenv("ACTIONPOSE_DB_URL", f"sqlite:///{tmp_path / 'k.db'}")
    assert serve_main(["keys", "add", "ward"]) == 0
    assert serve_main(["keys", "add", "ward"]) == 2
    assert "key name 'ward' already exists" in capsys.readouterr().err

    def locked(engine, name):  # noqa: ARG001
        raise OperationalError("INSERT INTO api_keys ...", {}, Exception("database is locked"))

    monkeypatch.setattr(serve.storage, "add_key", locked)
    assert serve_main(["keys", "add", "nurse"]) == 2
    err = capsys.readouterr().err
    assert "already exists" not in err and "database is locked" in err and "k.db" in err


def test_unreadable_json_on_the_stream_route_is_422_with_a_reason(svc):
    """JSON that json.loads cannot take (nesting too deep, a 5,000-digit number) got FastAPI's bare
    400 "There was an error parsing the body" on the stream route; predict already said why with 422."""
    client, keys, _ = svc
    h = {"X-API-Key": keys["a"], "content-type": "application/json"}
    deep = b"[" * 5000 + b"]" * 5000
    long_number = b'{"layout": "coco17", "frames": [{"timestamp": 1' + b"1" * 5000 + b', "persons": []}]}'
    for body in (deep, long_number):
        r = client.post("/v1/fall/stream/s-json", content=body, headers=h)
        assert r.status_code == 422 and "cannot be read" in r.json()["detail"], r.text
    r = client.post("/v1/fall/stream/s-json", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 401  # other HTTP errors keep their status (and headers)


def test_input_that_looks_wrong_is_answered_with_warnings(svc):
    """y pointing up and coordinates normalised to [0, 1] gave wrong answers without a word; predict (JSON,
    float32 body) and stream answers now carry the in-process detector's advice, in its words."""
    from actionpose.inference.fall_prep import NORMALISED_ADVICE, UPSIDE_DOWN_ADVICE

    client, keys, _ = svc
    h = {"X-API-Key": keys["a"]}
    upright = np.asarray(standing_window(64), np.float32)
    flipped = upright * [1, -1] + [0, 480]
    for n, (window, said) in enumerate(((upright, []), (flipped, [UPSIDE_DOWN_ADVICE]),
                                        (upright / [640, 480], [NORMALISED_ADVICE]))):
        j = client.post("/v1/fall/predict", json={"layout": "coco17", "keypoints": window.tolist()}, headers=h)
        b = binary(window.astype(np.float32).tolist())
        r = client.post("/v1/fall/predict", content=b["content"], headers={**h, **b["headers"]})
        assert j.status_code == r.status_code == 200 and j.json()["warnings"] == r.json()["warnings"] == said, j.text
        frames = [{"timestamp": 100 + i / 30, "persons": [{"track_id": 1, "keypoints": window[i].tolist()}]}
                  for i in range(20)]
        s = client.post(f"/v1/fall/stream/advice-{n}", json={"layout": "coco17", "frames": frames}, headers=h)
        assert s.status_code == 200 and s.json()["warnings"] == said, s.text


def test_a_stream_too_slow_or_stamped_in_bursts_is_answered_with_warnings(svc):
    """A stream at 2 fps was scored without a word and lost 14 of 62 real falls, while predict refuses such
    windows; frames stamped 1 ms apart in bursts hid a real fall (probe): both are said in the answer."""
    from actionpose.inference.fall_prep import timing_advice

    client, keys, _ = svc
    h = {"X-API-Key": keys["a"]}
    window = np.asarray(standing_window(64), np.float32)
    slow = [{"timestamp": 100 + i / 2, "persons": [{"track_id": 1, "keypoints": window[i].tolist()}]}
            for i in range(6)]
    burst = [{"timestamp": 100 + i // 15 + (i % 15) * 0.001, "persons": [{"track_id": 1, "keypoints": window[i].tolist()}]}
             for i in range(45)]
    steady = [{"timestamp": 100 + i / 15, "persons": [{"track_id": 1, "keypoints": window[i].tolist()}]}
              for i in range(45)]
    for name, frames, needle in (("slow", slow, "frames arrive at 2 fps"), ("burst", burst, "stamped under 2 ms apart"),
                                 ("steady", steady, None)):
        r = client.post(f"/v1/fall/stream/timing-{name}", json={"layout": "coco17", "frames": frames}, headers=h)
        said = r.json()["warnings"]
        assert r.status_code == 200 and (any(needle in w for w in said) if needle else said == []), (name, r.text)
    assert timing_advice(np.arange(60) / 15) == []


def test_stream_follow_ups_are_stored_and_listed_by_kind(tmp_path):
    """After the fixture fall the person lies still: with ACTIONPOSE_LONG_LIE_S=2 the stream answers a
    still_down event 2 s after the alert, stored with its kind, listed by ?kind=, and a re-sent request
    stores nothing twice."""
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    key = add_key(open_db(url), "k")
    frames = _fixture_fall_frames()
    last = frames[-1]
    t0 = last["timestamp"]
    held = [{**last, "timestamp": round(t0 + (i + 1) / 30, 4)} for i in range(150)]  # 5 s lying still
    app = create_app(Settings(db_url=url, model=MODEL, threads=1, long_lie_s=2.0))
    with TestClient(app, raise_server_exceptions=False) as client:
        h = {"X-API-Key": key}
        got = []
        for lo in range(0, len(frames + held), 40):
            r = client.post("/v1/fall/stream/ward-9", json={"layout": "coco13", "frames": (frames + held)[lo:lo + 40]},
                            headers=h)
            assert r.status_code == 200, r.text
            got += r.json()["events"]
        assert [e["kind"] for e in got] == ["fall", "still_down"], got
        fall, down = got
        assert down["start_time"] == fall["detected_time"] and down["detected_time"] - fall["detected_time"] == \
            pytest.approx(2.0, abs=0.05)
        listed = client.get("/v1/events", params={"session_id": "ward-9", "kind": "still_down"}, headers=h).json()
        assert [e["id"] for e in listed["events"]] == [down["id"]]
        assert client.get("/v1/events", params={"kind": "lying"}, headers=h).status_code == 422
        from serve.storage import store_events

        again = store_events(app.state.engine, "ward-9", [{k: v for k, v in e.items() if k not in ("id", "session_id")}
                                                        for e in got])
        assert [e["id"] for e in again] == [fall["id"], down["id"]]  # the same rows, not new ones
        schema = client.get("/openapi.json").json()["components"]["schemas"]["EventOut"]["properties"]["kind"]
        assert "still_down" in json.dumps(schema)


def test_a_database_from_before_event_kinds_gets_the_column(tmp_path):
    """Existing deployments keep their events: the kind column is added (old rows are falls), and a
    follow-up can never take a fall's unique key."""
    import sqlite3

    from serve.storage import query_events, store_events

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE fall_events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id VARCHAR(128) NOT NULL, "
                "track_id VARCHAR(64) NOT NULL, start_ms BIGINT NOT NULL, start_time FLOAT NOT NULL, detected_time "
                "FLOAT NOT NULL, confidence FLOAT NOT NULL, created_at FLOAT NOT NULL, CONSTRAINT uq_event UNIQUE "
                "(session_id, track_id, start_ms))")
    con.execute("INSERT INTO fall_events VALUES (1, 's', '1', 2000, 2.0, 3.0, 0.9, 1.0)")
    con.commit()
    con.close()
    engine = open_db(f"sqlite:///{db}")
    open_db(f"sqlite:///{db}")  # a second worker starting finds the column there
    assert [(r["id"], r["kind"]) for r in query_events(engine, "s", None, None, 10)] == [(1, "fall")]
    # a recovered event whose start equals the fall's start to the millisecond is its own row
    rows = store_events(engine, "s", [{"track_id": 1, "start_time": 2.0, "detected_time": 5.0, "confidence": 0.8,
                                       "kind": "recovered"},
                                      {"track_id": 1, "start_time": 3.0, "detected_time": 63.0, "confidence": 1.0,
                                       "kind": "still_down"}])
    assert [r["kind"] for r in rows] == ["recovered", "still_down"] and rows[0]["id"] != 1
    assert [r["kind"] for r in query_events(engine, "s", None, None, 10, kind="fall")] == ["fall"]


def test_a_refused_stream_frame_still_returns_the_events_of_the_frames_before_it(tmp_path):
    """Frames before a refused one are processed and their events stored: the 422 says them too (a
    still_down reached the database but not the client, whose re-send then got a 409; probe)."""
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    key = add_key(open_db(url), "k")
    frames = _fixture_fall_frames()
    t0 = frames[-1]["timestamp"]
    sparse = [{"timestamp": round(t0 + 2 * (i + 1), 4), "persons": []} for i in range(5)]  # 2 s apart: refused
    app = create_app(Settings(db_url=url, model=MODEL, threads=1))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/v1/fall/stream/gap", json={"layout": "coco13", "frames": frames + sparse},
                        headers={"X-API-Key": key})
        assert r.status_code == 422 and "frames in a row came more than 1 s apart" in r.json()["detail"]
        said = r.json()["events"]
        assert [e["kind"] for e in said] == ["fall"]
        stored = client.get("/v1/events", params={"session_id": "gap"}, headers={"X-API-Key": key}).json()["events"]
        assert [e["id"] for e in stored] == [said[0]["id"]]


def test_metrics_are_prometheus_text_from_the_database(svc):
    """An operator's scrape: stored events per kind (each kind listed, 0 when none), sessions with saved state
    and readiness, in the Prometheus text format, without a key (counts only, like /healthz)."""
    from prometheus_client.parser import text_string_to_metric_families

    client, keys, _ = svc
    h = {"X-API-Key": keys["a"]}
    frame = {"timestamp": 0.0, "persons": [{"track_id": 1, "keypoints": [[100 + j, 50 + 10 * j] for j in range(17)]}]}
    assert client.post("/v1/fall/stream/metrics-s", json={"layout": "coco17", "frames": [frame]}, headers=h).status_code == 200
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = {s.name + str(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(r.text)
           for s in f.samples}
    stored = client.get("/v1/events", params={"kind": "fall", "limit": 1000}, headers=h).json()["events"]
    assert got["actionpose_fall_events_total[('kind', 'fall')]"] == len(stored)
    assert "actionpose_fall_events_total[('kind', 'still_down')]" in got  # listed even at 0
    assert got["actionpose_stream_sessions[]"] >= 1 and got["actionpose_ready[]"] == 1
    assert client.delete("/v1/fall/stream/metrics-s", headers=h).status_code == 204
    after = {s.name: s.value for f in text_string_to_metric_families(client.get("/metrics").text) for s in f.samples}
    assert after["actionpose_stream_sessions"] == got["actionpose_stream_sessions[]"] - 1


def test_metrics_text_with_a_webhook_backlog():
    from prometheus_client.parser import text_string_to_metric_families

    from serve.metrics import prometheus_text

    text = prometheus_text({"events": {"fall": 3}, "sessions": 2,
                            "webhook": {"pending": 4, "delivered": 10, "attempts": 2,
                                                                 "parked_count": 1}}, ready=True)
    got = {s.name + "".join(s.labels.values()): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert got["actionpose_fall_events_totalfall"] == 3 and got["actionpose_fall_events_totalrecovered"] == 0
    assert got["actionpose_webhook_pending_events"] == 4 and got["actionpose_webhook_delivered_total"] == 10
    assert got["actionpose_webhook_failed_attempts"] == 2 and got["actionpose_webhook_configured"] == 1
    assert got["actionpose_webhook_parked_events"] == 1


def test_the_documented_client_says_the_servers_reason_for_a_refusal(svc, monkeypatch):
    """serve/client_example.py raised httpx's bare "Client error '422 Unprocessable Entity' for url ..." for a
    refused window or frame: the service's one-line reason (which field, what is wrong) never reached the app's
    log. Its errors now carry it (still an httpx.HTTPStatusError)."""
    import importlib
    import sys

    import httpx

    client, keys, _ = svc
    monkeypatch.setenv("ACTIONPOSE_KEY", keys["a"])
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "serve"))
    sys.modules.pop("client_example", None)
    ce = importlib.import_module("client_example")
    monkeypatch.setattr(ce, "client", client)
    monkeypatch.setitem(client.headers, "X-API-Key", keys["a"])
    window = standing_window(64)
    with pytest.raises(httpx.HTTPStatusError, match=r"422 .*keypoints\[0\]: 16 joints but layout coco17 has 17"):
        ce.fall_probability([f[:16] for f in window])
    frames = [{"timestamp": 50.0, "persons": [{"track_id": 1, "keypoints": window[0][:16]}]}]
    with pytest.raises(httpx.HTTPStatusError, match=r"422 .*persons\[0\]\.keypoints: need 17 joints"):
        ce.send_frames("client-reason", frames)
    assert ce.fall_probability(window)["is_fall"] is False  # accepted input is answered as before
    sys.modules.pop("client_example", None)


def test_workers_dying_on_start_stop_the_service_only_when_they_crowd_together():
    """The count of workers that died on start ran for the service's whole life: 7 unrelated crashes days apart
    (2 workers) stopped it (probe). Now only more than 3 x workers within CRASH_WINDOW_S does."""
    from serve.workers import CRASH_WINDOW_S, StartFailures

    apart = StartFailures(workers=2)
    assert not any(apart.add(day * 86400.0) for day in range(20))  # one a day, for 20 days
    crowded = StartFailures(workers=2)
    assert [crowded.add(t) for t in range(7)] == [False] * 6 + [True]  # the 7th within a few seconds
    assert not StartFailures(workers=2).add(0.0) and CRASH_WINDOW_S >= 60


def test_a_database_that_cannot_be_reached_is_503_with_retry_after(svc, monkeypatch):
    """A data endpoint whose database was down answered a plain-text 500 (probe, PostgreSQL stopped)."""
    from sqlalchemy.exc import OperationalError

    import serve.app as app_module

    def down(*_a, **_k):
        raise OperationalError("SELECT ...", {}, Exception("connection refused"))

    client, keys, _ = svc
    monkeypatch.setattr(app_module, "query_events", down)
    r = client.get("/v1/events", headers={"X-API-Key": keys["a"]})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.json() == {"detail": "database unavailable; retry shortly"}
