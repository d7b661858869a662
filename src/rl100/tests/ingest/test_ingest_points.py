"""rl100 ingest with point clouds: stamp matching, the policy node's crop/sampler, the model card's spec,
the dataset meta, and the failures (bad cloud, hole in an episode, conflicting dataset)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from rl100 import keys
from rl100.data import Dataset, SequenceSampler
from rl100.export.card import read_card
from rl100.ingest import IngestError, IngestSpec, add_arguments, ingest, points_from_args
from rl100.ingest_points import PointsMatcher, PointsPreprocessing, cloud_xyz, episode_rng
from rl100.pointcloud import crop_and_sample, points_preprocessing

ROOT = Path(__file__).resolve().parents[4]
CARD = ROOT / "models" / "juicing_place_cm.card.json"
MSG_DIR = ROOT / "src" / "rl100_msgs" / "msg"
POINTS = "/rl100/points"
LO, HI = (0.05, -0.6, 0.004), (1.0, 0.6, 0.6)  # the shipped card's crop box


def _store():
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for f in sorted(MSG_DIR.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"rl100_msgs/msg/{f.stem}"))
    store.register(types)
    return store


STORE = _store()
T = STORE.types


def _header(ns: int, frame: str = "fr3_link0"):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id=frame)


def tick_cloud(i: int) -> np.ndarray:
    """Tick ``i``'s scene: 40 points inside the card's box at z = 0.1 + i / 100, 10 outside it, one NaN."""
    rng = np.random.default_rng(i)
    inside = np.column_stack([rng.uniform(0.1, 0.9, 40), rng.uniform(-0.5, 0.5, 40), np.full(40, 0.1 + i / 100)])
    outside = np.column_stack([np.full(10, 2.0), np.zeros(10), np.full(10, 0.3)])
    return np.concatenate([inside, outside, [[np.nan, 0.0, 0.3]]]).astype(np.float32)


def _field(name: str, offset: int, datatype: int = 7):
    return T["sensor_msgs/msg/PointField"](name=name, offset=offset, datatype=datatype, count=1)


def cloud_msg(points: np.ndarray, ns: int, frame: str = "fr3_link0", fields="xyz", datatype: int = 7):
    """PointCloud2 as the sim robot node publishes it (x y z float32, point_step 12)."""
    pts = np.ascontiguousarray(points, dtype=np.float32)
    return T["sensor_msgs/msg/PointCloud2"](
        header=_header(ns, frame), height=1, width=len(pts),
        fields=[_field(n, 4 * j, datatype) for j, n in enumerate(fields)], is_bigendian=False,
        point_step=12, row_step=12 * len(pts), data=np.frombuffer(pts.tobytes(), dtype=np.uint8), is_dense=True)


def write_episode(root: Path, episode_id: str, *, ticks: int = 6, cloud_ticks=None, cloud_offset_ms: int = 0,
                  bad: dict | None = None, label: str = "failure") -> Path:
    """A recorder episode at 10 Hz: joints, pose, intervention, then the tick's cloud (it arrives last).

    ``cloud_ticks``: ticks that have a cloud (default all), stamped ``cloud_offset_ms`` from the tick.
    ``bad``: {cloud message index: "garbage" | "no_z" | "int16"} corrupts that cloud.
    """
    path = root / episode_id
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns = {t: writer.add_connection(t, m, typestore=STORE) for t, m in [
        ("/joint_states", "sensor_msgs/msg/JointState"),
        ("/franka_robot_state_broadcaster/current_pose", "geometry_msgs/msg/PoseStamped"),
        ("/rl100/intervention", "rl100_msgs/msg/Intervention"),
        (POINTS, "sensor_msgs/msg/PointCloud2")]}

    def put(topic, msg, ns):
        writer.write(conns[topic], ns, STORE.serialize_cdr(msg, conns[topic].msgtype))

    pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.3, y=0.0, z=0.5),
                                       orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    names = [f"fr3_joint{j + 1}" for j in range(7)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
    n_cloud = 0
    for i in range(ticks):
        ns = 10**9 + i * 10**8
        put("/joint_states", T["sensor_msgs/msg/JointState"](
            header=_header(ns), name=names, position=np.array([float(i)] * 7 + [0.01, 0.01]),
            velocity=np.zeros(0), effort=np.zeros(0)), ns + 1)
        put("/franka_robot_state_broadcaster/current_pose",
            T["geometry_msgs/msg/PoseStamped"](header=_header(ns), pose=pose), ns + 2)
        put("/rl100/intervention", T["rl100_msgs/msg/Intervention"](
            header=_header(ns), active=False, source=4, target=pose, gripper=0.0), ns + 5)
        if cloud_ticks is None or i in cloud_ticks:
            kind = (bad or {}).get(n_cloud)
            stamp = ns + cloud_offset_ms * 10**6
            if kind == "garbage":
                writer.write(conns[POINTS], ns + 7, b"\x00\x01\x00\x00garbage")
            elif kind == "no_z":
                put(POINTS, cloud_msg(tick_cloud(i)[:, :2].repeat(2, axis=1)[:, :3], stamp, fields="xy"), ns + 7)
            elif kind == "int16":
                put(POINTS, cloud_msg(tick_cloud(i), stamp, datatype=4), ns + 7)
            else:
                put(POINTS, cloud_msg(tick_cloud(i), stamp), ns + 7)
            n_cloud += 1
    writer.close()
    side = {"format": "rl100-episode-bag", "episode_id": episode_id, "task": "juicing-place",
            "meta": {"source": "rollout"}, "label": label, "success": label == "success", "note": ""}
    (path / "episode.json").write_text(json.dumps(side))
    return path


def card_spec(**kw) -> IngestSpec:
    return IngestSpec(points=PointsPreprocessing.from_card(read_card(CARD)), **kw)


# --- matching and cropping on synthetic messages ---------------------------------------------------------

def _msg(points, stamp_s: float, frame="fr3_link0"):
    ns = round(stamp_s * 1e9)
    header = SimpleNamespace(stamp=SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame)
    pts = np.ascontiguousarray(points, dtype=np.float32)
    fields = [SimpleNamespace(name=n, offset=4 * j, datatype=7, count=1) for j, n in enumerate("xyz")]
    return SimpleNamespace(header=header, height=1, width=len(pts), fields=fields, is_bigendian=False,
                           point_step=12, row_step=12 * len(pts), data=np.frombuffer(pts.tobytes(), np.uint8))


def test_matcher_takes_same_stamp_else_newest_before_within_tolerance_never_a_later_one():
    pre = PointsPreprocessing(8, LO, HI, "random")
    m = PointsMatcher(pre, POINTS, tolerance=0.1, rng=np.random.default_rng(0))
    got = []
    got += m.add_cloud(_msg(tick_cloud(0), 0.95))  # before the first state: kept for it
    got += m.add_step(0, 1.0, "fr3_link0", "s0")  # no cloud at 1.0 seen yet: waits
    assert got == []
    got += m.add_cloud(_msg(tick_cloud(1), 1.0))  # its own stamp: taken over the 0.95 one
    got += m.add_step(1, 1.1, "fr3_link0", "s1")
    got += m.add_cloud(_msg(tick_cloud(2), 1.15))  # later than s1's state: never used for it; s1 gets 1.0
    got += m.add_step(2, 1.2, "fr3_link0", "s2")
    got += m.finish()  # s2: newest before is 1.15
    assert [item for item, _ in got] == ["s0", "s1", "s2"]
    assert [float(p[0, 2]) for _, p in got] == pytest.approx([0.11, 0.11, 0.12])
    for _, p in got:
        assert p.shape == (8, 3) and p.dtype == np.float32
        assert np.all((p >= np.float32(LO)) & (p <= np.float32(HI)))  # cropped: no outside or NaN point
    assert m.dropped == 0


def test_matcher_in_the_table_frame_crops_above_the_raised_table():
    from rl100.taskframe import TableFrame

    pre = PointsPreprocessing(4, (0.0, -1.0, 0.004), (1.0, 1.0, 0.6), "random")
    m = PointsMatcher(pre, POINTS, frame=TableFrame(0.02))
    table = [[0.5, y, 0.02] for y in np.linspace(-0.5, 0.5, 50)]  # the table top, 2 cm up
    m.add_cloud(_msg(table + [[0.5, 0.0, 0.12]], 1.0))  # and something 10 cm above it
    (item, points), = m.add_step(0, 1.0, "fr3_link0", "s") + m.finish()
    np.testing.assert_allclose(points, [[0.5, 0.0, 0.10]] * 4, atol=1e-6)  # as on the training table


def test_matcher_drops_leading_steps_and_refuses_a_hole():
    pre = PointsPreprocessing(4, LO, HI, "fps")
    m = PointsMatcher(pre, POINTS, tolerance=0.05)
    assert m.add_step(0, 1.0, "fr3_link0", "a") == []
    assert m.add_cloud(_msg(tick_cloud(1), 1.1)) == []  # after "a": a has none at or before it -> dropped
    assert m.dropped == 1
    assert [i for i, _ in m.add_step(1, 1.12, "fr3_link0", "b")] == []  # waits for a cloud >= 1.12
    assert [i for i, _ in m.add_cloud(_msg(tick_cloud(2), 1.2))] == ["b"]  # 1.1 is 0.02 s before b: matched
    with pytest.raises(ValueError, match=r"step 1 \(control tick #7, robot state at 1.400000 s\) has no /rl100/points "
                                         r"cloud .* newest before it is #1 at 1.200000 s"):
        m.add_step(7, 1.4, "fr3_link0", "c") + m.finish()


def test_matcher_refuses_a_cloud_in_another_frame_and_bad_fields():
    pre = PointsPreprocessing(4, LO, HI)
    m = PointsMatcher(pre, POINTS)
    m.add_cloud(_msg(tick_cloud(0), 1.0, frame="camera_link"))
    with pytest.raises(ValueError, match=r"/rl100/points message #0 is in frame 'camera_link', the robot state in"):
        m.add_step(0, 1.0, "fr3_link0", "a")
    bad = _msg(tick_cloud(0), 1.1)
    bad.fields = bad.fields[:2]
    with pytest.raises(ValueError, match=r"/rl100/points message #1 is not a usable point cloud: no field\(s\) \['z"):
        m.add_cloud(bad)
    short = _msg(tick_cloud(0), 1.1)
    short.data = short.data[:100]
    with pytest.raises(ValueError, match="message #2 .* data has 100 bytes"):
        m.add_cloud(short)


def test_cloud_xyz_reads_padded_fields_rows_and_float64():
    pts = np.arange(12, dtype=np.float64).reshape(4, 3)
    rec = np.zeros(4, dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("rgb", "<f4"), ("pad", "V4")])
    rec["x"], rec["y"], rec["z"] = pts.T
    rows = np.zeros((2, 2 * 32 + 8), dtype=np.uint8)  # 2 rows of 2 points, 8 bytes of row padding
    rows[:, :64] = np.frombuffer(rec.tobytes(), np.uint8).reshape(2, 64)
    fields = [SimpleNamespace(name=n, offset=8 * j, datatype=8, count=1) for j, n in enumerate("xyz")]
    fields.append(SimpleNamespace(name="rgb", offset=24, datatype=7, count=1))
    msg = SimpleNamespace(height=2, width=2, fields=fields, is_bigendian=False, point_step=32, row_step=72,
                          data=rows.reshape(-1))
    np.testing.assert_array_equal(cloud_xyz(msg), pts.astype(np.float32))


# --- through rl100 ingest ---------------------------------------------------------------------------------

def test_ingest_gives_the_cards_points_with_the_policy_nodes_preprocessing(tmp_path):
    bags = tmp_path / "bags"
    write_episode(bags, "e1", ticks=6)
    write_episode(bags, "e2", ticks=4, cloud_offset_ms=-30, label="success")  # camera 30 ms behind the robot
    spec = card_spec()
    report = ingest([bags], tmp_path / "ds", spec, fsync=False)
    assert [s for _, s in report["ingested"]] == [6, 4] and report["dropped"] == []

    ds = Dataset(tmp_path / "ds")
    card = read_card(CARD)
    n_obs, n, _ = next(e["shape"] for e in card["observation_spec"] if e["key"] == keys.OBS_POINTS)
    assert ds.specs[keys.OBS_POINTS].shape == (n, 3) == (512, 3)
    # the dataset meta is what rl100 collect writes and rl100 export reads back
    assert points_preprocessing(ds.meta) == {"crop_lo": list(LO), "crop_hi": list(HI), "sampler": "random",
                                          "depth_filter": "none"}
    assert ds.meta["n_points"] == 512
    for pos, (episode_id, ticks) in enumerate([("e1", 6), ("e2", 4)]):
        pts = np.asarray(ds.episode(pos)[keys.OBS_POINTS])
        rng = episode_rng(0, episode_id)
        for i in range(ticks):  # step i got tick i's cloud, cropped and sampled like the policy node does
            cloud = tick_cloud(i)
            cloud = cloud[np.all(np.isfinite(cloud), axis=1)]
            want = crop_and_sample(cloud, None, np.asarray(LO), np.asarray(HI), 512, rng, "random")
            np.testing.assert_array_equal(pts[i], want)
            assert np.allclose(pts[i][:, 2], 0.1 + i / 100)

    # a policy of the card's spec gets (B, n_obs, 512, 3) windows
    sampler = SequenceSampler(ds, n_obs=card["n_obs"], horizon=card["horizon"])
    batch = sampler.batch(np.arange(len(sampler)))
    assert batch[keys.OBS_POINTS].shape == (len(sampler), n_obs, 512, 3)
    assert batch[keys.OBS_STATE].shape == (len(sampler), n_obs, 15)
    assert batch[keys.ACTION].shape == (len(sampler), card["horizon"], 7)

    # re-ingest with another preprocessing into the same dataset: refused before anything is written
    other = IngestSpec(points=PointsPreprocessing(64, LO, HI, "random"))
    write_episode(bags, "e3", ticks=3)
    with pytest.raises(IngestError, match=r"made with point-cloud preprocessing .* use another --out"):
        ingest([bags], tmp_path / "ds", other, fsync=False)
    assert len(Dataset(tmp_path / "ds")) == 2 and Dataset(tmp_path / "ds").meta["n_points"] == 512


def test_leading_steps_without_a_cloud_are_dropped_and_counted(tmp_path):
    bag = write_episode(tmp_path / "bags", "late_camera", ticks=6, cloud_ticks=(2, 3, 4, 5))
    report = ingest([bag], tmp_path / "ds", card_spec(points_tolerance=0.05), fsync=False)
    assert report["ingested"] == [(str(bag), 4)]
    assert report["dropped"] == [(str(bag), 2, "leading steps without a /rl100/points cloud")]
    pts = np.asarray(Dataset(tmp_path / "ds").episode(0)[keys.OBS_POINTS])
    assert np.allclose(pts[:, :, 2], (0.1 + np.arange(2, 6) / 100)[:, None])
    state = np.asarray(Dataset(tmp_path / "ds").episode(0)[keys.OBS_STATE])
    assert list(state[:, -1]) == [2, 3, 4, 5]  # the states stay with their own clouds


def test_a_hole_in_the_clouds_fails_naming_bag_and_step_and_keeps_earlier_episodes(tmp_path):
    bags = tmp_path / "bags"
    write_episode(bags, "a_good")
    hole = write_episode(bags, "b_hole", cloud_ticks=(0, 1, 2, 4, 5))
    with pytest.raises(IngestError) as err:
        ingest([bags], tmp_path / "ds", card_spec(points_tolerance=0.05), fsync=False)
    assert err.value.bag == hole
    assert "step 3 (control tick #3, robot state at 1.300000 s) has no /rl100/points cloud" in str(err.value)
    assert [i.meta["bag_episode_id"] for i in Dataset(tmp_path / "ds").infos] == ["a_good"]
    # with the sim's 0.1 s tolerance, tick 2's cloud is recent enough for tick 3
    report = ingest([bags], tmp_path / "ds", card_spec(), fsync=False)
    assert report["ingested"] == [(str(hole), 6)]


@pytest.mark.parametrize("kind, message", [
    ("garbage", r"/rl100/points message #2 cannot be decoded: corrupt message"),
    ("no_z", r"/rl100/points message #2 is not a usable point cloud: no field\(s\) \['z'\]"),
    ("int16", r"/rl100/points message #2 is not a usable point cloud: field 'x' is datatype 4"),
])
def test_a_bad_cloud_fails_naming_bag_topic_and_index_and_loses_nothing(tmp_path, kind, message):
    bags = tmp_path / "bags"
    write_episode(bags, "a_good")
    bad = write_episode(bags, "b_bad", bad={2: kind})
    write_episode(bags, "c_good")
    with pytest.raises(IngestError, match=f"^{bad}: {message}") as err:
        ingest([bags], tmp_path / "ds", card_spec(), fsync=False)
    print(err.value)  # what an operator sees
    ds = Dataset(tmp_path / "ds")
    assert [i.meta["bag_episode_id"] for i in ds.infos] == ["a_good"]
    assert sorted(p.name for p in (tmp_path / "ds").iterdir() if p.name.startswith("episode_")) == ["episode_000000"]
    report = ingest([bags], tmp_path / "ds", card_spec(), skip_bad=True, fsync=False)
    assert [b for b, _ in report["failed"]] == [str(bad)]
    assert [i.meta["bag_episode_id"] for i in Dataset(tmp_path / "ds").infos] == ["a_good", "c_good"]


def test_without_a_preprocessing_clouds_are_left_out_and_reported(tmp_path):
    bag = write_episode(tmp_path / "bags", "e1", ticks=3)
    report = ingest([bag], tmp_path / "ds2", IngestSpec(), fsync=False)
    assert report["ingested"] == [(str(bag), 3)] and report["points_ignored"] == [str(bag)]
    assert keys.OBS_POINTS not in Dataset(tmp_path / "ds2").specs
    report = ingest([bag], tmp_path / "ds3", IngestSpec(points_topic=""), fsync=False)  # --no-points
    assert report["points_ignored"] == []
    # a points ingest into that points-less dataset is refused
    write_episode(tmp_path / "bags", "e2", ticks=3)
    with pytest.raises(IngestError, match=r"episodes have no observation.points, this ingest makes"):
        ingest([tmp_path / "bags"], tmp_path / "ds2", card_spec(), fsync=False)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["bags", "--out", "ds", *argv])


def test_command_line_points_default_from_the_card_and_are_overridable():
    assert points_from_args(_args()) is None
    pre = points_from_args(_args("--card", str(CARD)))
    assert pre == PointsPreprocessing(512, LO, HI, "random")
    pre = points_from_args(_args("--card", str(CARD), "--n-points", "256", "--sampler", "fps"))
    assert (pre.n, pre.sampler, pre.crop_lo) == (256, "fps", LO)
    pre = points_from_args(_args("--crop-lo", "0,0,0", "--crop-hi", "1,1,1"))
    assert pre == PointsPreprocessing(512, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "random")
    with pytest.raises(ValueError, match="need a crop box"):
        points_from_args(_args("--n-points", "64"))
    with pytest.raises(ValueError, match="--no-points contradicts"):
        points_from_args(_args("--card", str(CARD), "--no-points"))
