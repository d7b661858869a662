"""Shared ROS 2 plumbing of the rl100 nodes (rclpy API common to Humble and Jazzy)."""
