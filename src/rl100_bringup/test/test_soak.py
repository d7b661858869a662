"""The soak's pure parts: memory growth, per-hour statistics, the report, unreported bags."""

import argparse

import pytest
from rl100_bringup.soak import format_report, HourStats, memory_growth, Soak


def test_memory_growth_is_the_slope_after_start_up():
    # 100 MB of start-up in the first minute, then +1 MB per minute (60 MB/h) for an hour
    samples = [(t, 'policy_node', 50.0 + min(t, 60.0) * 100 / 60 + max(t - 60.0, 0) / 60)
               for t in range(0, 3660, 10)]
    samples += [(0.0, 'safety_node', 40.0), (10.0, 'safety_node', 41.0)]  # too few for a slope
    got = memory_growth(samples, settle_s=120.0)
    assert got['policy_node']['growth_mb_per_hour'] == pytest.approx(60.0, rel=1e-6)
    assert got['policy_node']['first_mb'] == 50.0 and got['policy_node']['samples'] == 366
    assert got['safety_node']['growth_mb_per_hour'] is None


def test_hour_rows_and_report():
    h = HourStats(0, episodes=4, successes=3, errors=1, control_time=20.0, actions=200,
                  latencies_ms=[1.0, 2.0, 3.0, 4.0], bags=3, bags_readable=3, disk_bytes=2_000_000,
                  lockstep_timeouts=2, camera_checks=4, camera_corrected=1, table_set=2)
    row = h.row()
    assert row['success_rate'] == 0.75 and row['control_rate_hz'] == 10.0 and row['disk_mb'] == 2.0
    assert row['latency_p50_ms'] == 2.5
    empty = HourStats(1).row()
    assert empty['success_rate'] is None and empty['latency_p99_ms'] is None
    text = format_report({'sim_hours': 1.0, 'wall_hours': 0.4, 'sim_hours_target': 1.0,
                          'reached': True, 'hours': [row], 'total': row | {'hour': 'all'},
                          'memory': memory_growth([(0, 'n', 1.0), (1, 'n', 2.0), (2, 'n', 3.0)]),
                          'respawns': [], 'up_errors': [], 'unreadable_bags': []})
    assert '| 0 | 4 | 0.75 | 1 | 10.00 Hz | 2 | 2.5 / 4.0 ms | 3/3 | 2.0 MB |' in text
    assert '| n | 1 MB | 3 MB | 3 MB | +3600.0 MB/h |' in text and 'reached' in text
    assert '| 0 | 4 | 1 | 2 | 0 |' in text  # the camera checks, when the graph had them
    no_checks = row | {'camera_checks': 0}
    assert 'camera checks' not in format_report({
        'sim_hours': 1.0, 'wall_hours': 0.4, 'sim_hours_target': 1.0, 'reached': True,
        'hours': [no_checks], 'total': no_checks | {'hour': 'all'}, 'memory': {},
        'respawns': [], 'up_errors': [], 'unreadable_bags': []})


def test_unreported_bags_are_kept_verified_and_listed(tmp_path):
    pytest.importorskip('rosbags')
    soak = Soak(argparse.Namespace(out=str(tmp_path)))
    episodes = tmp_path / 'episodes'
    (episodes / 'episode_0007').mkdir(parents=True)  # closed by the recorder, not an MCAP bag
    (episodes / 'episode_0007' / 'metadata.yaml').write_text('not: a bag\n')
    (episodes / 'episode_0008.partial').mkdir()  # still being written: left alone
    soak.keep_unreported()
    assert sorted(p.name for p in episodes.iterdir()) == ['episode_0008.partial']
    kept = tmp_path / 'archive' / 'unreported' / 'episode_0007'
    assert (kept / 'metadata.yaml').is_file()
    assert soak.unreported == [{'bag': str(kept), 'readable': False, 'messages': 0,
                                'problem': soak.unreported[0]['problem']}]
    assert soak.unreported[0]['problem']  # names why it does not open
    row = HourStats(0).row()
    text = format_report({'sim_hours': 0.0, 'wall_hours': 0.0, 'sim_hours_target': 1.0,
                          'reached': False, 'hours': [], 'total': row | {'hour': 'all'},
                          'memory': {}, 'respawns': [], 'up_errors': [], 'unreadable_bags': [],
                          'unreported_bags': soak.unreported})
    assert '(no runner record, kept in archive/unreported): 1, 0 readable' in text
