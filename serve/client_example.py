"""Minimal client for the fall service (copy into your app). Needs only ``httpx``.

    ACTIONPOSE_KEY=ap_... python serve/client_example.py
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from collections import defaultdict

import httpx

BASE = os.environ.get("ACTIONPOSE_URL", "http://127.0.0.1:8000")
KEY = os.environ.get("ACTIONPOSE_KEY")
if not KEY:
    raise SystemExit("set ACTIONPOSE_KEY to an API key (python -m serve keys add NAME prints one)")
client = httpx.Client(base_url=BASE, headers={"X-API-Key": KEY}, timeout=10)
RESEND_WINDOW_S = 60.0  # a 409 for frames older than this behind the session is a clock jump, not a re-send
_session_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)  # one request per session at a time
_acked: dict[str, float] = {}  # session -> newest frame time the server has answered this client for


def _raise_for_status(r: httpx.Response) -> None:
    """``raise_for_status`` with the server's one-line reason in the message: every refusal says what is wrong
    (``keypoints[3]: 16 joints but layout coco17 has 17``), and httpx's own error carried only "422 Unprocessable
    Entity" and a link, so an app's log never said which field to fix."""
    try:
        r.raise_for_status()
    except httpx.HTTPStatusError as e:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = None
        if not detail:
            raise
        raise httpx.HTTPStatusError(f"{r.status_code} from {r.request.method} {r.request.url.path}: {detail}",
                                    request=e.request, response=e.response) from None


def fall_probability(window: list[list[list[float]]], layout: str = "coco17", fps: float = 30.0) -> dict:
    """One person's keypoint window [T][V][2 or 3] (pixels; optional score) -> {prob, is_fall, threshold, frames,
    windows, peak_time, warnings}. A window longer than 2.13 s is read whole (``windows`` 2.13-s windows;
    ``peak_time``: where the highest ends, seconds from the first frame); ``warnings`` lists what looks wrong with
    the keypoints (y pointing up, normalised coordinates)."""
    r = client.post("/v1/fall/predict", json={"layout": layout, "fps": fps, "keypoints": window})
    _raise_for_status(r)
    return r.json()


def fall_probability_fast(window, layout: str = "coco17", fps: float = 30.0) -> dict:
    """The same answer from a numpy array [T, V, 2 or 3], sent as raw float32 (about half the bytes of JSON
    and no text parsing on the server: more requests/s, see docs/fall.md). Needs numpy."""
    import numpy as np

    arr = np.ascontiguousarray(window, dtype="<f4")
    r = client.post("/v1/fall/predict", content=arr.tobytes(), headers={
        "Content-Type": "application/octet-stream", "X-Layout": layout, "X-Fps": str(fps),
        "X-Shape": ",".join(map(str, arr.shape))})
    _raise_for_status(r)
    return r.json()


class StreamRefused(RuntimeError):
    """A frame of the request was refused (422); ``events`` are those of the frames before it, stored."""

    def __init__(self, detail: str, events: list[dict]):
        super().__init__(detail)
        self.events = events


def send_frames(session_id: str, frames: list[dict], layout: str = "coco17") -> list[dict]:
    """Append frames ``{"timestamp": s, "persons": [{"track_id": 1, "keypoints": [[x, y], ...]}]}`` to a
    camera's session; returns the fall events found (each already stored on the server).

    Safe to call again with the same frames after a timeout or a server restart: the session's state is
    kept on the server, which refuses frames it has already processed (409). Then only the newer frames
    are sent, and the events of the processed ones are fetched from the event log.

    Send one camera's requests one after another (await each reply): frames must arrive in time order,
    so of two requests of one session in flight at once the later-stamped one may be answered first and
    the other refused as already processed. Calls for one session from several threads wait for each
    other here; a call whose frames are all older than frames already answered raises instead of being
    taken for a re-send (their fall would be lost without a word)."""
    with _session_locks[session_id]:
        events = _send_frames(session_id, frames, layout)
        if frames:
            _acked[session_id] = max(_acked.get(session_id, float("-inf")), frames[-1]["timestamp"])
        return events


def _send_frames(session_id: str, frames: list[dict], layout: str) -> list[dict]:
    r = client.post(f"/v1/fall/stream/{session_id}", json={"layout": layout, "frames": frames})
    if r.status_code == 409:
        last = client.get(f"/v1/fall/stream/{session_id}").json()["last_timestamp"]
        if last - frames[-1]["timestamp"] > RESEND_WINDOW_S:
            # not a re-send of recent frames: the camera's clock went back (NTP, reboot). Taking this for
            # "already sent" would drop every frame, silently, until the clock caught up.
            raise RuntimeError(f"session {session_id}: frames end {last - frames[-1]['timestamp']:.0f} s before the "
                               f"session's last processed frame ({last}); the camera clock went back? "
                               "start a new session_id for this camera")
        if frames[-1]["timestamp"] < _acked.get(session_id, float("-inf")):  # overtaken, never processed
            raise RuntimeError(f"session {session_id}: these frames ({frames[0]['timestamp']}-{frames[-1]['timestamp']}) "
                               f"are older than frames already answered ({_acked[session_id]}); send a session's "
                               "frames in time order, one request at a time - the server cannot process them now")
        newer = [f for f in frames if f["timestamp"] > last]
        seen = [e for e in session_events(session_id) if frames[0]["timestamp"] <= e["detected_time"] <= last]
        return seen + (_send_frames(session_id, newer, layout) if newer else [])
    if r.status_code == 503:  # another request of this session was being saved: try once more
        time.sleep(float(r.headers.get("Retry-After", "1")))
        r = client.post(f"/v1/fall/stream/{session_id}", json={"layout": layout, "frames": frames})
    if r.status_code == 422 and r.json().get("events"):
        # a frame was refused, but the frames before it were processed: their events (a fall, a still_down)
        # are stored, and must not be lost with the error
        raise StreamRefused(r.json()["detail"], r.json()["events"])
    _raise_for_status(r)
    for said in r.json().get("warnings", []):  # the keypoints look wrong (y up? normalised?): answers not to trust
        warnings.warn(f"fall service, session {session_id}: {said}", stacklevel=3)
    return r.json()["events"]


def session_events(session_id: str) -> list[dict]:
    """Every stored event of a session, oldest first (the log is paged, 1000 at a time)."""
    events: list[dict] = []
    while True:
        params = {"session_id": session_id, "limit": 1000, **({"after_id": events[-1]["id"]} if events else {})}
        r = client.get("/v1/events", params=params)
        _raise_for_status(r)
        page = r.json()["events"]
        events += page
        if len(page) < 1000:
            return events


if __name__ == "__main__":
    standing = [[[320.0 + j, 100.0 + 22 * j] for j in range(17)] for _ in range(64)]
    print(fall_probability(standing))
    print(fall_probability_fast(standing))
    frames = [{"timestamp": time.time() + i / 30, "persons": [{"track_id": 1, "keypoints": standing[0]}]}
              for i in range(60)]
    print("events:", send_frames("camera-1", frames))
    print("re-sent:", send_frames("camera-1", frames))  # already processed: 409 handled, nothing twice
    print(client.get("/v1/events", params={"session_id": "camera-1"}).json())
