import numpy as np
import pytest
import torch

from actionpose.errors import ActionposeError
from actionpose.skeleton import Layout, can_map, get_layout, joint_map, list_layouts, map_keypoints, register_layout

BODY_LAYOUTS = ["body13", "penn13", "coco17", "coco13", "ntu25", "kinect20", "kinect20_utd", "blazepose33"]


def test_required_layouts_are_registered():
    assert set(BODY_LAYOUTS + ["hand21", "mediapipe11"]) <= set(list_layouts())
    assert get_layout("coco17").num_joints == 17
    assert get_layout("ntu25").num_joints == 25
    assert get_layout("kinect20").num_joints == get_layout("kinect20_utd").num_joints == 20
    assert get_layout("blazepose33").num_joints == 33
    assert get_layout("hand21").num_joints == 21
    assert get_layout("penn13").num_joints == get_layout("body13").num_joints == 13


@pytest.mark.parametrize("name", sorted(list_layouts()))
def test_graph_connected_and_adjacency_normalised(name):
    lay = get_layout(name)
    assert lay.is_connected, f"{name} graph is not connected"
    a = lay.adjacency("spatial")
    assert a.shape == (3, lay.num_joints, lay.num_joints) and a.dtype == np.float32
    np.testing.assert_allclose(a[0], np.eye(lay.num_joints))
    # Every joint but the centre has a parent, so each inward column of a child sums to 1.
    inward_cols = a[1].sum(0)
    assert set(np.round(inward_cols, 6)) <= {0.0, 1.0}
    assert inward_cols.sum() >= lay.num_joints - 1
    # Inward edges never point away from the centre (edges across a cycle join equally distant joints).
    dist = lay.hop_distance[lay.center_index]
    assert all(dist[c] in (dist[p], dist[p] + 1) for c, p in lay.inward)
    assert all(dist[c] == dist[p] + 1 for c, p in lay.inward if name in ("coco17", "ntu25", "kinect20"))
    ei = lay.edge_index
    assert ei.dtype == torch.long and ei.shape == (2, 2 * len(lay.edges))
    undirected = {tuple(e) for e in ei.T.tolist()}
    assert all((b, a_) in undirected for a_, b in undirected)


@pytest.mark.parametrize("name", sorted(list_layouts()))
def test_symmetric_pairs_are_left_right_mirrors(name):
    from actionpose.skeleton.layout import mirrored_name

    lay = get_layout(name)
    for left, right in lay.symmetric_pairs:
        assert mirrored_name(lay.joints[left]) == ("right", lay.joints[right])
    flip = lay.flip_index
    assert sorted(flip) == list(range(lay.num_joints)) and (flip[flip] == np.arange(lay.num_joints)).all()
    sided = [j for j in lay.joints if mirrored_name(j) is not None]
    assert len(lay.symmetric_pairs) * 2 == len(sided)


@pytest.mark.parametrize("name", BODY_LAYOUTS)
def test_body_layouts_map_into_body13_by_name(name):
    lay, body = get_layout(name), get_layout("body13")
    idx = joint_map(lay, body)
    for target, src in zip(body.joints, idx):
        own = lay.joints[src]
        assert own == target or lay.aliases.get(target) == own
    kp = np.arange(lay.num_joints * 2, dtype=np.float32).reshape(1, lay.num_joints, 2)
    mapped = map_keypoints(kp, lay, body)
    assert mapped.shape == (1, 13, 2)
    np.testing.assert_array_equal(mapped[0, 1], kp[0, lay.index("left_shoulder")])


def test_coco_nose_stands_in_for_head_and_ankles_are_required():
    assert joint_map("coco17", "body13")[0] == get_layout("coco17").index("nose")
    assert not can_map("mediapipe11", "body13")
    with pytest.raises(ActionposeError, match="left_ankle"):
        joint_map("mediapipe11", "body13")
    with pytest.raises(ActionposeError, match="has 17"):
        map_keypoints(np.zeros((5, 13, 2)), "coco17", "body13")


