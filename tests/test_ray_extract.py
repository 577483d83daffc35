"""Ray extraction on a real local Ray cluster (2 CPUs): shards merged into one pickle, resume, failures.

The reference is the plain sequential ``extract()`` on the same videos with the same frontend: the
Ray run must give the same keypoints, only spread over workers.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray not installed (pip install 'actionpose[distributed]')")

from actionpose.cli import main  # noqa: E402
from actionpose.data.format import load_dataset  # noqa: E402
from actionpose.distributed import ExtractOptions, extract_ray, shard_dir_for, video_key  # noqa: E402
from actionpose.errors import ActionposeError  # noqa: E402

SKIER = Path(__file__).resolve().parent / "fixtures" / "pose" / "skier_8f.mp4"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def videos(tmp_path) -> Path:
    d = tmp_path / "videos"
    d.mkdir()
    shutil.copy(SKIER, d / "a.mp4")
    shutil.copy(SKIER, d / "b.mp4")
    (d / "broken.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return d


@pytest.mark.slow
def test_ray_extract_merge_resume_and_failures(local_ray, videos, tmp_path):
    from actionpose.pose import extract

    out = tmp_path / "out.pkl"
    opts = ExtractOptions(layout="body13")
    res = extract_ray(videos, out, workers=2, options=opts, threads=1)
    assert (res.workers, res.extracted, res.skipped, res.videos, res.frames) == (2, 2, 0, 2, 16)
    assert [Path(f["source"]).name for f in res.failures] == ["broken.mp4"]
    assert "cannot open video" in res.failures[0]["error"]

    ds = load_dataset(out)
    assert ds.layout == "body13" and [a["frame_dir"] for a in ds.annotations] == ["a", "b"]
    assert ds.meta["failures"] == res.failures and ds.meta["pose_layout"] == "coco17"
    ref = extract(SKIER, frontend="default", layout="body13", progress=False, threads=1).annotations[0]
    for a in ds.annotations:
        assert a["keypoint"].shape == ref["keypoint"].shape == (1, 8, 13, 2)
        np.testing.assert_allclose(a["keypoint"], ref["keypoint"], atol=1e-4)
        np.testing.assert_allclose(a["keypoint_score"], ref["keypoint_score"], atol=1e-4)

    # resume after an interruption: b's shard and the merged pickle are gone, a's shard is kept
    shards = shard_dir_for(out)
    a_shard = shards / f"{video_key(str(videos / 'a.mp4'))}.pkl"
    a_mtime = a_shard.stat().st_mtime_ns
    (shards / f"{video_key(str(videos / 'b.mp4'))}.pkl").unlink()
    out.unlink()
    res2 = extract_ray(videos, out, workers=2, options=opts, threads=1)
    assert (res2.extracted, res2.skipped, res2.videos, len(res2.failures)) == (1, 1, 2, 1)
    assert a_shard.stat().st_mtime_ns == a_mtime
    # the command line: the merged pickle is written, the broken video named, exit status 2 (as without --ray)
    assert main(["extract", str(videos), "-o", str(out), "--ray", "--workers", "2", "--threads", "1"]) == 2
    assert out.exists()
    assert [a["frame_dir"] for a in load_dataset(out).annotations] == ["a", "b"]

    # a fixed video is picked up by the next run; finished ones are not redone
    shutil.copy(SKIER, videos / "broken.mp4")
    res3 = extract_ray(videos, out, workers=2, options=opts, threads=1)
    assert (res3.extracted, res3.skipped, res3.videos, res3.failures) == (1, 2, 3, [])
    assert load_dataset(out).meta["failures"] == []

    # resuming with other options would mix incompatible shards: refused, naming the folder and option
    with pytest.raises(ActionposeError, match=r"out\.pkl\.shards.*max_frames"):
        extract_ray(videos, out, workers=2, options=ExtractOptions(layout="body13", max_frames=4))


def test_ray_extract_cli_errors(tmp_path, capsys, videos):
    assert main(["extract", str(videos), "-o", str(tmp_path / "o.pkl"), "--ray", "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert main(["extract", str(videos), "-o", str(tmp_path / "o.pkl"), "--ray", "--render", "x.mp4"]) == 2
    assert "--render is not supported with --ray" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "missing"), "-o", str(tmp_path / "o.pkl"), "--ray"]) == 2
    assert not (tmp_path / "o.pkl").exists()
