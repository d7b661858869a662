"""Point-cloud observations: the Assembler without ROS, and sim robot + policy node over DDS."""

import time

import numpy as np
import pytest
from rl100_policy_node.observations import Assembler, AssemblyConfig, StaleObservationError

JOINTS = [f'fr3_joint{i}' for i in range(1, 8)] + ['fr3_finger_joint1', 'fr3_finger_joint2']
N = 16
CROP = {'crop_lo': [0.0, -0.5, 0.0], 'crop_hi': [1.0, 0.5, 0.5], 'sampler': 'random'}
SPEC = [{'key': 'observation.state', 'shape': [2, 15], 'dtype': 'float32', 'kind': 'lowdim'},
        {'key': 'observation.points', 'shape': [2, N, 3], 'dtype': 'float32', 'kind': 'points',
         **CROP}]


def _robot(a, t):
    a.pose(t, [0.5, 0, 0.3], [1, 0, 0, 0])
    a.joints(t, JOINTS, [0.0] * 7 + [0.02, 0.02])


def _cloud(seed=0, m=500):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (m, 3)).astype(np.float32)


def test_assembler_crops_and_downsamples_as_the_card_says():
    a = Assembler(SPEC, AssemblyConfig(seed=3))
    _robot(a, 1.0)
    with pytest.raises(StaleObservationError, match='no points received yet'):
        a.assemble(1.0)
    a.cloud(1.0, 'fr3_link0', _cloud())
    obs = a.assemble(1.0)
    pts = obs['observation.points']
    assert pts.shape == (N, 3) and pts.dtype == np.float32
    assert obs['observation.state'].shape == (15,)
    assert np.all(pts >= CROP['crop_lo']) and np.all(pts <= CROP['crop_hi'])
    b = Assembler(SPEC, AssemblyConfig(seed=3))  # same seed, same cloud: same sample
    _robot(b, 1.0)
    b.cloud(1.0, 'fr3_link0', _cloud())
    np.testing.assert_array_equal(b.assemble(1.0)['observation.points'], pts)


def test_assembler_in_the_table_frame_crops_above_the_raised_table():
    a = Assembler(SPEC, AssemblyConfig(seed=3, table_dz=0.1))
    _robot(a, 1.0)  # TCP at z = 0.3
    table = np.column_stack([np.random.default_rng(1).uniform(0.1, 0.9, (400, 2)) - [0, 0.5],
                             np.full(400, 0.05)])  # a table top 5 cm up: below the shifted floor
    thing = np.array([[0.5, 0.0, 0.2]] * 10)  # 10 cm above the table top in the training frame
    a.cloud(1.0, 'fr3_link0', np.vstack([table, thing]).astype(np.float32))
    obs = a.assemble(1.0)
    assert obs['observation.state'][2] == pytest.approx(0.2)
    np.testing.assert_allclose(obs['observation.points'], [[0.5, 0.0, 0.1]] * N, atol=1e-6)


def test_assembler_checks_points_frame_age_and_skew():
    a = Assembler(SPEC, AssemblyConfig(max_age=0.2, max_skew=0.1))
    with pytest.raises(ValueError, match="frame 'camera_link'"):
        a.cloud(0.0, 'camera_link', _cloud())
    _robot(a, 1.0)
    a.cloud(0.5, 'fr3_link0', _cloud())
    with pytest.raises(StaleObservationError, match='points is 0.500 s old'):
        a.assemble(1.0)
    a.cloud(0.85, 'fr3_link0', _cloud())
    with pytest.raises(StaleObservationError, match='points and (pose|joints) are 0.150 s apart'):
        a.assemble(1.0)
    a.cloud(1.0, 'fr3_link0', np.zeros((0, 3), np.float32))  # none in the box: zeros, as in sim
    assert not a.assemble(1.0)['observation.points'].any()


def test_assembler_refuses_points_without_preprocessing():
    entry = dict(SPEC[1])
    del entry['crop_hi']
    with pytest.raises(ValueError, match='no usable point-cloud preprocessing'):
        Assembler([SPEC[0], entry])
    with pytest.raises(ValueError, match=r'\(n_obs, N, 3\)'):
        Assembler([{**SPEC[1], 'shape': [2, N, 6]}])
    with pytest.raises(ValueError, match='depth_filter'):
        Assembler([SPEC[0], {**SPEC[1], 'depth_filter': 'bilateral'}])