def test_unknown_layout_and_custom_registration():
    with pytest.raises(ActionposeError, match="unknown layout 'nope'"):
        get_layout("nope")
    custom = Layout("test_tripod", ("a", "left_b", "right_b"), (("a", "left_b"), ("a", "right_b")), center="a")
    register_layout(custom, overwrite=True)
    assert get_layout("test_tripod").symmetric_pairs == ((1, 2),)
    with pytest.raises(ValueError, match="unknown joint"):
        Layout("bad", ("a", "b"), (("a", "c"),), center="a")
    with pytest.raises(ValueError, match="joins a joint to itself"):
        Layout("bad", ("a", "b"), (("a", "b"), ("a", "a")), center="a")


def test_layout_file_with_a_misspelt_or_repeated_key_is_refused(tmp_path, capsys):
    """``edges:`` for ``bones:`` used to build a layout with no bones (a graph of isolated joints)."""
    from actionpose.cli.datasets import layout_from_option

    good = "name: test_rig3\njoints: [a, b, c]\nbones: [[a, b], [b, c]]\ncenter: b\n"
    f = tmp_path / "rig.yaml"
    f.write_text(good)
    assert layout_from_option(str(f)) == "test_rig3" and get_layout("test_rig3").edges.shape == (2, 2)
    from actionpose.cli import main
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    save_dataset(SkeletonDataset([make_annotation("s", 0, np.zeros((1, 4, 3, 2), np.float32))], "test_rig3", ["a"]),
                 tmp_path / "rig.pkl")
    for shown in (f, tmp_path / "rig.pkl"):  # the custom layout a file defines or carries can be looked at
        assert main(["layouts", str(shown)]) == 0
        out = capsys.readouterr().out
        assert out.startswith("test_rig3:") and "bones: a-b, b-c" in out
        # whether the cross-layout models can read it, and what a flip swaps (the probe could not tell)
        assert "maps to body13: no (none for head, left_shoulder" in out and "left/right pairs (flip): none found" in out
    f.write_text(good.replace("test_rig3", "test_rig3b").replace("[[a, b], [b, c]]", "[[a, b]]"))  # c reached by no bone
    assert layout_from_option(str(f)) == "test_rig3b"
    err = capsys.readouterr().err
    assert err.startswith("note: ") and "no bone path from b to c; the graph convolutions see it alone" in err
    f.write_text(good.replace("bones:", "edges:"))
    with pytest.raises(ActionposeError, match=r"rig.yaml: unknown key\(s\) 'edges'; a layout has name, joints, bones"):
        layout_from_option(str(f))
    f.write_text(good + "center: a\n")
    with pytest.raises(ActionposeError, match=r"rig.yaml: not readable YAML/JSON \(line 5, column 1: key 'center' appears twice"):
        layout_from_option(str(f))


