"""Measure the table on a robot's stand: the ``table_dz`` launch argument (issue: robustness).

    python -m rl100_bringup.calibrate_table [--model PATH] [--clouds 10]

A policy trained on one table height runs on another stand in the table frame
(``rl100.taskframe``), given ``table_dz``: how much higher this table top is than the training
one. This listens to ``/rl100/points`` (base frame; on the robot ``cloud_to_base`` publishes it
uncropped below the table, so the table top is in it), finds the table top in each of
``--clouds`` clouds (``rl100.taskframe.estimate_table_z`` over the model's crop-box footprint)
and prints the median and spread, and the launch argument to use. Clear the table of anything
large first. Exit code 2 with the reason when no table shows in the clouds, or none arrive;
3 when the table looks tilted by more than 0.5 deg (``rl100.taskframe.table_tilt_deg``): then
the camera's calibration is off (a knocked camera), and that must be fixed first.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

TABLE_Z_TRAIN = 0.0  # m: the table top of the simulated tasks the shipped model was trained on


MAX_TILT_DEG = 0.5  # a table seen tilted more than this: the hand-eye calibration is off


def table_dz(clouds: list, xy_lo, xy_hi, table_z_train: float = TABLE_Z_TRAIN) -> tuple:
    """(table_dz m, spread m = max - min over the clouds, tilt deg) from (M, 3) base clouds."""
    from rl100.taskframe import estimate_table_z, table_tilt_deg

    if not clouds:
        raise ValueError('no clouds')
    heights = [estimate_table_z(c, xy_lo, xy_hi) for c in clouds]
    tilt = float(np.median([table_tilt_deg(c, xy_lo, xy_hi) for c in clouds]))
    return float(np.median(heights)) - table_z_train, float(np.ptp(heights)), tilt


def _footprint(model: str) -> tuple:
    """The model card's crop box, x y only."""
    from rl100.export.card import card_path, read_card

    card = read_card(card_path(model))
    entry = next((o for o in card['observation_spec'] if o['kind'] == 'points'), None)
    if entry is None or 'crop_lo' not in entry:
        raise ValueError(f'{model} has no point-cloud input with a crop box in its card')
    return entry['crop_lo'][:2], entry['crop_hi'][:2]


def collect(n: int, timeout: float) -> list:
    """``n`` clouds from /rl100/points (fewer when ``timeout`` s pass first)."""
    from rl100_camera.messages import pointcloud_to_array
    from rl100_ros import qos, topics
    from sensor_msgs.msg import PointCloud2

    from .listen import listen

    clouds = []
    listen('calibrate_table',
           lambda node: node.create_subscription(
               PointCloud2, topics.POINTS, lambda m: clouds.append(pointcloud_to_array(m).copy()),
               qos.SENSOR),
           lambda: len(clouds) >= n, timeout)
    return clouds[:n]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rl100_bringup.calibrate_table',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='', help='ONNX policy whose crop box footprint to '
                        'look in (default: the shipped model)')
    parser.add_argument('--clouds', type=int, default=10, help='clouds to measure')
    parser.add_argument('--timeout', type=float, default=15.0, help='s to wait for them')
    parser.add_argument('--table-z-train', type=float, default=TABLE_Z_TRAIN,
                        help='table top height (m, base frame) in the training data')
    args = parser.parse_args(argv)
    from .models import resolve_model

    try:
        model = resolve_model(args.model)
        xy_lo, xy_hi = _footprint(model)
    except ValueError as exc:
        print(f'calibrate_table: {exc}', file=sys.stderr)
        return 2
    clouds = collect(args.clouds, args.timeout)
    if not clouds:
        print(f'calibrate_table: no cloud on /rl100/points within {args.timeout:g} s (is '
              'cloud_to_base running, with the camera?)', file=sys.stderr)
        return 2
    try:
        dz, spread, tilt = table_dz(clouds, xy_lo, xy_hi, args.table_z_train)
    except ValueError as exc:
        print(f'calibrate_table: {exc}', file=sys.stderr)
        return 2
    print(json.dumps({'table_dz': round(dz, 4), 'spread': round(spread, 4),
                      'tilt_deg': round(tilt, 2), 'clouds': len(clouds)}))
    if tilt > MAX_TILT_DEG:
        print(f'calibrate_table: the table looks tilted by {tilt:.1f} deg in the base frame: the '
              "camera's hand-eye calibration (cloud_to_base camera_pose) is off -- a knocked "
              'camera? Check it with python -m rl100_bringup.check_camera (it measures the table '
              'too) before measuring the table.', file=sys.stderr)
        return 3
    print(f'launch with table_dz:={dz:.4f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
