"""Policy runtime shared by ``rl100 eval`` and the ROS policy node (numpy + onnxruntime; no torch, no rclpy)."""

from rl100.runtime.policy_runtime import PolicyRuntime

__all__ = ["PolicyRuntime"]
