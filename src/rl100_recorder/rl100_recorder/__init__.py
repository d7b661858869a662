"""The rl100 episode recorder: a pure bag writer (bag_writer) and its ROS node."""
