"""Request/response models. Limits are enforced here and in :func:`check_window` so bad client input
is a 422 naming the field, never a 500."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from actionpose.inference.fall import SCORE_MAX

Finite = Annotated[float, Field(allow_inf_nan=False)]
Layout = Literal["coco17", "body13", "coco13", "blazepose33"]
TrackId = Union[Annotated[int, Field(ge=0, le=2**31)], Annotated[str, Field(min_length=1, max_length=64)]]


class PredictRequest(BaseModel):
    """One person's keypoint window (pixels or any isotropic units), oldest frame first."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "5" and true are not numbers
    layout: Layout = Field(description="joint layout of `keypoints`")
    fps: Finite = Field(30.0, gt=0, le=240, description="frame rate of the window")
    # plain floats here (fast); finiteness and shape are checked on the numpy array in the handler
    keypoints: list[list[list[float]]] = Field(description="[T][V][2 or 3]: x, y (and score) per joint")
    scores: Optional[list[list[Annotated[float, Field(ge=0, le=SCORE_MAX, allow_inf_nan=False)]]]] = Field(
        None, description="[T][V] per-joint confidence (alternative to a third channel)")


WARNINGS_DOC = ("what looks wrong with the keypoints (coordinates normalised to [0, 1]; a body upside down, i.e. y "
                "pointing up): such input is scored, but its answers are not to be trusted")


class PredictResponse(BaseModel):
    prob: float
    is_fall: bool
    threshold: float
    frames: int = Field(description="frames received")
    windows: int = Field(1, description="2.13-s windows scored: 1 for a window up to 2.13 s; a longer one is read "
                                        "whole, every 2.13-s window in it ending every 1/15 s (as a stream would be)")
    peak_time: Optional[float] = Field(None, description="split windows: seconds from the first frame to the end of "
                                                         "the highest-scoring 2.13-s window (prob is its probability; "
                                                         "is_fall needs 2 windows in a row at the threshold, as in "
                                                         "streams)")
    fall_start: Optional[float] = Field(None, description="a fall: where it began, seconds from the first frame "
                                                          "(the hip drop, as stream events date it)")
    warnings: list[str] = Field(default_factory=list, description=WARNINGS_DOC)


class StreamPerson(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "5" and true are not numbers
    track_id: TrackId = 0
    keypoints: list[list[float]] = Field(description="[V][2 or 3]")
    scores: Optional[list[Annotated[float, Field(ge=0, le=SCORE_MAX, allow_inf_nan=False)]]] = None


class StreamFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "5" and true are not numbers
    timestamp: Finite = Field(ge=0, le=1e10, description="seconds; increasing within a session")
    persons: list[StreamPerson] = Field(default_factory=list)


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "5" and true are not numbers
    layout: Layout
    frames: list[StreamFrame] = Field(min_length=1)


EventKind = Literal["fall", "still_down", "recovered"]
EVENT_KIND_DOC = ("fall: a fall (start_time where it began, detected_time the alert, confidence its probability); "
                  "still_down: the person was not seen up again long_lie_s (the service's ACTIONPOSE_LONG_LIE_S, "
                  "default 60 s) after the fall's alert (start_time the fall's alert, confidence the share of the "
                  "frames judged since that looked down; 0: not seen down, or not seen; also raised on the server's clock "
                  "when the camera went silent, ACTIONPOSE_SILENT_GRACE_S after it fell due); recovered: the person was "
                  "seen up again (start_time the first frame up, detected_time when confirmed)")


class EventOut(BaseModel):
    id: int
    session_id: str
    track_id: str
    kind: EventKind = Field("fall", description=EVENT_KIND_DOC)
    start_time: float = Field(description="stream time (s) where the fall (still_down: its alert; recovered: the "
                                          "recovery) began")
    detected_time: float = Field(description="stream time (s) the event was raised")
    confidence: float
    created_at: float = Field(description="server UNIX time the event was stored")


class ParkedEventOut(BaseModel):
    id: int = Field(description="the event's id (as in GET /v1/events)")
    attempts: int = Field(description="failed sends of this event")
    last_error: Optional[str] = None
    next_attempt_at: float = Field(description="UNIX time of its next try")


class WebhookOut(BaseModel):
    enabled: bool = Field(description="ACTIONPOSE_WEBHOOK_URL is set")
    url: Optional[str] = Field(None, description="the webhook's scheme, host and port (its path may be a secret)")
    last_delivered_id: Optional[int] = Field(None, description="every event up to this id was delivered (2xx)")
    pending: Optional[int] = Field(None, description="stored events not yet delivered")
    delivered: Optional[int] = None
    failed_attempts: Optional[int] = Field(None, description="failed tries in a row of the oldest undelivered "
                                           "event while the receiver fails everything (0: none failing)")
    last_error: Optional[str] = Field(None, description="why the last try failed")
    next_attempt_at: Optional[float] = Field(None, description="UNIX time of the next try after a failure")
    parked_count: Optional[int] = Field(
        None, description="events the receiver kept failing while it took later ones: retried on their own schedule "
                          "(never dropped) so they do not hold back later alerts")
    parked: list[ParkedEventOut] = Field(default_factory=list, description="the oldest 10 parked events")
    delivery_worker: Optional[str] = Field(None, description="the delivering sender holding the lease (a random id)")
    lease_until: Optional[float] = Field(
        None, description="UNIX time the lease runs to; a worker killed without a graceful stop keeps it until then, "
                          "and pending events wait for it (up to 15 s after a kill -9 and restart)")


class StreamResponse(BaseModel):
    session_id: str
    frames: int
    events: list[EventOut]
    last_timestamp: Optional[float] = Field(None, description="the session's newest processed frame time (s)")
    warnings: list[str] = Field(default_factory=list, description=WARNINGS_DOC + "; judged on this request's frames")


class SessionOut(BaseModel):
    session_id: str
    last_timestamp: Optional[float] = Field(description="newest processed frame time (s): send only newer frames")
    persons: int = Field(description="persons with recent history (seen within the last window)")
    updated_at: float = Field(description="server UNIX time of the last stream request")


class EventsResponse(BaseModel):
    events: list[EventOut]


class ErrorOut(BaseModel):
    """Every refusal (401, 408, 409, 413, 422, 503): one line naming the field or header and the reason;
    a 422 from request validation also lists the individual errors."""

    detail: str
    errors: Optional[list[dict]] = None
    events: Optional[list[EventOut]] = Field(None, description="stream 422 naming a frame: the events raised by the "
                                                              "frames before it, which were processed and stored")


ERROR_RESPONSES = {code: {"model": ErrorOut, "description": what} for code, what in {
    401: "missing, wrong or revoked API key",
    408: "the request body did not arrive in time",
    413: "request body over the limit",
    422: "invalid input (names the field and the reason)",
}.items()}
STREAM_RESPONSES = {**ERROR_RESPONSES,
                    409: {"model": ErrorOut, "description": "frames not after the session's last processed frame "
                                                            "(a re-sent request; its events are in GET /v1/events)"},
                    503: {"model": ErrorOut, "description": "the session was being saved by other requests: retry "
                                                            "after Retry-After seconds"}}
SESSION_RESPONSES = {**ERROR_RESPONSES, 404: {"model": ErrorOut, "description": "no saved state for this session"}}
