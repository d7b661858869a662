"""RealSense camera driver of the rl100 stack (realsense-ros compatible topics)."""
