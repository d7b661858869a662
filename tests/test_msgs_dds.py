"""rl100_msgs messages and services round-trip between two processes over real DDS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dds_peer.py")


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_messages_and_services_cross_processes_over_dds(ros_env):
    listener = subprocess.Popen([sys.executable, PEER, "listen", "40"], env=ros_env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        talker = subprocess.run([sys.executable, PEER, "talk", "40"], env=ros_env, text=True,
                                capture_output=True, timeout=60)
        l_out, l_err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert talker.returncode == 0, f"talker failed:\n{talker.stdout}\n{talker.stderr}"
    assert listener.returncode == 0, f"listener failed:\n{l_out}\n{l_err}"
    sent = {r["name"]: r["data"] for r in _records(talker.stdout) if r["kind"] == "sent"}
    got = {r["name"]: r["data"] for r in _records(l_out) if r["kind"] == "msg"}
    assert set(sent) == {"action_chunk", "intervention", "safety_status", "episode_event"}
    assert got == sent  # every field, nested headers and float arrays included
    assert len(got["action_chunk"]["data"]) == 14
    assert got["safety_status"]["mode"] == 3 and got["safety_status"]["estop_latched"] is True

    responses = {r["name"]: r["data"] for r in _records(talker.stdout) if r["kind"] == "response"}
    assert responses["start_episode"] == {"accepted": True, "episode_id": "juicing-place#1", "message": "first",
                                          "unheard_topics": ["/b", "/a"]}
    assert responses["end_episode"]["path"] == "label=2"
    assert responses["load_policy"] == {"accepted": True, "model_id": "xnno.a/sledom/", "message": "ok"}
    assert responses["set_mode"] == {"accepted": True, "mode": 0, "message": "operator"}


def test_other_domain_does_not_hear(ros_env):
    """Isolation: a talker on another ROS_DOMAIN_ID finds no subscriber (so tests cannot cross-talk)."""
    other = dict(ros_env, ROS_DOMAIN_ID=str(int(ros_env["ROS_DOMAIN_ID"]) + 1))
    listener = subprocess.Popen([sys.executable, PEER, "listen", "6"], env=ros_env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        talker = subprocess.run([sys.executable, PEER, "talk", "4"], env=other, text=True,
                                capture_output=True, timeout=30)
    finally:
        listener.kill()
        listener.communicate()
    assert talker.returncode == 1
    assert "no subscriber matched" in talker.stdout
