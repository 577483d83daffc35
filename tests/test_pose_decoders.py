"""SimCC and heatmap decoders, through the real pose-model classes, on tiny ONNX models built here.

Each tiny model ignores its image and returns constant outputs with one known peak per joint, so
the expected image coordinates follow from the crop geometry alone.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from actionpose.errors import ActionposeError
from actionpose.pose.decoders import flip_heatmaps, heatmap_decode, simcc_decode
from actionpose.pose.estimators import HeatmapPose, SimCCPose
from actionpose.pose.geometry import box_to_center_scale
from actionpose.pose.zoo import get_model


def const_model(path, outputs: dict[str, np.ndarray], in_shape=("N", 3, 256, 192)):
    """ONNX graph: input [N,3,256,192] -> each output = constant tiled over the batch."""
    nodes, inits, outs = [], [], []
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))
    # batch-sized ones: ReduceMean over C,H,W keeps [N,1,1,1]; * 0 + 1
    nodes.append(helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=1))
    inits.append(numpy_helper.from_array(np.zeros((), np.float32), "zero"))
    inits.append(numpy_helper.from_array(np.ones((), np.float32), "one"))
    nodes.append(helper.make_node("Mul", ["m", "zero"], ["m0"]))
    nodes.append(helper.make_node("Add", ["m0", "one"], ["ones4"]))
    for name, arr in outputs.items():
        arr = arr.astype(np.float32)
        inits.append(numpy_helper.from_array(arr, f"{name}_c"))
        shape = [-1] + [1] * (arr.ndim - 1)
        inits.append(numpy_helper.from_array(np.array(shape, np.int64), f"{name}_s"))
        nodes.append(helper.make_node("Reshape", ["ones4", f"{name}_s"], [f"{name}_o"]))
        nodes.append(helper.make_node("Mul", [f"{name}_o", f"{name}_c"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "tiny", [inp], outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_simcc_decode_argmax_and_score():
    sx = np.zeros((1, 2, 384), np.float32)
    sy = np.zeros((1, 2, 512), np.float32)
    sx[0, 0, 100], sy[0, 0, 300] = 0.9, 0.7
    sx[0, 1, 7], sy[0, 1, 9] = 0.5, 0.8
    locs, scores = simcc_decode(sx, sy, 2.0)
    np.testing.assert_allclose(locs[0], [[50, 150], [3.5, 4.5]])
    np.testing.assert_allclose(scores[0], [0.7, 0.5])  # the smaller of the two maxima, as mmpose
    sx[0, 1] = 0
    sy[0, 1] = 0
    locs, scores = simcc_decode(sx, sy, 2.0)
    assert (locs[0, 1] == -1).all() and scores[0, 1] == 0


def test_heatmap_decode_subpixel_refinement():
    hm = np.zeros((1, 1, 64, 48), np.float32)
    hm[0, 0, 20, 10] = 1.0
    hm[0, 0, 20, 11] = 0.5  # right neighbour higher -> +0.25 in x
    hm[0, 0, 19, 10] = 0.3  # upper neighbour higher -> -0.25 in y
    locs, scores = heatmap_decode(hm, (192, 256))
    np.testing.assert_allclose(locs[0, 0], [(10 + 0.25) * 4, (20 - 0.25) * 4])
    assert scores[0, 0] == pytest.approx(1.0)
    locs, _ = heatmap_decode(hm, None, refine=False)
    np.testing.assert_allclose(locs[0, 0], [10, 20])


def _expected_image_xy(box, crop_xy, input_size=(192, 256)):
    c, s = box_to_center_scale(np.asarray(box, np.float32), input_size[0] / input_size[1], 1.25)
    return (np.asarray(crop_xy) - np.array(input_size) / 2) * s / np.array(input_size) + c


def test_rtmpose_simcc_model_end_to_end(tmp_path):
    k = 17
    sx = np.zeros((k, 384), np.float32)
    sy = np.zeros((k, 512), np.float32)
    cx = np.arange(k) * 20 + 10  # bins; crop px = bin / 2
    cy = np.arange(k) * 28 + 15
    sx[np.arange(k), cx] = 0.9
    sy[np.arange(k), cy] = 0.8
    path = const_model(tmp_path / "rtm.onnx", {"simcc_x": sx[None], "simcc_y": sy[None]})
    pose = SimCCPose(get_model("rtmpose-t"), path, threads=1)
    assert pose.batched  # dynamic batch: both boxes in one call
    img = np.zeros((480, 640, 3), np.uint8)
    boxes = np.array([[100, 50, 200, 350], [300, 100, 500, 300]], np.float32)
    kps, scores = pose(img, boxes)
    assert kps.shape == (2, 17, 2) and scores.shape == (2, 17)
    crop_xy = np.stack([cx / 2.0, cy / 2.0], 1)
    for i, b in enumerate(boxes):
        np.testing.assert_allclose(kps[i], _expected_image_xy(b, crop_xy), atol=1e-3)
    np.testing.assert_allclose(scores, 0.8)


def test_vitpose_heatmap_model_end_to_end_with_flip(tmp_path):
    k = 17
    hm = np.zeros((k, 64, 48), np.float32)
    xs, ys = np.arange(k) * 2 + 5, np.arange(k) * 3 + 4
    hm[np.arange(k), ys, xs] = 1.0
    path = const_model(tmp_path / "vit.onnx", {"heatmaps": hm[None]})
    pose = HeatmapPose(get_model("vitpose-b"), path, threads=1)
    img = np.zeros((300, 300, 3), np.uint8)
    box = np.array([[40, 20, 160, 280]], np.float32)
    kps, scores = pose(img, box)
    crop_xy = np.stack([xs * 4.0, ys * 4.0], 1)  # heatmap px -> 192x256 input px, no neighbours -> no shift
    np.testing.assert_allclose(kps[0], _expected_image_xy(box[0], crop_xy), atol=1e-3)
    # flip test with a constant model: the flipped pass puts each joint's partner peak at the mirrored x,
    # so the average holds two separate half-height peaks per joint
    flip = HeatmapPose(get_model("vitpose-b"), path, threads=1, flip_test=True)
    kps_f, scores_f = flip(img, box)
    np.testing.assert_allclose(scores_f, 0.5)


def test_flip_heatmaps_swaps_left_right_and_mirrors():
    from actionpose.skeleton import get_layout

    fi = np.asarray(get_layout("coco17").flip_index)
    hm = np.zeros((1, 17, 4, 6), np.float32)
    hm[0, 1, 2, 0] = 1.0  # left_eye at x=0 in the flipped image
    out = flip_heatmaps(hm, fi)
    assert out[0, 2, 2, 5] == 1.0  # -> right_eye at the mirrored x
    assert out.sum() == 1.0


def test_model_input_shape_mismatch_is_refused(tmp_path):
    path = const_model(tmp_path / "bad.onnx", {"simcc_x": np.zeros((1, 17, 384)), "simcc_y": np.zeros((1, 17, 512))},
                       in_shape=("N", 3, 128, 96))
    with pytest.raises(ActionposeError, match="input shape .* does not match"):
        SimCCPose(get_model("rtmpose-t"), path, threads=1)


def test_corrupt_model_file_is_one_line_error(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"not an onnx file at all")
    with pytest.raises(ActionposeError, match="cannot load"):
        SimCCPose(get_model("rtmpose-t"), bad, threads=1)
