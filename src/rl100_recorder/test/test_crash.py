"""A recorder killed with SIGKILL mid-episode: earlier episodes intact, the open one .partial.

What is left of the open episode: rosbags' MCAP writer keeps the current chunk in memory and
writes the summary and footer only at close, and metadata.yaml is written at close too, so
rosbags' Reader (and ``ros2 bag``) refuse the .partial directory; a streaming MCAP reader
(read_partial) recovers every message up to the last flush().
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from rl100_recorder.bag_writer import list_episodes, read_partial
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_typestore, Stores

CHILD = textwrap.dedent("""
    import sys, time
    from rl100_recorder.bag_writer import EpisodeBagWriter
    w = EpisodeBagWriter(sys.argv[1], flush_interval_s=3600)
    def header(i):  # CDR of std_msgs/Header: stamp.sec = i, frame_id ''
        return (b'\\x00\\x01\\x00\\x00' + i.to_bytes(4, 'little') + bytes(4)
                + (1).to_bytes(4, 'little') + bytes(4))
    w.begin('done_1', task='t')
    for i in range(3):
        w.write('/h', 'std_msgs/msg/Header', header(i), i)
    w.end('success')
    w.begin('open_2', task='t')
    for i in range(20):
        w.write('/h', 'std_msgs/msg/Header', header(i), 100 + i)
    w.flush()                      # the first 20 reach the file
    for i in range(20, 25):
        w.write('/h', 'std_msgs/msg/Header', header(i), 100 + i)  # still in memory
    print('ready', flush=True)
    time.sleep(60)
""")


def test_sigkill_keeps_finished_episodes_and_marks_the_open_one(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', CHILD, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in tmp_path.iterdir()) == ['done_1', 'open_2.partial']
    assert [p.name for p in list_episodes(tmp_path)] == ['done_1']
    with AnyReader([tmp_path / 'done_1'], default_typestore=get_typestore(Stores.EMPTY)) as r:
        assert [r.deserialize(raw, c.msgtype).stamp.sec for c, _, raw in r.messages()] == [
            0, 1, 2]

    partial = tmp_path / 'open_2.partial'
    record = json.loads((partial / 'recording.json').read_text())
    assert (record['episode_id'], record['task']) == ('open_2', 't')
    assert not (partial / 'metadata.yaml').exists()
    with pytest.raises(Exception):  # noqa: B017 - rosbags refuses it (no metadata.yaml)
        AnyReader([partial]).open()
    salvaged = list(read_partial(partial))
    assert [stamp for _, _, stamp, _ in salvaged] == list(range(100, 120))
    assert {(t, m) for t, m, _, _ in salvaged} == {('/h', 'std_msgs/msg/Header')}