def test_assembler_knows_the_camera_filter_the_model_needs():
    assert Assembler(SPEC).points.depth_filter == 'none'  # a card from before the filter existed
    a = Assembler([SPEC[0], {**SPEC[1], 'depth_filter': 'median3'}])
    assert a.points.depth_filter == 'median3'


@pytest.fixture(scope='module')
def points_model(tmp_path_factory):
    """A tiny one-step policy on state + points, exported with its crop box."""
    torch = pytest.importorskip('torch')
    pytest.importorskip('rl100.sim')
    from rl100.export.onnx_export import export_onnx
    from rl100.keys import OBS_POINTS, OBS_STATE
    from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
    from rl100.policy.consistency import ConsistencyPolicy

    torch.manual_seed(0)
    small = {'action_dim': 7, 'n_obs': 2, 'horizon': 8, 'n_action_steps': 4,
             'down_dims': (16, 32), 'n_groups': 8, 'step_embed_dim': 16,
             'encoder': EncoderConfig(lowdim_hidden=32, lowdim_out=16, point_dims=(16, 32),
                                      point_out=16)}
    config = PolicyConfig(
        obs=[ObsSpec(OBS_STATE, (15,)), ObsSpec(OBS_POINTS, (N, 3), kind='points')], **small)
    folder = tmp_path_factory.mktemp('models')
    pre = {'crop_lo': [-2.0, -2.0, -2.0], 'crop_hi': [2.0, 2.0, 2.0], 'sampler': 'fps'}  # all
    export_onnx(ConsistencyPolicy(config), folder / 'points.onnx', control_rate_hz=10.0,
                points_preprocessing=pre)
    # and a state-only one, to swap in
    export_onnx(ConsistencyPolicy(PolicyConfig(obs=[ObsSpec(OBS_STATE, (15,))], **small)),
                folder / 'state.onnx', control_rate_hz=10.0)
    return str(folder / 'points.onnx')


def test_sim_points_drive_the_policy_over_dds(points_model):
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rl100_camera.messages import pointcloud_to_array
    from rl100_msgs.msg import ActionChunk
    from rl100_policy_node.policy_node import PolicyNode
    from rl100_ros import qos, topics
    from rl100_sim.sim_robot_node import SimRobotNode
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    try:
        sim_time = Parameter('use_sim_time', value=True)
        robot = SimRobotNode(parameter_overrides=[
            Parameter('enable_points', value=True), Parameter('real_time_factor', value=1.0)])
        policy = PolicyNode(parameter_overrides=[
            Parameter('model_path', value=points_model), Parameter('control_rate', value=10.0),
            sim_time])
        peer = Node('peer')
        clouds, chunks = [], []
        peer.create_subscription(PointCloud2, topics.POINTS, clouds.append, qos.SENSOR)
        peer.create_subscription(ActionChunk, topics.ACTION_CHUNK, chunks.append, qos.RELIABLE)
        executor = MultiThreadedExecutor(num_threads=3)
        for node in (robot, policy, peer):
            executor.add_node(node)
        deadline = time.monotonic() + 40.0
        while time.monotonic() < deadline and len(chunks) < 3:
            executor.spin_once(timeout_sec=0.02)
        assert len(chunks) >= 3, (f'no chunks: {policy._last_stale!r}, '
                                  f'{len(clouds)} clouds received')
        assert chunks[-1].action_dim == 7 and np.all(np.isfinite(chunks[-1].data))
        cloud = clouds[-1]
        assert cloud.header.frame_id == 'fr3_link0'
        pts = pointcloud_to_array(cloud)
        assert len(pts) > N  # the full cropped cloud, not downsampled
        # a state-only model swapped in acts without clouds; the points model again acts on
        # clouds (the subscription made for the first stays)
        from rl100_msgs.srv import LoadPolicy
        state_model = points_model.replace('points.onnx', 'state.onnx')
        for path in (state_model, points_model):
            response = policy._on_load(LoadPolicy.Request(path=path), LoadPolicy.Response())
            assert response.accepted, response.message
            n = len(chunks)
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline and len(chunks) < n + 3:
                executor.spin_once(timeout_sec=0.02)
            assert len(chunks) >= n + 3, f'no chunks after the swap: {policy._last_stale!r}'
            assert chunks[-1].model_id == policy._policy.model_id
        executor.shutdown()
        for node in (peer, policy, robot):  # none left on the domain for a later test
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
