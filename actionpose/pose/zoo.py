"""The model zoo: every ONNX file a frontend can use, where it comes from and how to check it.

A model is found, in order: an explicit path (``--pose-model``/``--det-model``), the environment
(``ACTIONPOSE_POSE_MODEL``/``ACTIONPOSE_DET_MODEL``; ``ACTIONPOSE_MODEL_DIR`` holding files by
name), the files vendored in ``actionpose/assets/pose`` (the embedded default needs no network),
the download cache, and finally a download from the official URL, verified by sha256.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from actionpose.errors import ActionposeError
from actionpose.pose.download import cache_dir, download, extract_member, sha256_file

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "pose"
SHARED_MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
_OMM = "https://download.openmmlab.com/mmpose/v1/projects"


@dataclass(frozen=True)
class ModelSpec:
    """One ONNX model: its file, its provenance and the input shape the pre-processing assumes.

    ``input_shape`` uses None for dynamic axes; a file whose static dims disagree is refused up
    front (a wrong file would otherwise give garbage keypoints, not an error).
    ``sha256`` is the hash of ``file``; ``archive_sha256`` of the downloaded zip when known.
    """

    name: str
    file: str
    input_shape: tuple[int | None, ...]
    sha256: str | None = None
    url: str | None = None
    archive_member: str | None = None  # the ONNX inside a zip at ``url``
    archive_sha256: str | None = None
    license: str = ""
    source: str = ""
    vendored: bool = False
    extra: dict = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ActionposeError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


register_model(ModelSpec(
    "rtmdet-nano-person", "rtmdet_nano_person.onnx", (1, 3, None, None),
    sha256="b8585adb6d1352796f6e86337e09c3459b830645a7e7192d9381670bea2facbd",
    license="Apache-2.0", vendored=True,
    source="HW140701/RTMPose-Deploy@174a7dd5 Windows/OnnxRumtime-CPU/resource/model/rtmpose-cpu/rtmpose-ort/"
           "rtmdet-nano/end2end.onnx (OpenMMLab rtmdet_nano person weights, mmdeploy export)"))
register_model(ModelSpec(
    "movenet-lightning", "movenet_singlepose_lightning.onnx", (1, 192, 192, 3),
    sha256="1a50b4072c3e9e1d03358ec82908bf1a7f0350e8d155a3fe3341e63e5275f17f",
    license="Apache-2.0", vendored=True,
    source="Google MoveNet SinglePose Lightning v4 int8 TFLite (Kazuhito00/MoveNet-Python-Example@515743a1), "
           "tf2onnx 1.17.0 opset 17"))
register_model(ModelSpec(
    "yolox-nano", "yolox_nano.onnx", (1, 3, 416, 416),
    sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14", license="Apache-2.0",
    source="Kazuhito00/Detection-PoseEstimation-Pipeline@7121ff80 Detector/yolox/model/yolox_nano_416x416.onnx"))
register_model(ModelSpec(
    "blazepose-landmark-full", "blazepose_landmark_full.onnx", (1, 256, 256, 3),
    sha256="219f5986286643677d7446e2827e0c2365b5faaa8a5b21531729d4dadcc1ca87", license="Apache-2.0",
    source="mediapipe==0.10.14 wheel pose_landmark_full.tflite, tf2onnx 1.17.0 opset 17"))
register_model(ModelSpec(
    "blazepose-detector", "blazepose_detector.onnx", (1, 224, 224, 3),
    sha256="bc013d7aa5d810a970c0dbbad5ee1141eb0d8bb8f3fdef7ea103a95162b3fcce", license="Apache-2.0",
    source="mediapipe==0.10.14 wheel pose_detection.tflite (sparse weights densified), tf2onnx 1.17.0 opset 17"))

# Official OpenMMLab ONNX SDK zips (mmdeploy exports). The 8-hex tag in each name is the prefix of
# the *checkpoint's* sha256, not of the zip. No hash could be taken here (no internet); the values below
# are the ones other projects publish for exactly these URLs (the ONNX is the zip's
# ``20230831/rtmpose_onnx/<name>/end2end.onnx``; rtmlib caches the same bytes as ``<name>.onnx``):
#   t: ONNX a6c2f6a3... (13,350,364 B) and zip 937003a7... (12,547,710 B); s: ONNX 9aeb635b... (21,890,172 B)
#      and zip 7673922e... (20,496,303 B) -- milindkoul-git/vantage@088fa736 src/vantage/perception/catalog.py;
#      the s ONNX hash is also pinned by several other rtmlib users found in the code corpus.
#   m: ONNX 5c0a4bf6... (54,330,655 B) -- adilharis2001/PongLens worker/README.md ("Expected SHA-256" of the
#      end2end.onnx from this zip) and other rtmlib users (same value); no zip hash published.
#   l: no hash found for the 256x192 zip from an identifiable source: unpinned.
# Unpinned entries print the hash they got on first download; ACTIONPOSE_SHA256_<NAME> pins one.
_RTMPOSE_HASHES = {  # size: (checkpoint tag, ONNX sha256, zip sha256)
    "t": ("026a1439", "a6c2f6a3896a4d51131d14d7a80a3d08b50f559af5a58a45d5b098aef510a70f",
          "937003a70832d9cc34ea16927f504792f3133e92dda1b9c626236bbbe9e805cb"),
    "s": ("acd4a1ef", "9aeb635b83f86aea45cf45d85798f7eba1a162de8e0d721c44e54fe5eebaf47d",
          "7673922e531014906ca4f0f239b7e233b740146a10b632deaa2a28d45470d802"),
    "m": ("e48f03d0", "5c0a4bf67953e6d2ac43ce15e77dc9d5d354ae18430a47d2c5963a7bc5683e3c", None),
    "l": ("4dba18fc", None, None),
}
for size, (tag, onnx_sha, zip_sha) in _RTMPOSE_HASHES.items():
    register_model(ModelSpec(
        f"rtmpose-{size}", f"rtmpose-{size}_body7_256x192.onnx", (None, 3, 256, 192), sha256=onnx_sha,
        url=f"{_OMM}/rtmposev1/onnx_sdk/rtmpose-{size}_simcc-body7_pt-body7_420e-256x192-{tag}_20230504.zip",
        archive_member="end2end.onnx", archive_sha256=zip_sha, license="Apache-2.0",
        source=f"OpenMMLab RTMPose-{size} body7 (mmpose projects/rtmpose)", extra={"layout": "coco17"}))
register_model(ModelSpec(
    "rtmpose-m-wholebody", "rtmpose-m_ucoco_256x192.onnx", (None, 3, 256, 192),
    url=f"{_OMM}/rtmposev1/onnx_sdk/rtmpose-m_simcc-ucoco_dw-ucoco_270e-256x192-c8b76419_20230728.zip",
    archive_member="end2end.onnx", license="Apache-2.0",
    source="OpenMMLab RTMPose-m COCO-WholeBody (ucoco); its first 17 of 133 points are COCO-17 and are kept", extra={"layout": "coco17", "keep_joints": 17}))
register_model(ModelSpec(
    "rtmw-x-wholebody", "rtmw-dw-x-l_cocktail14_256x192.onnx", (None, 3, 256, 192),
    url="https://download.openmmlab.com/mmpose/v1/projects/rtmw/onnx_sdk/rtmw-dw-x-l_simcc-cocktail14_270e-256x192_20231122.zip",
    archive_member="end2end.onnx", license="Apache-2.0", source="OpenMMLab RTMW-x COCO-WholeBody",
    extra={"layout": "coco17", "keep_joints": 17}))
# ViTPose has no official ONNX release: export it yourself (mmpose tools/deployment) and pass the file.
for size in ("s", "b"):
    register_model(ModelSpec(
        f"vitpose-{size}", f"vitpose-{size}_coco_256x192.onnx", (None, 3, 256, 192), license="Apache-2.0",
        source=f"ViTPose-{size.upper()} COCO 256x192 (mmpose checkpoint, exported by the user: no official ONNX)",
        extra={"layout": "coco17"}))

ENV_OVERRIDE = {"det": "ACTIONPOSE_DET_MODEL", "pose": "ACTIONPOSE_POSE_MODEL"}


def availability(spec: ModelSpec, role: str | None = None) -> str:
    """Where :func:`resolve` would find ``spec`` now, in words, without hashing or downloading: for the
    frontend listing (it said "needs file/download" for models sitting in ../shared/models)."""
    if spec.vendored:
        return "vendored"
    if role and os.environ.get(ENV_OVERRIDE[role]):
        return "given (env)"
    if any(c.is_file() for c in _local_candidates(spec)):
        return "found"
    return "downloads on first use" if spec.url else "needs a file (no official ONNX)"


def _local_candidates(spec: ModelSpec) -> list[Path]:
    """The places :func:`resolve` looks for ``spec``'s file, in its order (the cache last)."""
    candidates = []
    if os.environ.get("ACTIONPOSE_MODEL_DIR"):
        candidates.append(Path(os.environ["ACTIONPOSE_MODEL_DIR"]) / spec.file)
    if spec.vendored:
        candidates.append(ASSETS / spec.file)
    candidates.append(SHARED_MODELS / spec.file)  # a checkout beside ../shared (dev/CI); optional
    candidates.append(cache_dir() / spec.file)
    return candidates