@pytest.mark.parametrize("change, message", [
    (("joints: [a, b, c]", "joints: head"), r"'joints' must be a list of joint names, got str 'head'"),
    (("[[a, b], [b, c]]", "[[a, b, c]]"), r"bone 1 \['a', 'b', 'c'\] is not a pair of joint names; a bone is a pair \[a, b\]"),
    (("[[a, b], [b, c]]", "[[a, b], bc]"), r"bone 2 'bc' is not a pair of joint names"),
    (("[[a, b], [b, c]]", "ab"), r"'bones' must be a list of \[a, b\] joint-name pairs, got str 'ab'"),
    (("bones: [[a, b], [b, c]]\n", ""), r"missing key\(s\) 'bones'; a layout needs name, joints, bones, center"),
    # the same bone both ways counted its edge twice; a slash in the name made subfolders of run folders (probe)
    (("[[a, b], [b, c]]", "[[a, b], [b, c], [b, a]]"), r"layout probe_rig_bad: bone \(b, a\) is listed twice \(either way round\)"),
    (("name: probe_rig_bad", "name: probe rig/1"), r"layout name 'probe rig/1': give a name without slashes"),
])
def test_layout_file_with_a_string_for_a_list_or_a_bad_bone_is_refused(tmp_path, capsys, change, message):
    """Python iterated ``joints: head`` into the joints h, e, a, d (exit 0), read a bone ``ab`` as (a, b), and a
    3-joint bone failed with a bare "too many values to unpack"; a missing ``bones:`` built a graph of isolated
    joints although README and docs/extending.md list bones among a layout's keys."""
    from actionpose.cli import main
    from actionpose.skeleton.layout_file import layout_from_option

    f = tmp_path / "rig.yaml"
    f.write_text("name: probe_rig_bad\njoints: [a, b, c]\nbones: [[a, b], [b, c]]\ncenter: b\n".replace(*change))
    with pytest.raises(ActionposeError, match="rig.yaml: " + message):
        layout_from_option(str(f))
    assert main(["layouts", str(f)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("extra, match", [
    ({"name": None}, r"'name' must be a name, got NoneType None"),          # ``name:`` left empty
    ({"name": True}, r"'name' must be a name, got bool True"),              # ``name: yes``
    ({"center": ["b"]}, r"'center' must be a name, got list \['b'\]"),
    ({"aliases": ["head"]}, r"'aliases' must be a mapping of common joint name -> this layout's joint name"),
    ({"aliases": ["hb"]}, r"'aliases' must be a mapping"),                  # became the alias h -> b
    ({"aliases": {"nose": ["a"]}}, r"'aliases' must be a mapping"),
    ({"description": ["x"]}, r"'description' must be text, got list"),
])
def test_layout_definition_fields_of_the_wrong_kind_are_refused_by_name(extra, match):
    """An empty ``name:`` registered a layout called "None"; a list of aliases failed as "dictionary update
    sequence element #0 has length 4" (or ``[hb]`` became the alias h -> b), naming no field."""
    d = {"name": "probe_rig_fields", "joints": ["a", "b"], "bones": [["a", "b"]], "center": "a", **extra}
    with pytest.raises(ActionposeError, match=r"^rig.yaml: " + match):
        Layout.from_dict(d, "rig.yaml")


def test_an_empty_description_is_no_description():
    d = {"name": "probe_rig_nodesc", "joints": ["a", "b"], "bones": [["a", "b"]], "center": "a", "description": None}
    assert Layout.from_dict(d).description == ""
    assert Layout.from_dict(dict(d, aliases=None, name=7)).name == "7"   # numbers are names, as joints: [0, 1]


def test_layouts_on_an_ensemble_config_says_what_the_file_is(tmp_path):
    """``unknown key(s) 'models', 'weights'; a layout has ...`` read as if the file were a broken layout."""
    from actionpose.skeleton.layout_file import layout_from_option

    f = tmp_path / "ens.yaml"
    f.write_text("models: [a.onnx, b.onnx]\nweights: [1, 2]\n")
    with pytest.raises(ActionposeError, match=r"ens.yaml: looks like an ensemble config \(it has 'models'\), not a "
                                              r"layout file; a layout file has name, joints, bones, center"):
        layout_from_option(str(f))


def test_a_same_named_layout_that_differs_in_centre_or_aliases_is_refused():
    """Only joints and bones were compared: a dataset whose layout differed in its centre silently changed
    the bone features of a model loaded after it (probe: 54 % -> 30 %, no word)."""
    from actionpose.skeleton.layout import Layout
    from actionpose.skeleton.registry import ensure_layout

    base = {"name": "probe_rig_c", "joints": ["a", "b", "c"], "bones": [["a", "b"], ["b", "c"]], "center": "b"}
    ensure_layout(base)
    assert ensure_layout(dict(base, description="same rig, other words")).center == "b"
    with pytest.raises(ActionposeError, match=r"probe_rig_c.*differs.*center \('b' vs 'a'\)"):
        ensure_layout(dict(base, center="a"))
    with pytest.raises(ActionposeError, match="differs .* in its aliases"):
        ensure_layout(dict(base, aliases={"nose": "a"}))
    assert isinstance(Layout.from_dict(base), Layout)


@pytest.mark.parametrize("left, right", [("LShoulder", "RShoulder"), ("l_knee", "r_knee"), ("knee_l", "knee_r"),
                                         ("leftKnee", "rightKnee"), ("hip_left", "hip_right"), ("Left_eye", "Right_eye")])
def test_flip_swaps_sides_in_other_naming_conventions(left, right):
    """A rig named LShoulder/RShoulder was flipped without swapping sides: an impossible body (probe)."""
    from actionpose.skeleton.layout import Layout

    lay = Layout(name="probe_flip", joints=("Neck", left, right, "Lumbar"), bones=(("Neck", left), ("Neck", right),
                 ("Neck", "Lumbar")), center="Neck")
    assert lay.symmetric_pairs == ((1, 2),) and list(lay.flip_index) == [0, 2, 1, 3]


def test_flip_pairs_come_through_aliases_too():
    from actionpose.skeleton.layout import Layout

    lay = Layout(name="probe_alias", joints=("Head", "LW", "RW"), bones=(("Head", "LW"), ("Head", "RW")), center="Head",
                 aliases={"left_wrist": "LW", "right_wrist": "RW", "nose": "Head"})
    assert lay.symmetric_pairs == ((1, 2),)


def test_built_in_layouts_keep_their_flip_pairs():
    """The wider name rules change no built-in pair but BlazePose's mouth corners, now swapped too."""
    old = {"coco17": 8, "coco13": 6, "body13": 6, "penn13": 6, "ntu25": 10, "kinect20": 8, "kinect20_utd": 8}
    for name, n in old.items():
        lay = get_layout(name)
        assert len(lay.symmetric_pairs) == n, name
        assert all(lay.joints[a].startswith("left_") and lay.joints[b] == "right_" + lay.joints[a][5:]
                   for a, b in lay.symmetric_pairs), name
    bp = get_layout("blazepose33")
    assert (bp.index("mouth_left"), bp.index("mouth_right")) in bp.symmetric_pairs


def test_aliases_map_into_a_custom_rig_and_mapping_errors_name_the_missing_joints():
    """A rig's aliases (head: Head, ...) only mapped out of it, so tagging with a rig model listed all its 15
    joints as missing where two were (probe)."""
    from actionpose.skeleton.registry import joint_map, missing_joints

    body = get_layout("body13")
    names = {j: j.title().replace("_", "") for j in body.joints}
    rig = register_layout(Layout(name="probe_rig_alias", joints=tuple(names.values()) + ("Neck",),
                                 bones=tuple((names[body.joints[a]], names[body.joints[b]]) for a, b in body.edges)
                                 + (("Neck", names["head"]),), center="Neck", aliases={k: v for k, v in names.items()}),
                          overwrite=True)
    assert missing_joints("body13", rig) == ["Neck"]
    with pytest.raises(ActionposeError, match="no joint for Neck$"):
        joint_map("body13", rig)
    assert list(joint_map(rig, "body13")) == list(range(13))  # out of the rig, as before


def test_a_bad_rig_in_a_plugin_module_is_a_one_line_cli_error(tmp_path, monkeypatch, capsys):
    """docs/extending.md: rigs defined in code come in through ACTIONPOSE_PLUGINS. A bone to an unknown joint
    raised a plain ValueError there, which the CLI printed as a traceback."""
    from actionpose.cli import main

    (tmp_path / "probe_bad_rig_plugin.py").write_text(
        "from actionpose.skeleton import Layout, register_layout\n"
        "register_layout(Layout(name='probe_plugin_rig', joints=('a', 'b'), bones=(('a', 'c'),), center='a'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ACTIONPOSE_PLUGINS", "probe_bad_rig_plugin")
    assert main(["layouts"]) == 2
    err = capsys.readouterr().err
    assert err == "error: layout probe_plugin_rig: bone (a, c) names an unknown joint\n", err
    with pytest.raises(ValueError):  # still what Python code caught before
        Layout("bad", ("a",), (), center="z")
