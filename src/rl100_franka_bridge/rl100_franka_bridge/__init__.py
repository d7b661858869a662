"""Bridge from the rl100 safety node to franka_ros2."""
