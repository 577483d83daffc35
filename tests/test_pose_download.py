"""Model download (local http.server on 127.0.0.1), hash verification, cache and offline paths."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile

import pytest

from actionpose.errors import ActionposeError
from actionpose.pose import zoo
from actionpose.pose.download import download
from actionpose.pose.zoo import ModelSpec, resolve


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("ACTIONPOSE_CACHE", str(d))
    monkeypatch.delenv("ACTIONPOSE_POSE_MODEL", raising=False)
    monkeypatch.delenv("ACTIONPOSE_DET_MODEL", raising=False)
    monkeypatch.delenv("ACTIONPOSE_MODEL_DIR", raising=False)
    monkeypatch.setattr(zoo, "SHARED_MODELS", tmp_path / "no-shared")
    return d


def test_download_verifies_hash_into_cache(server, cache):
    root, url = server
    data = b"onnx-bytes" * 1000
    (root / "m.onnx").write_bytes(data)
    spec = ModelSpec("tiny", "tiny.onnx", (1,), sha256=hashlib.sha256(data).hexdigest(), url=f"{url}/m.onnx")
    p = resolve(spec, progress=False)
    assert p == cache / "tiny.onnx" and p.read_bytes() == data
    (root / "m.onnx").unlink()  # second call: from the cache, no network
    assert resolve(spec, progress=False) == p


def test_wrong_hash_download_leaves_nothing(server, cache):
    root, url = server
    (root / "m.onnx").write_bytes(b"tampered")
    spec = ModelSpec("tiny", "tiny.onnx", (1,), sha256="0" * 64, url=f"{url}/m.onnx")
    with pytest.raises(ActionposeError, match="sha256 mismatch"):
        resolve(spec, progress=False)
    assert not (cache / "tiny.onnx").exists()
    assert not list(cache.glob("*")) or all(not f.name.startswith(".tiny") for f in cache.iterdir())


def test_wrong_hash_cached_file_is_refused(cache):
    cache.mkdir(parents=True)
    (cache / "tiny.onnx").write_bytes(b"corrupt")
    spec = ModelSpec("tiny", "tiny.onnx", (1,), sha256="1" * 64, url="http://127.0.0.1:9/never")
    with pytest.raises(ActionposeError, match="sha256 mismatch"):
        resolve(spec, progress=False)


def test_zip_member_extracted(server, cache):
    root, url = server
    with zipfile.ZipFile(root / "sdk.zip", "w") as z:
        z.writestr("rtmpose-x/end2end.onnx", b"model")
        z.writestr("rtmpose-x/pipeline.json", b"{}")
    spec = ModelSpec("zipped", "zipped.onnx", (1,), url=f"{url}/sdk.zip", archive_member="end2end.onnx")
    p = resolve(spec, progress=False)
    assert p.read_bytes() == b"model" and not (cache / "zipped.zip").exists()


def test_unreachable_url_names_the_offline_options(cache):
    with pytest.raises(ActionposeError, match="--pose-model"):
        download("http://127.0.0.1:9/none.onnx", cache / "x.onnx", None, progress=False, timeout=2)


def test_offline_paths(tmp_path, cache, monkeypatch):
    f = tmp_path / "mine.onnx"
    f.write_bytes(b"x")
    spec = zoo.get_model("rtmpose-m")
    assert resolve(spec, f) == f  # --pose-model FILE
    monkeypatch.setenv("ACTIONPOSE_POSE_MODEL", str(f))
    assert resolve(spec, role="pose") == f  # environment variable
    monkeypatch.delenv("ACTIONPOSE_POSE_MODEL")
    d = tmp_path / "models"
    d.mkdir()
    unpinned = zoo.get_model("rtmpose-l")  # no published hash: any file of its name is taken
    (d / unpinned.file).write_bytes(b"y")
    monkeypatch.setenv("ACTIONPOSE_MODEL_DIR", str(d))
    assert resolve(unpinned) == d / unpinned.file
    (d / spec.file).write_bytes(b"y")  # rtmpose-m has a published hash: a wrong file of its name is refused
    with pytest.raises(ActionposeError, match="sha256 mismatch"):
        resolve(spec)
    with pytest.raises(ActionposeError, match="model file not found"):
        resolve(spec, tmp_path / "missing.onnx")


def test_published_rtmpose_hashes_are_pinned():
    """t/s/m carry the sha256 other projects publish for exactly these OpenMMLab URLs (see zoo.py)."""
    for name in ("rtmpose-t", "rtmpose-s", "rtmpose-m"):
        spec = zoo.get_model(name)
        assert spec.sha256 and len(spec.sha256) == 64 and spec.url.endswith(".zip")
    assert zoo.get_model("rtmpose-s").archive_sha256 and zoo.get_model("rtmpose-t").archive_sha256
    assert zoo.get_model("rtmpose-l").sha256 is None  # nothing published from an identifiable source


def test_no_url_model_says_how_to_supply_it(cache):
    with pytest.raises(ActionposeError, match="no official download"):
        resolve(zoo.get_model("vitpose-b"))


def test_vendored_default_resolves_offline(cache):
    for name in ("rtmdet-nano-person", "movenet-lightning"):
        p = resolve(zoo.get_model(name), allow_download=False)
        assert p.parent == zoo.ASSETS


def test_the_frontend_listing_says_where_each_model_is(capsys, monkeypatch, tmp_path):
    """It said "needs file/download" for models sitting in ../shared/models and "downloaded on first use" for
    ViTPose, which has no official ONNX to download."""
    from actionpose.cli import main
    from actionpose.pose import zoo

    monkeypatch.setattr(zoo, "SHARED_MODELS", tmp_path)  # nothing beside the checkout
    monkeypatch.setenv("ACTIONPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ACTIONPOSE_MODEL_DIR", raising=False)
    assert main(["frontends"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "vendored" in rows["rtmdet-nano+movenet"] and "downloads on first use" in rows["rtmpose-m"]
    assert "needs a file (no official ONNX)" in rows["vitpose-s"] and "downloaded" not in rows["vitpose-s"]
    states = ("vendored", "found", "downloads on first use", "needs a file")
    starts = {next(line.index(st) for st in states if st in line) for line in rows.values()}
    assert len(starts) == 1, starts  # one column, also after the long mediapipe name (was shifted by 4)
