"""Stale Fast DDS shared-memory segments: found by their free lock, removed; live ones kept."""

import fcntl
import os
import subprocess
import sys
import time

from rl100_bringup.graph import dds_environment
from rl100_bringup.shm_clean import clean, main, SHM_DIR

LIVE, DEAD, YOUNG = 'fastrtps_00000000000000aa', 'fastrtps_00000000000000bb', \
    'fastrtps_00000000000000cc'


def _segment(directory, name, age_s, kb=8):
    for path in (directory / name, directory / (name + '_el')):
        path.write_bytes(b'x' * kb * 1024 if path.name == name else b'')
        os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_only_unlocked_old_segments_go(tmp_path, capsys):
    _segment(tmp_path, LIVE, 600)
    _segment(tmp_path, DEAD, 600)
    _segment(tmp_path, YOUNG, 5)
    (tmp_path / 'fastrtps_port7411').write_bytes(b'')  # a port: shared, never touched
    (tmp_path / 'fastrtps_port7411_el').write_bytes(b'')
    os.utime(tmp_path / 'fastrtps_port7411_el', (0, 0))
    (tmp_path / 'fastrtps_00000000000000dd').write_bytes(b'')  # no lock file: not judged
    held = os.open(tmp_path / (LIVE + '_el'), os.O_RDWR)  # its participant lives
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        before = sorted(os.listdir(tmp_path))
        listed = clean(str(tmp_path), min_age_s=60, dry_run=True)
        assert listed.removed == (DEAD,) and sorted(os.listdir(tmp_path)) == before
        done = clean(str(tmp_path), min_age_s=60)
        assert done.removed == (DEAD,) and done.bytes >= 8 * 1024
        assert sorted(os.listdir(tmp_path)) == sorted(set(before) - {DEAD, DEAD + '_el'})
        assert clean(str(tmp_path), min_age_s=0).removed == (YOUNG,)  # old enough now
    finally:
        os.close(held)
    assert main(['--dir', str(tmp_path), '--min-age', '0']) == 0
    out = capsys.readouterr().out
    assert out.startswith('removed 1 stale Fast DDS shared-memory segment(s)') and LIVE in out
    assert clean(str(tmp_path / 'missing')).removed == ()


def test_a_live_participant_is_kept_and_a_killed_one_removed(ros_env):
    env = {**ros_env, **dds_environment()}
    before = set(os.listdir(SHM_DIR))
    child = subprocess.Popen(
        [sys.executable, '-c', 'import rclpy, time; rclpy.init(); '
         'n = rclpy.create_node("shm_clean_probe"); print("up", flush=True); time.sleep(60)'],
        env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'up'
        deadline = time.monotonic() + 10
        mine = set()
        while not mine and time.monotonic() < deadline:
            mine = {n for n in set(os.listdir(SHM_DIR)) - before
                    if n.startswith('fastrtps_') and len(n) == len('fastrtps_') + 16}
            time.sleep(0.1)
        assert mine, 'the participant made no shared-memory segment'
        for name in mine:  # old enough to be judged (the age guard is not what keeps it)
            os.utime(os.path.join(SHM_DIR, name + '_el'), (0, 0))
        assert not set(clean().removed) & mine  # it lives: kept
        assert mine <= set(os.listdir(SHM_DIR))
    finally:
        child.kill()
        child.wait()
    assert set(clean().removed) >= mine  # killed: its segment is stale
    assert not mine & set(os.listdir(SHM_DIR))