def resolve(spec: ModelSpec, path: str | Path | None = None, role: str | None = None,
            allow_download: bool = True, progress: bool = True) -> Path:
    """Find (or fetch) the ONNX file for ``spec``; see the module docstring for the order."""
    if path is None and role and os.environ.get(ENV_OVERRIDE[role]):
        path = os.environ[ENV_OVERRIDE[role]]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ActionposeError(f"{p}: model file not found")
        return p  # an explicit file is the user's choice: hash checked only if it is the registry's own file name
    candidates = _local_candidates(spec)
    cached = candidates[-1]
    want = os.environ.get(f"ACTIONPOSE_SHA256_{spec.name.upper().replace('-', '_')}") or spec.sha256
    for c in candidates:
        if c.is_file():
            if want and sha256_file(c) != want:
                raise ActionposeError(f"{c}: sha256 mismatch for model {spec.name} (expected {want[:12]}..., "
                                      f"got {sha256_file(c)[:12]}...); delete the file or pass the right one")
            return c
    if not spec.url:
        raise ActionposeError(f"model {spec.name}: no file found and no official download; pass it with "
                              f"ACTIONPOSE_POSE_MODEL/ACTIONPOSE_DET_MODEL=FILE.onnx (extract also takes --pose-model/"
                              f"--det-model) or put {spec.file} in $ACTIONPOSE_MODEL_DIR")
    if not allow_download:
        raise ActionposeError(f"model {spec.name}: not in the cache ({cached}) and downloads are off")
    if spec.archive_member:
        archive = cached.with_suffix(".zip")
        if not archive.is_file():
            download(spec.url, archive, spec.archive_sha256, progress=progress)
        extract_member(archive, spec.archive_member, cached)
        archive.unlink()
    else:
        download(spec.url, cached, want, progress=progress)
    got = sha256_file(cached)
    if want and got != want:
        cached.unlink()
        raise ActionposeError(f"{spec.url}: sha256 mismatch for {spec.name} (expected {want[:12]}..., got {got[:12]}...)")
    if not want:
        print(f"note: {spec.name} downloaded without a pinned hash; sha256 {got}")
    return cached
